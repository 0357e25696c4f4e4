package reconcile

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

func TestRecovered_PollVersusWebhookPerProvider(t *testing.T) {
	mw := func(provider, resolution string, state sm.State, status string) engine.Anomaly {
		return engine.Anomaly{Kind: engine.AnomalyMissingWebhook, Provider: provider, Resolution: resolution, State: state, Status: status}
	}
	got := recovered([]engine.Anomaly{
		mw("tazapay", engine.RecoveredByPoll+": tazapay answered payment_status=paid status=active; ...", sm.Paid, engine.StatusResolved),
		mw("tazapay", "tazapay checkout.paid arrived 20m after the redirect.", sm.Paid, engine.StatusResolved),
		mw("tazapay", engine.RecoveredByPoll+": ...", sm.Paid, engine.StatusResolved),
		mw("yoco", "yoco payment.succeeded arrived 1h after the redirect.", sm.Paid, engine.StatusResolved),
		mw("yoco", "The shop reported the customer's redirect as cancel, so no confirming webhook is expected.", sm.Pending, engine.StatusResolved),
		mw("tokenz", "", sm.Pending, engine.StatusAcknowledged),
		{Kind: engine.AnomalyStuck, Provider: "yoco", State: sm.Paid, Status: engine.StatusResolved},
	})
	require.Equal(t, []Recovered{
		{Provider: "tazapay", ByPoll: 2, ByWebhook: 1},
		{Provider: "yoco", ByPoll: 0, ByWebhook: 1},
	}, got)
}

func TestReport_PollingSectionOnlyWhenConfigured(t *testing.T) {
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rep := buildReport(&engine.ReportData{Since: at, Until: at.Add(24 * time.Hour)}, at.Add(24*time.Hour))
	for _, f := range []string{"md", "html", "json"} {
		out, err := rep.Render(f)
		require.NoError(t, err)
		require.NotContains(t, string(out), "olling", f)
	}
	rep.Polling = &engine.PollStats{Pollable: []string{"tazapay", "yoco"}, Unpollable: []string{"tokenz", "tweed"},
		Polls: []engine.PollCount{{Provider: "tazapay", Result: "recovered", Count: 3}}, GaveUp: 1}
	rep.Recovered = []Recovered{{Provider: "tazapay", ByPoll: 3, ByWebhook: 5}}
	for _, f := range []string{"md", "html", "json"} {
		out, err := rep.Render(f)
		require.NoError(t, err)
		s := string(out)
		require.Contains(t, s, "tokenz", f)
		require.Contains(t, s, "tweed", f)
		require.Contains(t, s, "recovered", f)
		if f != "json" {
			require.Contains(t, s, "Cannot be asked", f)
			require.Contains(t, s, "gave up on 1 orders", f)
		}
	}
}
