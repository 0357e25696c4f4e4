package engine_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Refold gives an order that merged two orders' events the state they fold
// to together, and rewrites exactly the events whose outcome that changes.
func TestRefold_RewritesWhatTheMergeChanged(t *testing.T) {
	t.Parallel()
	steps := []engine.Step{
		// Recorded on an order of its own: refunded from pending.
		{Seq: 1, Kind: sm.KindRefunded, Amount: 0, Result: sm.Applied, From: sm.Pending, To: sm.Refunded},
		// Recorded on another order: failed from pending.
		{Seq: 2, Kind: sm.KindFailed, Result: sm.Applied, From: sm.Pending, To: sm.Failed},
	}
	fold, err := engine.Refold(1000, steps)
	require.NoError(t, err)
	require.Equal(t, sm.NeedsReview, fold.State)
	require.Len(t, fold.Changed, 1, "the refund's step stands; the failure's now leads into needs_review")
	require.Equal(t, int64(2), fold.Changed[0].Seq)
	require.Equal(t, sm.Refunded, fold.Changed[0].Outcome.From)
	require.Equal(t, sm.NeedsReview, fold.Changed[0].Outcome.To)
	require.True(t, fold.Totals.FullRefund)

	again, err := engine.Refold(1000, []engine.Step{steps[0], {Seq: 2, Kind: sm.KindFailed, Result: fold.Changed[0].Outcome.Result,
		From: sm.Refunded, To: sm.NeedsReview}})
	require.NoError(t, err)
	require.Empty(t, again.Changed, "a refold of what a refold wrote changes nothing")
}

func TestAddNote(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ notes, note, want string }{
		{"", "refunded", "refunded"},
		{"refunded", "", "refunded"},
		{"refunded", "refunded", "refunded"},
		{"a\nrefunded", "refunded", "a\nrefunded"},
		{"a", "b", "a\nb"},
	} {
		got, err := engine.AddNote(1, tc.notes, tc.note)
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
	_, err := engine.AddNote(7, string(make([]byte, engine.MaxNotes)), "x")
	require.Equal(t, engine.EINVALID, engine.ErrorCode(err))
	require.Error(t, engine.CheckNote(string(make([]rune, engine.MaxNote+1))))
	require.NoError(t, engine.CheckNote(string(make([]rune, engine.MaxNote))))
}
