package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/engine"
)

func TestOperations_MetricsHealthAndReadiness(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	st, body := s.do("GET", "/healthz", nil, nil)
	require.Equal(t, http.StatusOK, st)
	require.JSONEq(t, `{"status":"ok"}`, string(body))
	st, body = s.do("GET", "/readyz", nil, nil)
	require.Equal(t, http.StatusOK, st)
	require.JSONEq(t, `{"status":"ready"}`, string(body))

	paid := tazapayEvent("evt_m2", "checkout.paid", "2025-05-14T06:41:22Z", "chk_m", "pay_m", "order_m", "paid", 100)
	created := tazapayEvent("evt_m1", "checkout.created", "2025-05-14T06:30:00Z", "chk_m", "pay_m", "order_m", "unpaid", 100)
	for _, b := range [][]byte{paid, paid, created} {
		st, body := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
		require.Equal(t, http.StatusOK, st, string(body))
	}
	st, _ = s.do("POST", "/webhooks/tazapay", paid, tazapay.Sign("wrong", paid))
	require.Equal(t, http.StatusUnauthorized, st)
	st, _ = s.do("POST", "/webhooks/nobody", paid, signedTazapay(paid))
	require.Equal(t, http.StatusNotFound, st)

	_, metrics := s.do("GET", "/metrics", nil, nil)
	m := string(metrics)
	for _, want := range []string{
		`orderstate_webhooks_total{provider="tazapay",result="applied"} 1`,
		`orderstate_webhooks_total{provider="tazapay",result="duplicate"} 1`,
		`orderstate_webhooks_total{provider="tazapay",result="stale"} 1`,
		`orderstate_webhooks_total{provider="tazapay",result="unauthorized"} 1`,
		// A made-up provider name does not become a label value.
		`orderstate_webhooks_total{provider="unknown",result="not_found"} 1`,
		`orderstate_ingest_seconds_bucket{provider="tazapay",le="0.005"}`,
		`orderstate_ingest_seconds_count{provider="tazapay"} 3`,
		`orderstate_webhooks_in_flight 0`,
		`orderstate_webhooks_receiving 0`,
		`orderstate_anomalies_open{kind="duplicate"} 1`,
		`orderstate_anomalies_open{kind="out_of_order"} 1`,
		`orderstate_anomalies_open{kind="conflict"} 0`,
		`go_goroutines `,
		`orderstate_store_commits_total `,
		`orderstate_store_writes_total `,
		// A duplicate is looked for among its order's events, so all three
		// webhooks look their order up; the two after the first find the
		// order it made in the writer's memory.
		`orderstate_store_order_lookups_total 3`,
		`orderstate_store_order_cache_hits_total 2`,
		`orderstate_store_checkpoints_total `,
		// There before the first run, for alerts to compare against.
		`orderstate_reconciler_runs_total{job="report",result="ok"} 0`,
		`orderstate_reconciler_runs_total{job="report",result="failed"} 0`,
	} {
		require.Contains(t, m, want)
	}
	require.NotContains(t, m, `provider="nobody"`)

	// The gauge follows the store: an acknowledged anomaly is no longer open.
	st, body = s.do("GET", "/v1/anomalies?kind=duplicate", nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
	var list struct{ Anomalies []engine.Anomaly }
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Anomalies, 1)
	st, body = s.do("POST", fmt.Sprintf("/v1/anomalies/%d/ack", list.Anomalies[0].ID), []byte(`{"note":"provider retry"}`), nil)
	require.Equal(t, http.StatusOK, st, string(body))
	_, metrics = s.do("GET", "/metrics", nil, nil)
	require.Contains(t, string(metrics), `orderstate_anomalies_open{kind="duplicate"} 0`)
	require.Contains(t, string(metrics), `orderstate_anomalies_open{kind="out_of_order"} 1`)
}
