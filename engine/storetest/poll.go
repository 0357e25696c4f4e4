package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// pollEvent is what a poll of tazapay that found kind brings.
func pollEvent(kind sm.Kind, checkout string, amount int64) engine.Event {
	ev := engine.PollEvent("tazapay", checkout, "payment_status="+string(kind), kind)
	ev.Amount, ev.Currency = amount, "USD"
	return ev
}

// raiseMissing raises missing_webhook on every order redirected before now,
// as the sweep does.
func raiseMissing(t *testing.T, s Store, now time.Time) {
	t.Helper()
	sweepRead(t, s, func(tx engine.SweepTx) (int, error) {
		orders, err := tx.Redirected(engine.Key{}, now.Add(time.Second), 0)
		for _, o := range orders {
			if _, err := tx.Raise(o, engine.AnomalyMissingWebhook, "no webhook came"); err != nil {
				return 0, err
			}
		}
		return len(orders), err
	})
}

// testPollRecoversAMissingWebhook: a poll's fact goes through the same
// rules as a webhook's, is shown with its source, resolves missing_webhook
// as recovered by poll with how long it had been missing, and the webhook
// that brings the same fact later changes nothing.
func testPollRecoversAMissingWebhook(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	register(t, s, "order_1", "chk_1", 4999)
	_, err := s.ReportRedirect(ctx, "order_1", engine.RedirectSuccess)
	require.NoError(t, err)
	c.Add(20 * time.Minute)
	raiseMissing(t, s, c.Now())
	require.Equal(t, engine.StatusOpen, byKind(order(t, s, "order_1").Anomalies)[engine.AnomalyMissingWebhook].Status)

	c.Add(5 * time.Minute)
	res := ingest(t, s, pollEvent(sm.KindPaid, "chk_1", 4999))
	require.Equal(t, sm.Applied, res.Result)
	require.Equal(t, sm.Paid, res.State)
	again := ingest(t, s, pollEvent(sm.KindPaid, "chk_1", 4999))
	require.Equal(t, sm.Duplicate, again.Result, "the same answer to a second poll is the same fact")

	o := order(t, s, "order_1")
	require.Equal(t, sm.Paid, o.State)
	mw := byKind(o.Anomalies)[engine.AnomalyMissingWebhook]
	require.Equal(t, engine.StatusResolved, mw.Status)
	require.True(t, strings.HasPrefix(mw.Resolution, engine.RecoveredByPoll), mw.Resolution)
	require.Contains(t, mw.Resolution, "25m0s", "how long the webhook had been missing, from the redirect")
	require.Equal(t, engine.SourcePoll, o.Events[0].Source)

	c.Add(time.Minute)
	late := ingest(t, s, event("evt_paid", sm.KindPaid, "chk_1", 4999))
	require.NotEqual(t, sm.Conflict, late.Result)
	require.Equal(t, sm.Paid, late.State)
	o = order(t, s, "order_1")
	require.Equal(t, sm.Paid, o.State)
	require.Equal(t, int64(4999), o.Captured, "the webhook's capture is the poll's, not a second one")
	var sources []string
	for _, e := range o.Events {
		sources = append(sources, e.Source)
	}
	require.Equal(t, []string{"poll", "poll", "webhook"}, sources)
	require.Equal(t, sm.Paid, o.Events[2].FromState, "the webhook found the order where the poll left it")
	require.Equal(t, sm.Paid, o.Events[2].ToState)
	require.Equal(t, []string{engine.AnomalyDuplicate}, heldAnomalies(o, func(string) bool { return true }))
}

// testPollNeverLeavesAFinalState: a polled answer that contradicts the
// outcome the webhooks gave moves the order to needs_review with a
// conflict naming both facts, and replay agrees with the stored state.
func testPollNeverLeavesAFinalState(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	for _, tc := range []struct {
		order, checkout string
		webhook, poll   sm.Kind
		after           sm.State
	}{
		{"expired_then_paid", "chk_e", sm.KindExpired, sm.KindPaid, sm.NeedsReview},
		{"paid_then_expired", "chk_p", sm.KindPaid, sm.KindExpired, sm.NeedsReview},
		{"paid_then_paid", "chk_s", sm.KindPaid, sm.KindPaid, sm.Paid},
	} {
		register(t, s, tc.order, tc.checkout, 100)
		first := ingest(t, s, event("evt_"+tc.order, tc.webhook, tc.checkout, 100))
		c.Add(time.Second)
		res := ingest(t, s, pollEvent(tc.poll, tc.checkout, 100))
		o := order(t, s, tc.order)
		require.Equal(t, tc.after, o.State, tc.order)
		conflict, raised := byKind(o.Anomalies)[engine.AnomalyConflict]
		if tc.after != sm.NeedsReview {
			require.False(t, raised, tc.order)
			continue
		}
		require.Equal(t, sm.Conflict, res.Result, tc.order)
		require.True(t, raised, tc.order)
		require.Equal(t, engine.StatusOpen, conflict.Status)
		require.ElementsMatch(t, []int64{first.Seq, res.Seq}, conflict.EventSeqs, "both facts: %s", conflict.Detail)
		require.Contains(t, conflict.Detail, "poll")
	}
	var diffs []engine.ReplayDiff
	_, err := s.Replay(ctx, false, func(d engine.ReplayDiff) { diffs = append(diffs, d) })
	require.NoError(t, err)
	require.Empty(t, diffs, "replay folds a poll's fact by the same rule")
}

// testPollCandidates: the orders polling asks about, and a note that
// leaves the anomaly open.
func testPollCandidates(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	start := c.Now()
	for _, id := range []string{"waiting", "cancelled", "paid", "unredirected"} {
		register(t, s, id, "chk_"+id, 100)
	}
	for _, r := range []struct{ id, outcome string }{{"waiting", "success"}, {"cancelled", "cancel"}, {"paid", "success"}} {
		_, err := s.ReportRedirect(ctx, r.id, r.outcome)
		require.NoError(t, err)
	}
	ingest(t, s, event("evt_paid", sm.KindPaid, "chk_paid", 100))
	c.Add(10 * time.Minute)
	ids := func(os []engine.SweepOrder) []string {
		var out []string
		for _, o := range os {
			out = append(out, o.OrderID)
		}
		return out
	}
	got, err := s.PollCandidates(ctx, start.Add(-time.Hour), c.Now().Add(-5*time.Minute), engine.Key{}, 0)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"waiting", "cancelled"}, ids(got), "in flight and redirected long enough ago")
	got, err = s.PollCandidates(ctx, start.Add(-time.Hour), start, engine.Key{}, 0)
	require.NoError(t, err)
	require.Empty(t, got, "redirected too recently")

	// A stuck order without a redirect is a candidate through its anomaly.
	sweepRead(t, s, func(tx engine.SweepTx) (bool, error) {
		os, err := tx.InState(sm.Pending, engine.Key{}, c.Now().Add(time.Second), 0)
		for _, o := range os {
			if o.OrderID == "unredirected" {
				return tx.Raise(o, engine.AnomalyStuck, "pending too long")
			}
		}
		return false, err
	})
	got, err = s.PollCandidates(ctx, start.Add(-time.Hour), start, engine.Key{}, 1)
	require.NoError(t, err)
	require.Equal(t, []string{"unredirected"}, ids(got))
	require.Contains(t, got[0].Open, engine.AnomalyStuck)

	// Paged one at a time, newest first, every candidate comes once.
	var paged []string
	var before engine.Key
	for {
		page, err := s.PollCandidates(ctx, start.Add(-time.Hour), c.Now(), before, 1)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		paged = append(paged, ids(page)...)
		before = engine.PollKey(page[len(page)-1])
	}
	all, err := s.PollCandidates(ctx, start.Add(-time.Hour), c.Now(), engine.Key{}, 0)
	require.NoError(t, err)
	require.Equal(t, ids(all), paged)
	require.ElementsMatch(t, []string{"waiting", "cancelled", "unredirected"}, paged)

	stuck := byKind(order(t, s, "unredirected").Anomalies)[engine.AnomalyStuck]
	require.NoError(t, s.NoteAnomaly(ctx, stuck.ID, "polling gave up"))
	require.NoError(t, s.NoteAnomaly(ctx, stuck.ID, "polling gave up"))
	after := byKind(order(t, s, "unredirected").Anomalies)[engine.AnomalyStuck]
	require.Equal(t, engine.StatusOpen, after.Status)
	require.Equal(t, "polling gave up", after.Note, "a note repeated is kept once")
	requireCode(t, engine.ENOTFOUND, s.NoteAnomaly(ctx, 1<<40, "x"), "note on no anomaly")
}

// testSourcesOfEventsArrivingAtOnce: events that arrive together (which a
// store may write in one transaction) keep each its own source.
func testSourcesOfEventsArrivingAtOnce(t *testing.T, open Opener) {
	t.Parallel()
	c := NewClock()
	s := open(t, c.Now)
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			checkout := fmt.Sprintf("chk_%d", i)
			e := event("evt_"+checkout, sm.KindPaid, checkout, 100)
			if i%2 == 1 {
				e = pollEvent(sm.KindPaid, checkout, 100)
			}
			_, err := s.Ingest(context.Background(), e, request())
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
	for i := range n {
		o, err := s.OrderByCheckout(context.Background(), "tazapay", fmt.Sprintf("chk_%d", i))
		require.NoError(t, err)
		require.Len(t, o.Events, 1)
		want := engine.SourceWebhook
		if i%2 == 1 {
			want = engine.SourcePoll
		}
		require.Equal(t, want, o.Events[0].Source, "chk_%d", i)
	}
}
