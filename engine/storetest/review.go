package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// arrivals runs every arrival order of events, with the registration (when
// reg is not nil) at every moment among them, each on fresh ids, and hands
// each resulting order to check. Ids in events and reg are placeholders:
// each run suffixes them, and an event's Reference becomes the run's
// order id.
func arrivals(t *testing.T, s engine.Store, name string, reg *engine.Registration, events []engine.Event, check func(t *testing.T, o *engine.Order, how string)) {
	t.Helper()
	ctx := context.Background()
	run := 0
	for _, perm := range permutations(len(events)) {
		moments := []int{-1}
		if reg != nil {
			moments = moments[:0]
			for at := 0; at <= len(events); at++ {
				moments = append(moments, at)
			}
		}
		for _, at := range moments {
			run++
			sfx := fmt.Sprintf("_%s_%d", name, run)
			orderID := "SO" + sfx
			how := ""
			register := func() {
				r := *reg
				r.OrderID, r.CheckoutID, r.OtherIDs = orderID, r.CheckoutID+sfx, nil
				for _, id := range reg.OtherIDs {
					r.OtherIDs = append(r.OtherIDs, id+sfx)
				}
				_, err := s.RegisterOrder(ctx, r)
				require.NoError(t, err)
				how += " register"
			}
			for i, p := range perm {
				if i == at {
					register()
				}
				e := events[p]
				e.EventID, e.DedupeKey, e.CheckoutID = e.EventID+sfx, e.DedupeKey+sfx, e.CheckoutID+sfx
				e.Refs = nil
				for _, id := range events[p].Refs {
					e.Refs = append(e.Refs, id+sfx)
				}
				if e.Reference != "" {
					e.Reference = orderID
				}
				ingest(t, s, e)
				how += " " + events[p].Type
			}
			if at == len(events) {
				register()
			}
			var o *engine.Order
			if reg != nil {
				o = order(t, s, orderID)
			} else {
				var err error
				o, err = s.OrderByCheckout(ctx, events[0].Provider, events[0].CheckoutID+sfx)
				require.NoError(t, err)
			}
			check(t, o, how)
		}
	}
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

func typed(e engine.Event, typ string) engine.Event { e.Type = typ; return e }

// testReviewCases are the cases an outside review found where anomalies
// depended on arrival order or a payment was lost between orders; each
// runs in every arrival order and at every moment of registration.
func testReviewCases(t *testing.T, open Opener) {
	t.Parallel()
	c := NewClock()
	s := open(t, c.Now)
	reg := &engine.Registration{Provider: "tazapay", CheckoutID: "C", Amount: 1000, Currency: "USD", Mode: engine.ModeLive}
	tweedReg := *reg
	tweedReg.Provider = "tweed"
	paid := func(id string, ids ...string) engine.Event {
		e := ev("tazapay", id, sm.KindPaid, ids[0], ids[1:]...)
		e.Amount = 1000
		return e
	}
	held := func(kinds ...string) func(t *testing.T, o *engine.Order, how string) {
		return func(t *testing.T, o *engine.Order, how string) {
			t.Helper()
			require.Equal(t, sortedUnique(kinds), heldAnomalies(o, engine.IsOrderFree), "arrived as%s", how)
		}
	}

	t.Run("FailedTwiceIsNoConflict", func(t *testing.T) {
		arrivals(t, s, "ft", &tweedReg, []engine.Event{
			typed(ev("tweed", "f", sm.KindFailed, "C"), "FAILED"),
			typed(ev("tweed", "fas", sm.KindFailedAfterSettlement, "C"), "FAILED_AFTER_TX_COMPLETED"),
		}, held(engine.AnomalyFailedAfterSettlement))
	})
	t.Run("PaidBesideFailedConflictsInEveryOrder", func(t *testing.T) {
		arrivals(t, s, "pf", &tweedReg, []engine.Event{
			typed(ev("tweed", "f", sm.KindFailed, "C"), "FAILED"),
			typed(ev("tweed", "fas", sm.KindFailedAfterSettlement, "C"), "FAILED_AFTER_TX_COMPLETED"),
			typed(func() engine.Event { e := paid("d", "C"); e.Provider = "tweed"; return e }(), "DONE"),
		}, held(engine.AnomalyConflict, engine.AnomalyFailedAfterSettlement))
	})
	t.Run("RefundCancelledCreatedMergeIntoAConflict", func(t *testing.T) {
		// The refund's payin field held the checkout id, so it names the
		// checkout; the cancellation names the payin; only the created
		// event ties the two.
		refund := ev("tazapay", "r", sm.KindRefunded, "C", "pat")
		cancelled := ev("tazapay", "x", sm.KindFailed, "P")
		created := ev("tazapay", "c", sm.KindCheckoutCreated, "C", "P")
		events := []engine.Event{typed(refund, "refund.succeeded"), typed(cancelled, "payin.cancelled"), typed(created, "checkout.created")}
		check := func(t *testing.T, o *engine.Order, how string) {
			require.Equal(t, sm.NeedsReview, o.State, "arrived as%s", how)
			require.Equal(t, []string{engine.AnomalyConflict}, heldAnomalies(o, engine.IsOrderFree), "arrived as%s", how)
			steps := 0
			for _, e := range o.Events {
				if e.ToState == sm.NeedsReview && e.FromState != sm.NeedsReview {
					steps++
				}
			}
			require.Equal(t, 1, steps, "the timeline shows the step into needs_review once; arrived as%s", how)
		}
		// Never registered: the orders the events made merge.
		arrivals(t, s, "rcc", nil, []engine.Event{events[2], events[0], events[1]}, check)
		// Registered, the payin among its other ids, at every moment.
		withPayin := *reg
		withPayin.OtherIDs = []string{"P"}
		arrivals(t, s, "rccr", &withPayin, events, check)
	})
	t.Run("TwoNotPaidOutcomesAreNotLate", func(t *testing.T) {
		arrivals(t, s, "np", reg, []engine.Event{
			typed(ev("tazapay", "e", sm.KindExpired, "C"), "checkout.expired"),
			typed(ev("tazapay", "x", sm.KindFailed, "C"), "payin.cancelled"),
		}, func(t *testing.T, o *engine.Order, how string) {
			require.Empty(t, heldAnomalies(o, func(string) bool { return true }), "arrived as%s", how)
		})
	})
	t.Run("AnEventThatChangesNothingRaisesNothing", func(t *testing.T) {
		unknown := ev("tazapay", "u", sm.KindUnknown, "C")
		unknown.Type, unknown.Mode = "payout.created", engine.ModeTest
		info := ev("tazapay", "i", sm.KindInformational, "C")
		info.Type, info.Mode = "refund.failed", engine.ModeTest
		arrivals(t, s, "cn", reg, []engine.Event{unknown, info}, held())
	})
	t.Run("CurrencyAndAmountBothDifferOnlyCurrencyIsRaised", func(t *testing.T) {
		e := paid("p", "C")
		e.Amount, e.Currency = 1350, "SGD"
		arrivals(t, s, "ca", reg, []engine.Event{e}, held(engine.AnomalyCurrencyMismatch))
	})
	t.Run("PaymentNamingOnlyThePayinAndTheReferenceIsAdopted", func(t *testing.T) {
		att := typed(paid("a", "P", "pat"), "payment_attempt.succeeded")
		att.Reference = "SO"
		arrivals(t, s, "pr", reg, []engine.Event{att}, func(t *testing.T, o *engine.Order, how string) {
			require.Equal(t, sm.Paid, o.State, "arrived as%s", how)
			require.Equal(t, []string{engine.AnomalyCheckoutMismatch}, heldAnomalies(o, engine.IsOrderFree), "arrived as%s", how)
		})
		withPayin := *reg
		withPayin.OtherIDs = []string{"P"}
		arrivals(t, s, "prr", &withPayin, []engine.Event{att}, func(t *testing.T, o *engine.Order, how string) {
			require.Equal(t, sm.Paid, o.State, "arrived as%s", how)
			require.Empty(t, heldAnomalies(o, engine.IsOrderFree), "the payin was registered; arrived as%s", how)
		})
	})
	t.Run("AnOrderHoldingThePayinJoinsTheReferencedOne", func(t *testing.T) {
		att := typed(paid("a", "P", "pat"), "payment_attempt.succeeded")
		refund := typed(ev("tazapay", "r", sm.KindRefunded, "P", "pat"), "refund.succeeded")
		refund.Amount, refund.Reference = 400, "SO"
		arrivals(t, s, "hp", reg, []engine.Event{att, refund}, func(t *testing.T, o *engine.Order, how string) {
			require.Equal(t, sm.PartiallyRefunded, o.State, "arrived as%s", how)
			require.Len(t, o.Events, 2, "arrived as%s", how)
		})
	})
	t.Run("PaidOnAnotherCheckoutByReferenceIsFlagged", func(t *testing.T) {
		other := typed(paid("o", "X"), "checkout.paid")
		other.Reference = "SO"
		arrivals(t, s, "oc", reg, []engine.Event{other}, func(t *testing.T, o *engine.Order, how string) {
			require.Equal(t, sm.Paid, o.State, "attached; arrived as%s", how)
			require.Equal(t, []string{engine.AnomalyCheckoutMismatch}, heldAnomalies(o, engine.IsOrderFree), "arrived as%s", how)
		})
		registered := *reg
		registered.OtherIDs = []string{"X"}
		arrivals(t, s, "ocr", &registered, []engine.Event{other}, held())
	})
}

// testCheckoutMismatchAfterATie: a payment on the payin alone is foreign
// until checkout.created ties the payin to the registered checkout; a
// payment on another checkout, named by the shop's reference alone, is
// foreign whatever else arrived. So checkout_mismatch holds for the set,
// in every arrival order.
func testCheckoutMismatchAfterATie(t *testing.T, open Opener) {
	t.Parallel()
	c := NewClock()
	s := open(t, c.Now)
	reg := &engine.Registration{Provider: "tazapay", CheckoutID: "C", Amount: 1000, Currency: "USD", Mode: engine.ModeLive}
	att := typed(ev("tazapay", "a", sm.KindPaid, "P", "pat"), "payment_attempt.succeeded")
	att.Amount, att.Reference = 1000, "SO"
	created := typed(ev("tazapay", "c", sm.KindCheckoutCreated, "C", "P"), "checkout.created")
	other := typed(ev("tazapay", "o", sm.KindPaid, "X"), "checkout.paid")
	other.Amount, other.Reference = 1000, "SO"
	arrivals(t, s, "tie", reg, []engine.Event{att, created, other}, func(t *testing.T, o *engine.Order, how string) {
		require.Equal(t, []string{engine.AnomalyCheckoutMismatch}, heldAnomalies(o, engine.IsOrderFree), "arrived as%s", how)
	})
}
