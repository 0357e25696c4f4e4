package statemachine_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sm "github.com/orderstate/orderstate/statemachine"
)

// step is one event of a scenario; scenarios list their steps in lifecycle
// order, and each step's provider time is later than the one before.
type step struct {
	kind   sm.Kind
	amount int64
}

type scenario struct {
	name       string
	registered int64
	steps      []step
	want       sm.State
}

// Scenarios is shared with the engine's property test through the exported
// copy in export_test.go.
var scenarios = []scenario{
	{"happy path", 4999, []step{{sm.KindCheckoutCreated, 0}, {sm.KindPaymentProcessing, 0}, {sm.KindPaid, 4999}}, sm.Paid},
	{"attempt fails then succeeds", 4999, []step{{sm.KindCheckoutCreated, 0}, {sm.KindPaymentProcessing, 0}, {sm.KindPaymentAttemptFailed, 0}, {sm.KindPaymentProcessing, 0}, {sm.KindPaid, 4999}}, sm.Paid},
	{"attempt fails then expires", 4999, []step{{sm.KindCheckoutCreated, 0}, {sm.KindPaymentAttemptFailed, 0}, {sm.KindExpired, 0}}, sm.Expired},
	{"paid then failed", 1080, []step{{sm.KindCheckoutCreated, 0}, {sm.KindPaid, 1080}, {sm.KindFailed, 0}}, sm.NeedsReview},
	{"refund before paid (partial)", 12500, []step{{sm.KindPaid, 12500}, {sm.KindRefunded, 2500}}, sm.PartiallyRefunded},
	{"refund only, full by registered amount", 12500, []step{{sm.KindRefunded, 12500}}, sm.Refunded},
	{"paid after expired", 4999, []step{{sm.KindCheckoutCreated, 0}, {sm.KindExpired, 0}, {sm.KindPaid, 4999}}, sm.Paid},
	// Tazapay: status expired with payment_status paid arrives as a paid
	// event next to the checkout.expired one.
	{"tazapay expired with payment_status paid", 4999, []step{{sm.KindCheckoutCreated, 0}, {sm.KindPaymentProcessing, 0}, {sm.KindPaid, 4999}, {sm.KindExpired, 0}, {sm.KindInformational, 0}}, sm.Paid},
	{"two partial refunds make a full one", 4999, []step{{sm.KindCheckoutCreated, 0}, {sm.KindPaid, 4999}, {sm.KindRefunded, 2000}, {sm.KindRefunded, 2999}}, sm.Refunded},
	{"partial refund, refund failure noted", 4999, []step{{sm.KindPaid, 4999}, {sm.KindRefunded, 1000}, {sm.KindInformational, 0}}, sm.PartiallyRefunded},
	{"tweed on-chain path", 1080, []step{{sm.KindCheckoutCreated, 0}, {sm.KindPaymentProcessing, 0}, {sm.KindPaymentProcessing, 0}, {sm.KindPaid, 1080}}, sm.Paid},
	{"tweed failed after tx completed", 1080, []step{{sm.KindCheckoutCreated, 0}, {sm.KindPaymentProcessing, 0}, {sm.KindPaid, 1080}, {sm.KindFailedAfterSettlement, 0}}, sm.NeedsReview},
	{"tweed failed", 1080, []step{{sm.KindCheckoutCreated, 0}, {sm.KindPaymentProcessing, 0}, {sm.KindFailed, 0}}, sm.Failed},
	{"expired then failed", 500, []step{{sm.KindCheckoutCreated, 0}, {sm.KindExpired, 0}, {sm.KindFailed, 0}}, sm.Failed},
	{"paid, failed and refunded", 500, []step{{sm.KindPaid, 500}, {sm.KindFailed, 0}, {sm.KindRefunded, 500}}, sm.NeedsReview},
	{"only processing", 500, []step{{sm.KindCheckoutCreated, 0}, {sm.KindPaymentProcessing, 0}}, sm.Processing},
	{"only created", 500, []step{{sm.KindCheckoutCreated, 0}, {sm.KindInformational, 0}}, sm.Pending},
	{"refund without amount is full", 500, []step{{sm.KindPaid, 500}, {sm.KindRefunded, 0}}, sm.Refunded},
	{"captured larger than registered", 500, []step{{sm.KindPaid, 800}, {sm.KindRefunded, 500}}, sm.PartiallyRefunded},
	{"long mixed", 4999, []step{{sm.KindCheckoutCreated, 0}, {sm.KindPaymentProcessing, 0}, {sm.KindPaymentAttemptFailed, 0}, {sm.KindPaymentProcessing, 0}, {sm.KindPaid, 4999}, {sm.KindExpired, 0}, {sm.KindRefunded, 999}, {sm.KindRefunded, 4000}, {sm.KindInformational, 0}}, sm.Refunded},
}

// fold applies the steps in the given arrival order (indices into the
// scenario, possibly repeated: a repeat is a duplicate delivery and is
// skipped, as the engine's dedupe does) and reports the final state and
// whether any event was seen as out of order.
func fold(t *testing.T, sc scenario, order []int) (sm.State, bool) {
	t.Helper()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	state, totals, prog := sm.Pending, sm.Totals{Registered: sc.registered}, sm.NewProgress()
	seen := map[int]bool{}
	flagged := false
	for _, i := range order {
		if seen[i] {
			continue
		}
		seen[i] = true
		st := sc.steps[i]
		if prog.Observe(st.kind, base.Add(time.Duration(i)*time.Minute)) {
			flagged = true
		}
		out, err := sm.Apply(state, &totals, st.kind, st.amount)
		require.NoError(t, err)
		state = out.To
	}
	return state, flagged
}

// inLifecycleOrder reports whether the first deliveries of each step came in
// scenario order, ignoring steps with no lifecycle rank.
func inLifecycleOrder(sc scenario, order []int) bool {
	seen, last := map[int]bool{}, -1
	for _, i := range order {
		if seen[i] || sc.steps[i].kind.Rank() < 0 {
			continue
		}
		seen[i] = true
		if i < last {
			return false
		}
		last = i
	}
	return true
}

func permutations(n int, visit func([]int)) {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	var rec func(k int)
	rec = func(k int) {
		if k == n {
			visit(append([]int(nil), p...))
			return
		}
		for i := k; i < n; i++ {
			p[k], p[i] = p[i], p[k]
			rec(k + 1)
			p[k], p[i] = p[i], p[k]
		}
	}
	rec(0)
}

func TestEveryArrivalOrderEndsInTheSameState(t *testing.T) {
	t.Parallel()
	covered := map[sm.Kind]bool{}
	for _, sc := range scenarios {
		for _, st := range sc.steps {
			covered[st.kind] = true
		}
	}
	for _, k := range sm.Kinds {
		require.True(t, covered[k], "no scenario covers kind %s", k)
	}
	require.GreaterOrEqual(t, len(scenarios), 12)

	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			facts := make([]sm.Fact, len(sc.steps))
			for i, st := range sc.steps {
				facts[i] = sm.Fact{Kind: st.kind, Amount: st.amount}
			}
			require.Equal(t, sc.want, sm.Decide(sc.registered, facts), "the set rules disagree with the scenario")

			check := func(order []int) {
				got, flagged := fold(t, sc, order)
				require.Equal(t, sc.want, got, "arrival order %v", order)
				require.Equal(t, !inLifecycleOrder(sc, order), flagged, "out-of-order flag for arrival order %v", order)
			}
			if len(sc.steps) <= 7 {
				n := 0
				permutations(len(sc.steps), func(p []int) { n++; check(p) })
				require.Positive(t, n)
				return
			}
			rng := rand.New(rand.NewPCG(uint64(len(sc.name)), 42))
			for range 1000 {
				order := rng.Perm(len(sc.steps))
				for range rng.IntN(4) { // random duplicate deliveries anywhere
					pos := rng.IntN(len(order) + 1)
					order = append(order[:pos], append([]int{order[rng.IntN(len(order))]}, order[pos:]...)...)
				}
				check(order)
			}
		})
	}
}

func TestInOrderArrivalIsNeverFlagged(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios {
		order := make([]int, len(sc.steps))
		for i := range order {
			order[i] = i
		}
		_, flagged := fold(t, sc, order)
		require.False(t, flagged, sc.name)
	}
}
