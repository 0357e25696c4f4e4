package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// factSet is one order's facts, written once with placeholder ids and
// delivered many times over, each time to fresh ids in another arrival
// order.
type factSet struct {
	provider string
	amount   int64
	payinReg bool // the shop registers the payin as an other id
	redirect string
	events   []template
}

// template is an event with its ids named by role: "C" the registered
// checkout, "P" another id of it (a Tazapay payin, a Yoco payment), "X" a
// checkout the shop never registered. Every provider's events come to the
// store in these shapes; which kinds and ids each sends is its adapter's.
type template struct {
	kind     sm.Kind
	ids      []string
	byRef    bool // carries the shop's order id as its reference
	amount   int64
	currency string
	mode     string
}

var kindsToDraw = []sm.Kind{sm.KindCheckoutCreated, sm.KindPaymentProcessing, sm.KindPaymentAttemptFailed, sm.KindPaid, sm.KindPaid,
	sm.KindFailed, sm.KindExpired, sm.KindRefunded, sm.KindFailedAfterSettlement, sm.KindInformational, sm.KindUnknown}

func drawFactSet(r *rand.Rand) factSet {
	fs := factSet{provider: []string{"tazapay", "tokenz", "tweed", "yoco"}[r.IntN(4)], amount: 1000 * (1 + r.Int64N(9)), payinReg: r.IntN(2) == 0,
		redirect: []string{"", "", engine.RedirectSuccess, engine.RedirectCancel, engine.RedirectFailure}[r.IntN(5)]}
	for range 2 + r.IntN(6) {
		t := template{kind: kindsToDraw[r.IntN(len(kindsToDraw))], currency: "USD", mode: engine.ModeLive}
		switch n := r.IntN(20); {
		case n < 9:
			t.ids = []string{"C"}
		case n < 12:
			t.ids = []string{"P"}
		case n < 15:
			t.ids = []string{"C", "P"}
		case n < 17:
			t.ids, t.byRef = []string{"P"}, true
		case n < 19:
			t.ids, t.byRef = []string{"X"}, true
		default:
			t.ids = []string{"X", "P"}
		}
		if t.ids[0] == "C" && r.IntN(3) == 0 {
			t.byRef = true
		}
		switch t.kind {
		case sm.KindPaid:
			t.amount = []int64{fs.amount, fs.amount, fs.amount + 10, 0}[r.IntN(4)]
		case sm.KindRefunded:
			t.amount = []int64{0, fs.amount / 2, fs.amount}[r.IntN(3)]
		}
		if r.IntN(8) == 0 {
			t.currency = "EUR"
		}
		switch r.IntN(10) {
		case 0:
			t.mode = engine.ModeTest
		case 1:
			t.mode = ""
		}
		fs.events = append(fs.events, t)
	}
	return fs
}

// step is one delivery of a run: an event (by index), the registration
// (-1) or the redirect (-2).
type step int

const (
	stepRegister step = -1
	stepRedirect step = -2
)

// arrival draws one arrival order: the events shuffled, one maybe
// delivered twice, the registration at any moment, the redirect at any
// moment after it.
func arrival(r *rand.Rand, fs factSet) []step {
	var steps []step
	for _, i := range r.Perm(len(fs.events)) {
		steps = append(steps, step(i))
	}
	if r.IntN(3) == 0 {
		dup := steps[r.IntN(len(steps))]
		at := r.IntN(len(steps) + 1)
		steps = slices.Insert(steps, at, dup)
	}
	at := r.IntN(len(steps) + 1)
	steps = slices.Insert(steps, at, stepRegister)
	if fs.redirect != "" {
		steps = slices.Insert(steps, at+1+r.IntN(len(steps)-at), stepRedirect)
	}
	return steps
}

// deliver plays one arrival order of fs as order run, with ids of its own.
func deliver(ctx context.Context, s engine.Store, fs factSet, run string, steps []step, base time.Time) error {
	id := func(role string) string { return role + "_" + run }
	orderID := "SO_" + run
	for _, st := range steps {
		var err error
		switch st {
		case stepRegister:
			reg := engine.Registration{OrderID: orderID, Provider: fs.provider, CheckoutID: id("C"), Amount: fs.amount,
				Currency: "USD", Mode: engine.ModeLive}
			if fs.payinReg {
				reg.OtherIDs = []string{id("P")}
			}
			_, err = s.RegisterOrder(ctx, reg)
		case stepRedirect:
			_, err = s.ReportRedirect(ctx, orderID, fs.redirect)
		default:
			t := fs.events[st]
			key := fmt.Sprintf("evt_%s_%d", run, st)
			e := engine.Event{Provider: fs.provider, EventID: key, DedupeKey: key, Type: fs.provider + "." + string(t.kind), Kind: t.kind,
				CheckoutID: id(t.ids[0]), Amount: t.amount, Currency: t.currency, Mode: t.mode,
				OccurredAt: base.Add(time.Duration(st) * time.Minute)}
			for _, role := range t.ids[1:] {
				e.Refs = append(e.Refs, id(role))
			}
			if t.byRef {
				e.Reference = orderID
			}
			_, err = s.Ingest(ctx, e, request())
		}
		if err != nil {
			return fmt.Errorf("run %s step %d: %w", run, st, err)
		}
	}
	return nil
}

// outcome is what must not depend on arrival: the registered order's state,
// its amounts, and the order-free anomalies that hold.
type outcome struct {
	State     sm.State
	Captured  int64
	Refunded  int64
	Anomalies []string
}

// testArrivalOrder delivers random sets of events in several arrival
// orders each, with redeliveries, the registration at every moment and
// events that join orders by payin, by both ids and by the shop's
// reference, and asserts the outcome is one per set, and that the state is
// what statemachine.Decide makes of the events the order holds.
func testArrivalOrder(t *testing.T, open Opener) {
	t.Parallel()
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	sets, runs := 80, 4
	if raceEnabled {
		sets = 20
	}
	r := rand.New(rand.NewPCG(20261206, 1))
	for n := range sets {
		fs := drawFactSet(r)
		orders := make([][]step, runs)
		for i := range orders {
			orders[i] = arrival(r, fs)
		}
		// The runs are independent orders, delivered concurrently so the
		// store commits them together, as under real traffic.
		var wg sync.WaitGroup
		errs := make([]error, runs)
		for i := range runs {
			wg.Go(func() { errs[i] = deliver(ctx, s, fs, fmt.Sprintf("%d_%d", n, i), orders[i], c.Now()) })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		sameOutcome(t, s, runs, func(i int) string { return fmt.Sprintf("SO_%d_%d", n, i) },
			func(i int) string {
				return fmt.Sprintf("set %d run %d: %+v arrived as %v (run 0 as %v)", n, i, fs, orders[i], orders[0])
			})
	}
}

// testConcurrentArrival delivers random sets of events all at once: each
// set's registration first, then every event of three runs of it (and a
// redelivery) from goroutines of their own, so a store that commits
// webhooks together gets events of one order, new orders, merges and
// duplicates in one commit; then the redirect. The outcome must be the one
// the same facts give delivered one at a time.
func testConcurrentArrival(t *testing.T, open Opener) {
	t.Parallel()
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	sets, runs := 40, 4
	if raceEnabled {
		sets = 10
	}
	r := rand.New(rand.NewPCG(20261207, 2))
	for n := range sets {
		fs := drawFactSet(r)
		// Run 0 one step at a time; the others at once.
		var seq []step
		for i := range fs.events {
			seq = append(seq, step(i))
		}
		seq = append([]step{stepRegister}, seq...)
		if fs.redirect != "" {
			seq = append(seq, stepRedirect)
		}
		require.NoError(t, deliver(ctx, s, fs, fmt.Sprintf("c%d_0", n), seq, c.Now()))
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		fire := func(run string, st step) {
			wg.Go(func() {
				if err := deliver(ctx, s, fs, run, []step{st}, c.Now()); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		for i := 1; i < runs; i++ {
			require.NoError(t, deliver(ctx, s, fs, fmt.Sprintf("c%d_%d", n, i), []step{stepRegister}, c.Now()))
		}
		for i := 1; i < runs; i++ {
			for e := range fs.events {
				fire(fmt.Sprintf("c%d_%d", n, i), step(e))
			}
			fire(fmt.Sprintf("c%d_%d", n, i), step(r.IntN(len(fs.events))))
		}
		wg.Wait()
		require.Empty(t, errs)
		for i := 1; i < runs && fs.redirect != ""; i++ {
			require.NoError(t, deliver(ctx, s, fs, fmt.Sprintf("c%d_%d", n, i), []step{stepRedirect}, c.Now()))
		}
		sameOutcome(t, s, runs, func(i int) string { return fmt.Sprintf("SO_c%d_%d", n, i) },
			func(i int) string {
				return fmt.Sprintf("set %d run %d: %+v, all at once against one at a time", n, i, fs)
			})
	}
}

// sameOutcome asserts that the runs' orders, named by orderID, each hold
// the state statemachine.Decide makes of their events, and that all share
// run 0's outcome.
func sameOutcome(t *testing.T, s engine.Store, runs int, orderID func(i int) string, describe func(i int) string) {
	t.Helper()
	var first outcome
	for i := range runs {
		o := order(t, s, orderID(i))
		got := outcome{State: o.State, Captured: o.Captured, Refunded: o.Refunded, Anomalies: heldAnomalies(o, engine.IsOrderFree)}
		var facts []sm.Fact
		for _, e := range o.Events {
			if e.Result != sm.Duplicate {
				facts = append(facts, sm.Fact{Kind: e.Kind, Amount: e.Amount})
			}
		}
		require.Equal(t, sm.Decide(o.Amount, facts), o.State, describe(i))
		if i == 0 {
			first = got
			continue
		}
		require.Equal(t, first, got, describe(i))
	}
}

func sortedUnique(ss []string) []string {
	slices.Sort(ss)
	return slices.Compact(ss)
}
