package reconcile

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
)

func TestHuman(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                               "0s",
		47 * time.Second:                "47s",
		15 * time.Minute:                "15m",
		47*time.Minute + 30*time.Second: "47m 30s",
		time.Hour + 7*time.Minute:       "1h 7m",
		2*time.Hour + 5*time.Second:     "2h",
		24*time.Hour + 30*time.Minute:   "1d 30m",
		49 * time.Hour:                  "2d 1h",
		-90 * time.Second:               "-1m 30s",
		1500 * time.Millisecond:         "2s",
		3*24*time.Hour + 59*time.Second: "3d",
	} {
		require.Equal(t, want, human(d), d.String())
	}
}

func TestLagPercentiles(t *testing.T) {
	t.Parallel()
	var lags []time.Duration
	for i := 1; i <= 100; i++ {
		lags = append(lags, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, Lag{Samples: 100, P50Ms: 50, P95Ms: 95, MaxMs: 100}, lag(lags))
	require.Equal(t, Lag{Samples: 1, P50Ms: 7, P95Ms: 7, MaxMs: 7}, lag([]time.Duration{7 * time.Millisecond}))
	require.Equal(t, Lag{}, lag(nil))
}

func TestKinds_EveryKindIsDescribed(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, k := range kinds {
		seen[k.kind] = true
	}
	for _, k := range engine.AnomalyKinds {
		require.True(t, seen[k], "the report has no title or action for %s", k)
	}
}

func TestFileStamp(t *testing.T) {
	t.Parallel()
	require.Equal(t, "2026-03-02T0300Z", FileStamp(time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)))
	require.Equal(t, "2026-03-02T030010Z", FileStamp(time.Date(2026, 3, 2, 3, 0, 10, 0, time.UTC)))
}
