package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

type failingCounter struct{}

func (failingCounter) OpenAnomalyCounts(context.Context) (map[string]int, error) {
	return nil, errors.New("database is locked")
}

// A store that cannot be read drops the anomaly gauge from the scrape, not
// the scrape: the other metrics matter most when the store is failing.
func TestMetrics_AnomalyGaugeFailureKeepsTheRest(t *testing.T) {
	t.Parallel()
	m := NewMetrics()
	m.CountAnomalies(failingCounter{})
	m.CountAnomalies(failingCounter{}) // a second registration is a no-op
	m.Webhooks.WithLabelValues("tazapay", "applied").Inc()
	s := New(Config{}, nil, nil, nil, m, nil)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `orderstate_webhooks_total{provider="tazapay",result="applied"} 1`)
	require.NotContains(t, rec.Body.String(), "orderstate_anomalies_open{")
}
