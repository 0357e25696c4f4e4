package statemachine_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	sm "github.com/orderstate/orderstate/statemachine"
)

func TestApply_Classification(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		from   sm.State
		kind   sm.Kind
		to     sm.State
		result sm.Result
		late   bool
	}{
		{"CreatedOnPending", sm.Pending, sm.KindCheckoutCreated, sm.Pending, sm.Applied, false},
		{"CreatedAfterPaidIsStale", sm.Paid, sm.KindCheckoutCreated, sm.Paid, sm.Stale, false},
		{"ProcessingAfterPaidIsStale", sm.Paid, sm.KindPaymentProcessing, sm.Paid, sm.Stale, false},
		{"PaidSkipsAhead", sm.Pending, sm.KindPaid, sm.Paid, sm.Applied, false},
		{"PaidAfterExpiredIsLate", sm.Expired, sm.KindPaid, sm.Paid, sm.Applied, true},
		{"ExpiredAfterPaidIsBenign", sm.Paid, sm.KindExpired, sm.Paid, sm.Stale, false},
		{"FailedAfterPaidConflicts", sm.Paid, sm.KindFailed, sm.NeedsReview, sm.Conflict, true},
		{"PaidAfterFailedConflicts", sm.Failed, sm.KindPaid, sm.NeedsReview, sm.Conflict, true},
		{"FailedAfterSettlement", sm.Paid, sm.KindFailedAfterSettlement, sm.NeedsReview, sm.Conflict, false},
		{"RefundAfterPaid", sm.Paid, sm.KindRefunded, sm.Refunded, sm.Applied, false},
		{"RefundAfterExpiredIsLate", sm.Expired, sm.KindRefunded, sm.Refunded, sm.Applied, true},
		{"InformationalChangesNothing", sm.Processing, sm.KindInformational, sm.Processing, sm.Applied, false},
		{"UnknownIsIgnored", sm.Paid, sm.KindUnknown, sm.Paid, sm.Ignored, false},
		{"AnythingAfterReviewIsStale", sm.NeedsReview, sm.KindPaid, sm.NeedsReview, sm.Stale, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			totals := sm.Totals{Registered: 100}
			out, err := sm.Apply(tc.from, &totals, tc.kind, 0)
			require.NoError(t, err)
			require.Equal(t, tc.to, out.To)
			require.Equal(t, tc.result, out.Result)
			require.Equal(t, tc.late, out.LateAfterFinal)
		})
	}
}

func TestApply_RejectsCorruptInput(t *testing.T) {
	t.Parallel()
	var totals sm.Totals
	_, err := sm.Apply("bogus", &totals, sm.KindPaid, 0)
	require.ErrorContains(t, err, "unknown state")
	_, err = sm.Apply(sm.Pending, &totals, "bogus", 0)
	require.ErrorContains(t, err, "unknown event kind")
}

func TestRecount_RegisteredAmountArrivesAfterRefund(t *testing.T) {
	t.Parallel()
	totals := sm.Totals{}
	out, err := sm.Apply(sm.Pending, &totals, sm.KindRefunded, 500)
	require.NoError(t, err)
	require.Equal(t, sm.PartiallyRefunded, out.To)
	totals.Registered = 500
	require.Equal(t, sm.Refunded, sm.Recount(out.To, totals))
	require.Equal(t, sm.Paid, sm.Recount(sm.Paid, totals))
}

func TestMermaid_NamesEveryStateAndKind(t *testing.T) {
	t.Parallel()
	d := sm.Mermaid()
	require.True(t, strings.HasPrefix(d, "stateDiagram-v2\n"))
	for _, s := range sm.States {
		require.Contains(t, d, string(s))
	}
	for _, k := range sm.Kinds {
		if k == sm.KindInformational {
			continue // changes no state, so draws no edge
		}
		require.Contains(t, d, string(k))
	}
	require.Contains(t, d, "paid --> needs_review: failed, failed_after_settlement")
}

var update = flag.Bool("update", false, "rewrite golden files")

// TestMermaid_Golden keeps the README's diagram honest: it is this file.
func TestMermaid_Golden(t *testing.T) {
	t.Parallel()
	const golden = "../testdata/fsm.mmd"
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(sm.Mermaid()), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), sm.Mermaid())
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), "```mermaid\n"+string(want)+"```", "README.md shows an outdated diagram")
}
