package reconcile_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/reconcile"
	sm "github.com/orderstate/orderstate/statemachine"
)

// With RetainRaw set, each sweep purges the raw requests received longer
// ago than that, in chunks, and the report says how much went.
func TestRetention_SweepPurgesAndTheReportSays(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{RetainRaw: 90 * 24 * time.Hour, SweepChunk: 2})
	for i := range 5 {
		e.ingest(e.ev("tazapay", "chk_old", sm.KindCheckoutCreated, 0, withID("evt_old_"+string(rune('a'+i)))))
	}
	e.clock.Add(60 * 24 * time.Hour)
	e.ingest(e.ev("tazapay", "chk_new", sm.KindCheckoutCreated, 0))
	e.clock.Add(31 * 24 * time.Hour) // the first five are 91 days old, the last 31

	res, err := e.rec.RunSweep(e.ctx)
	require.NoError(t, err)
	require.NotNil(t, res.RawPurged)
	require.Equal(t, 5, res.RawPurged.Requests, "the five older than 90 days, two to a transaction")
	require.Equal(t, int64(5*(len(`{}`)+len(`{"Content-Type":"application/json"}`))), res.RawPurged.Bytes)
	require.False(t, res.RawPurged.More)
	require.True(t, res.RawPurged.Before.Equal(e.clock.Now().Add(-90*24*time.Hour)))
	res, err = e.rec.RunSweep(e.ctx)
	require.NoError(t, err)
	require.Zero(t, res.RawPurged.Requests, "each once")

	rep, err := e.rec.BuildReport(e.ctx, e.clock.Now().Add(-24*time.Hour), e.clock.Now().Add(time.Second))
	require.NoError(t, err)
	require.NotNil(t, rep.RawPurged)
	require.Equal(t, "90d", rep.RawPurged.RetainRaw)
	require.Equal(t, 5, rep.RawPurged.Retention.Requests)
	md, err := rep.Render(reconcile.FormatMarkdown)
	require.NoError(t, err)
	require.Contains(t, string(md), "## Raw requests purged")
	require.Contains(t, string(md), "are kept for 90d.")
	require.Contains(t, string(md), "Purged in the period: 5 raw requests (185 B) past the retention, and on request 0 raw requests (0 B) of 0 orders.")
	html, err := rep.Render(reconcile.FormatHTML)
	require.NoError(t, err)
	require.Contains(t, string(html), "<h2>Raw requests purged</h2>")
	js, err := rep.Render(reconcile.FormatJSON)
	require.NoError(t, err)
	require.Contains(t, strings.Join(strings.Fields(string(js)), " "), `"raw_purged": { "retain_raw": "90d", "retention": { "requests": 5, "bytes": 185 }`)

	// Without a retention and with nothing purged, the report says nothing
	// of it.
	plain := setup(t, reconcile.Config{})
	rep, err = plain.rec.BuildReport(plain.ctx, start.Add(-time.Hour), start)
	require.NoError(t, err)
	require.Nil(t, rep.RawPurged)
	res, err = plain.rec.RunSweep(plain.ctx)
	require.NoError(t, err)
	require.Nil(t, res.RawPurged)
}

func TestFormatRetention(t *testing.T) {
	t.Parallel()
	require.Equal(t, "90d", reconcile.FormatRetention(90*24*time.Hour))
	require.Equal(t, "36h0m0s", reconcile.FormatRetention(36*time.Hour))
}
