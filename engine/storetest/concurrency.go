package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Webhooks arrive at once: a provider retries before its first delivery
// was answered, and sends an order's events in parallel. A store with
// several writers (replicas sharing one database) must give the same
// answers as one that serialises them.

// together runs fns at once, as near the same instant as goroutines allow.
func together(fns ...func()) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for _, fn := range fns {
		ready.Add(1)
		done.Go(func() {
			ready.Done()
			<-start
			fn()
		})
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// testConcurrentRedeliveries: the same event delivered many times at once
// is applied once and counted a duplicate every other time, whether its
// order was registered, is made by the event, or there is none.
func testConcurrentRedeliveries(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	copies, rounds := 16, 8
	if raceEnabled {
		copies, rounds = 6, 2
	}
	for round := range rounds {
		for _, variant := range []string{"registered", "unregistered", "no order"} {
			checkout := fmt.Sprintf("chk_%d_%s", round, variant)
			ev := event(fmt.Sprintf("evt_%d_%s", round, variant), sm.KindPaid, checkout, 100)
			switch variant {
			case "registered":
				register(t, s, fmt.Sprintf("o_%d", round), checkout, 100)
			case "no order":
				ev.Kind, ev.CheckoutID = sm.KindUnknown, ""
			}
			results := make([]engine.IngestResult, copies)
			errs := make([]error, copies)
			fns := make([]func(), copies)
			for i := range fns {
				fns[i] = func() { results[i], errs[i] = s.Ingest(ctx, ev, request()) }
			}
			together(fns...)
			first := 0
			for i := range copies {
				require.NoError(t, errs[i], "round %d %s copy %d", round, variant, i)
				if results[i].Result != sm.Duplicate {
					first++
				}
			}
			require.Equal(t, 1, first, "round %d %s: one delivery is the event, every other a duplicate", round, variant)
			if variant == "no order" {
				continue
			}
			o, err := s.OrderByCheckout(ctx, "tazapay", checkout)
			require.NoError(t, err)
			require.Equal(t, sm.Paid, o.State)
			require.Equal(t, int64(100), o.Captured)
			require.Len(t, o.Events, copies, "round %d %s: one order holds every delivery", round, variant)
			require.Equal(t, copies-1, byKind(o.Anomalies)[engine.AnomalyDuplicate].Count)
		}
	}
	n, err := s.Replay(ctx, false, func(engine.ReplayDiff) {})
	require.NoError(t, err)
	require.Equal(t, 2*rounds, n, "one order per registered or unregistered checkout, none made twice")
}

// testConcurrentEventsOfOneOrder: an order's distinct events delivered at
// once, some naming only its payin and the registration among them, fold
// into the one state statemachine.Decide gives their set.
func testConcurrentEventsOfOneOrder(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	rounds := 12
	if raceEnabled {
		rounds = 3
	}
	r := rand.New(rand.NewPCG(20260301, 2))
	// Few events, and few that decide the state whatever else holds
	// (failed after settlement), so most sets tell a lost event apart.
	kinds := []sm.Kind{sm.KindCheckoutCreated, sm.KindCheckoutCreated, sm.KindPaymentProcessing, sm.KindPaymentProcessing,
		sm.KindPaymentAttemptFailed, sm.KindPaid, sm.KindPaid, sm.KindPaid, sm.KindFailed, sm.KindExpired, sm.KindRefunded,
		sm.KindRefunded, sm.KindFailedAfterSettlement, sm.KindInformational}
	for round := range rounds {
		orderID, checkout, payin := fmt.Sprintf("SO_%d", round), fmt.Sprintf("chk_%d", round), fmt.Sprintf("pay_%d", round)
		const amount = 5000
		// The registration comes before the events, among them, or after
		// them: then the orders the events made by each id, at once, are
		// merged into it.
		when := []string{"before", "among", "after"}[round%3]
		var events []engine.Event
		var facts []sm.Fact
		for i := range 3 + r.IntN(5) {
			kind := kinds[r.IntN(len(kinds))]
			var amt int64
			switch kind {
			case sm.KindPaid:
				amt = amount
			case sm.KindRefunded:
				amt = []int64{0, 1000, 2500}[r.IntN(3)]
			}
			e := event(fmt.Sprintf("e_%d_%d", round, i), kind, checkout, amt)
			switch r.IntN(3) {
			case 0:
				e.CheckoutID = payin // a payment attempt knows only the payin
			case 1:
				if when != "after" { // else only the registration ties the two ids together
					e.Refs = []string{payin}
				}
			}
			events = append(events, e)
			facts = append(facts, sm.Fact{Kind: kind, Amount: amt})
		}
		reg := engine.Registration{OrderID: orderID, Provider: "tazapay", CheckoutID: checkout, Amount: amount, Currency: "USD",
			Mode: engine.ModeLive, OtherIDs: []string{payin}}
		registerOrder := func() error { _, err := s.RegisterOrder(ctx, reg); return err }
		if when == "before" {
			require.NoError(t, registerOrder())
		}
		errs := make([]error, len(events)+1)
		var fns []func()
		for i, e := range events {
			fns = append(fns, func() { _, errs[i] = s.Ingest(ctx, e, request()) })
		}
		if when == "among" {
			fns = append(fns, func() { errs[len(events)] = registerOrder() })
		}
		together(fns...)
		if when == "after" {
			errs[len(events)] = registerOrder()
		}
		for i, err := range errs {
			require.NoError(t, err, "round %d call %d", round, i)
		}
		o := order(t, s, orderID)
		require.Equal(t, sm.Decide(amount, facts), o.State, "round %d, registered %s: %v", round, when, facts)
		require.Len(t, o.Events, len(events), "round %d: every event is on the order", round)
		for _, e := range o.Events {
			require.NotEqual(t, sm.Duplicate, e.Result, "round %d: no event is anyone's duplicate", round)
		}
		byPayin, err := s.OrderByCheckout(ctx, "tazapay", payin)
		require.NoError(t, err)
		require.Equal(t, o.Ref, byPayin.Ref, "round %d: the payin names the order", round)
	}
	var diffs []engine.ReplayDiff
	n, err := s.Replay(ctx, false, func(d engine.ReplayDiff) { diffs = append(diffs, d) })
	require.NoError(t, err)
	require.Equal(t, rounds, n, "no order was left apart")
	require.Empty(t, diffs)
}

// testConcurrentRegistrations: a shop retrying a registration registers
// one order; two orders registered on one checkout at once are one order
// and one conflict, never two orders or a failure of the store.
func testConcurrentRegistrations(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	copies, rounds := 8, 6
	if raceEnabled {
		copies, rounds = 4, 2
	}
	for round := range rounds {
		checkout := fmt.Sprintf("chk_%d", round)
		// Retries of one registration, and a webhook for its checkout.
		errs := make([]error, copies+1)
		fns := []func(){func() {
			_, errs[copies] = s.Ingest(ctx, event(fmt.Sprintf("e_%d", round), sm.KindPaid, checkout, 100), request())
		}}
		for i := range copies {
			fns = append(fns, func() {
				_, errs[i] = s.RegisterOrder(ctx, engine.Registration{OrderID: fmt.Sprintf("o_%d", round), Provider: "tazapay",
					CheckoutID: checkout, Amount: 100, Currency: "USD"})
			})
		}
		together(fns...)
		for i, err := range errs {
			require.NoError(t, err, "round %d call %d", round, i)
		}
		o := order(t, s, fmt.Sprintf("o_%d", round))
		require.Equal(t, sm.Paid, o.State)
		require.Len(t, o.Events, 1)

		// Two orders on one checkout, several times each.
		other := fmt.Sprintf("chk_x%d", round)
		ids := []string{fmt.Sprintf("a_%d", round), fmt.Sprintf("b_%d", round)}
		codes := make([]string, 2*copies)
		fns = fns[:0]
		for i := range 2 * copies {
			fns = append(fns, func() {
				_, err := s.RegisterOrder(ctx, engine.Registration{OrderID: ids[i%2], Provider: "tazapay", CheckoutID: other,
					Amount: 100, Currency: "USD"})
				codes[i] = engine.ErrorCode(err)
			})
		}
		together(fns...)
		winner, err := s.OrderByCheckout(ctx, "tazapay", other)
		require.NoError(t, err)
		for i, code := range codes {
			if ids[i%2] == winner.OrderID {
				require.Empty(t, code, "round %d: %s registered", round, ids[i%2])
			} else {
				require.Equal(t, engine.ECONFLICT, code, "round %d: the checkout is %s's", round, winner.OrderID)
			}
		}
		loser := ids[0]
		if winner.OrderID == ids[0] {
			loser = ids[1]
		}
		_, err = s.Order(ctx, loser)
		requireCode(t, engine.ENOTFOUND, err, "the order that lost")
	}
	n, err := s.Replay(ctx, false, func(engine.ReplayDiff) {})
	require.NoError(t, err)
	require.Equal(t, 2*rounds, n)
}

// testConcurrentCounts: rejection counts written at once for one hour add
// up, and acknowledgements made at once each keep their note.
func testConcurrentCounts(t *testing.T, open Opener) {
	t.Parallel()
	h := newShop(t, open)
	writers := 16
	if raceEnabled {
		writers = 6
	}
	from := h.c.Now()
	fns := make([]func(), writers)
	errs := make([]error, writers)
	for i := range fns {
		fns[i] = func() {
			errs[i] = h.s.RecordRejections(h.ctx, from.Add(time.Duration(i)*time.Second),
				map[[2]string]int{{"tazapay", "signature"}: 1, {"tazapay", "malformed"}: i})
		}
	}
	together(fns...)
	for _, err := range errs {
		require.NoError(t, err)
	}
	h.register("o", "tazapay", "chk_o", 100, "USD")
	h.ingest(event("o_paid", sm.KindPaid, "chk_o", 150))
	id := h.anomaly("o", engine.AnomalyAmountMismatch).ID
	for i := range fns {
		fns[i] = func() { _, errs[i] = h.s.AckAnomaly(h.ctx, id, fmt.Sprintf("note %02d", i)) }
	}
	together(fns...)
	for _, err := range errs {
		require.NoError(t, err)
	}

	d, err := h.s.ReportData(h.ctx, engine.ReportQuery{Since: from, Until: from.Add(2 * time.Hour)})
	require.NoError(t, err)
	require.NotEmpty(t, d.Activity)
	require.Equal(t, map[string]int{"signature": writers, "malformed": writers * (writers - 1) / 2}, d.Activity[0].Rejected)
	note := h.anomaly("o", engine.AnomalyAmountMismatch).Note
	for i := range writers {
		require.Contains(t, note, fmt.Sprintf("note %02d", i), "every ack's note is kept")
	}
}
