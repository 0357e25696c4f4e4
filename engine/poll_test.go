package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sm "github.com/orderstate/orderstate/statemachine"
)

func TestApply_PollNeverLeavesAFinalStateByItself(t *testing.T) {
	for _, tc := range []struct {
		state  sm.State
		kind   sm.Kind
		source string
		to     sm.State
		result sm.Result
	}{
		{sm.Pending, sm.KindPaid, SourcePoll, sm.Paid, sm.Applied},
		{sm.Processing, sm.KindExpired, SourcePoll, sm.Expired, sm.Applied},
		{sm.Paid, sm.KindPaid, SourcePoll, sm.Paid, sm.Applied},
		{sm.Expired, sm.KindPaid, SourcePoll, sm.NeedsReview, sm.Conflict},
		{sm.Expired, sm.KindPaid, SourceWebhook, sm.Paid, sm.Applied},
		{sm.Paid, sm.KindExpired, SourcePoll, sm.NeedsReview, sm.Conflict},
		{sm.Paid, sm.KindExpired, SourceWebhook, sm.Paid, sm.Stale},
		{sm.Refunded, sm.KindExpired, SourcePoll, sm.NeedsReview, sm.Conflict},
		{sm.Failed, sm.KindPaid, SourcePoll, sm.NeedsReview, sm.Conflict},
		{sm.Expired, sm.KindExpired, SourcePoll, sm.Expired, sm.Applied},
		{sm.Paid, sm.KindPaymentProcessing, SourcePoll, sm.Paid, sm.Stale},
		{sm.NeedsReview, sm.KindPaid, SourcePoll, sm.NeedsReview, sm.Stale},
	} {
		var totals sm.Totals
		out, err := Apply(tc.state, &totals, tc.kind, 100, tc.source)
		require.NoError(t, err)
		require.Equal(t, tc.to, out.To, "%s %s by %s", tc.state, tc.kind, tc.source)
		require.Equal(t, tc.result, out.Result, "%s %s by %s", tc.state, tc.kind, tc.source)
	}
}

func TestAssess_PollConflictNamesBothFacts(t *testing.T) {
	facts := Facts{State: sm.NeedsReview, Events: []Fact{
		{Seq: 1, Provider: "tazapay", Type: "checkout.expired", Kind: sm.KindExpired, Source: SourceWebhook, Result: sm.Applied},
		{Seq: 2, Provider: "tazapay", Type: "payment_status=paid", Kind: sm.KindPaid, Source: SourcePoll, Result: sm.Conflict},
	}}
	found := Assess(facts)
	require.Len(t, found, 1)
	require.Equal(t, AnomalyConflict, found[0].Kind)
	require.Equal(t, []int64{1, 2}, found[0].Seqs)
	require.Contains(t, found[0].Detail, "Asked by poll")

	// The same answer that found the order still open raised nothing.
	facts.Events[1].Result = sm.Applied
	require.Empty(t, Assess(facts))
}

func TestSettledResolutions_RecoveredByPoll(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	ev := PollEvent("yoco", "ch_1", "status=completed", sm.KindPaid)
	res := SettledResolutions(ev, sm.Outcome{From: sm.Pending, To: sm.Paid, Result: sm.Applied},
		&Redirect{Outcome: RedirectSuccess, At: at}, at.Add(47*time.Minute))
	require.Equal(t, AnomalyMissingWebhook, res[0].Kind)
	require.True(t, strings.HasPrefix(res[0].Why, RecoveredByPoll), res[0].Why)
	require.Contains(t, res[0].Why, "47m0s")
	require.Equal(t, "poll:ch_1:paid", ev.DedupeKey)
	require.NoError(t, ValidateEvent(ev))
}
