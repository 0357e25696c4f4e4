package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// The reconciler's primitives: what Sweep hands its function, and what
// a transaction commits or leaves behind.

// sweepOrder reads one order as the sweep sees it.
func sweepOrder(tx engine.SweepTx, ref int64) (engine.SweepOrder, error) {
	os, err := tx.Orders([]int64{ref})
	if err != nil {
		return engine.SweepOrder{}, err
	}
	if len(os) != 1 {
		return engine.SweepOrder{}, fmt.Errorf("order %d: read %d orders", ref, len(os))
	}
	return os[0], nil
}

// raise opens an anomaly of kind on the order ref in a sweep of its own and
// reports whether it did.
func raise(t *testing.T, s Store, ref int64, kind string) bool {
	t.Helper()
	return sweepRead(t, s, func(tx engine.SweepTx) (bool, error) {
		o, err := sweepOrder(tx, ref)
		if err != nil {
			return false, err
		}
		return tx.Raise(o, kind, "raised by the test")
	})
}

// resolve closes the order's open anomaly of kind in a sweep of its own.
func resolve(t *testing.T, s Store, ref int64, kind string) bool {
	t.Helper()
	return sweepRead(t, s, func(tx engine.SweepTx) (bool, error) {
		o, err := sweepOrder(tx, ref)
		if err != nil {
			return false, err
		}
		return tx.Resolve(o, kind, func(time.Time) string { return "cleared" })
	})
}

// refsOf lists the refs of orders as the sweep read them.
func refsOf(os []engine.SweepOrder) []int64 {
	out := []int64{}
	for _, o := range os {
		out = append(out, o.Ref)
	}
	return out
}

// sortedRefs lists the refs of the shop's orders, ascending.
func sortedRefs(t *testing.T, s Store, orderIDs ...string) []int64 {
	t.Helper()
	out := []int64{}
	for _, id := range orderIDs {
		out = append(out, order(t, s, id).Ref)
	}
	slices.Sort(out)
	return out
}

// page reads every order a read returns, limit at a time, each page going
// on after the key of the last order of the one before.
func page(t *testing.T, s Store, limit int, keyOf func(engine.SweepOrder) time.Time,
	read func(tx engine.SweepTx, after engine.Key, limit int) ([]engine.SweepOrder, error)) []int64 {
	t.Helper()
	var out []int64
	after := engine.Key{}
	for range 100 {
		got := sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) { return read(tx, after, limit) })
		require.LessOrEqual(t, len(got), limit)
		if len(got) == 0 {
			return out
		}
		out = append(out, refsOf(got)...)
		last := got[len(got)-1]
		after = engine.Key{At: keyOf(last), Ref: last.Ref}
	}
	t.Fatal("paging did not end")
	return nil
}

func testSweepInState(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	t0 := c.Now()
	for _, id := range []string{"p1", "p2", "p3"} {
		register(t, s, id, "c"+id, 100) // three orders of one instant
	}
	c.Add(time.Minute)
	t1 := c.Now()
	register(t, s, "p4", "cp4", 100)
	c.Add(time.Minute)
	t2 := c.Now()
	register(t, s, "q1", "cq1", 100)
	ingest(t, s, event("q1_processing", sm.KindPaymentProcessing, "cq1", 0))
	c.Add(time.Minute)
	t3 := c.Now()
	register(t, s, "p5", "cp5", 100)
	register(t, s, "r1", "cr1", 100)
	ingest(t, s, event("r1_paid", sm.KindPaid, "cr1", 100))
	_, err := s.ReportRedirect(ctx, "p3", engine.RedirectCancel)
	require.NoError(t, err)
	require.True(t, raise(t, s, order(t, s, "p2").Ref, engine.AnomalyStuck))
	far := t3.Add(time.Hour)

	first := sortedRefs(t, s, "p1", "p2", "p3")
	want := append(slices.Clone(first), order(t, s, "p4").Ref)
	all := sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) {
		return tx.InState(sm.Pending, engine.Key{}, t3, 0)
	})
	require.Equal(t, want, refsOf(all), "pending before t3, by (state_since, ref); p5, pending since t3, is not before it")
	for _, o := range all {
		p := order(t, s, o.OrderID)
		require.Equal(t, p.Ref, o.Ref)
		require.Equal(t, "tazapay", o.Provider)
		require.Equal(t, p.CheckoutID, o.CheckoutID)
		require.Equal(t, sm.Pending, o.State)
		require.True(t, p.StateSince.Equal(o.StateSince), "%s: state since %s, read %s", o.OrderID, p.StateSince, o.StateSince)
		switch o.OrderID {
		case "p2":
			require.Equal(t, []string{engine.AnomalyStuck}, o.Open)
			require.True(t, o.IsOpen(engine.AnomalyStuck))
		case "p3":
			require.NotNil(t, o.Redirect)
			require.Equal(t, engine.RedirectCancel, o.Redirect.Outcome)
			require.True(t, t3.Equal(o.Redirect.At))
		default:
			require.Empty(t, o.Open, o.OrderID)
			require.Nil(t, o.Redirect, o.OrderID)
		}
	}
	require.True(t, all[0].StateSince.Equal(t0))
	require.True(t, all[3].StateSince.Equal(t1))

	for _, limit := range []int{1, 2, 3} {
		got := page(t, s, limit, func(o engine.SweepOrder) time.Time { return o.StateSince },
			func(tx engine.SweepTx, after engine.Key, limit int) ([]engine.SweepOrder, error) {
				return tx.InState(sm.Pending, after, t3, limit)
			})
		require.Equal(t, want, got, "pages of %d neither skip nor repeat an order, those of one instant included", limit)
	}
	rest := sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) {
		return tx.InState(sm.Pending, engine.Key{At: t0, Ref: first[0]}, t3, 0)
	})
	require.Equal(t, want[1:], refsOf(rest), "after a key: the orders of its instant with a larger ref, then later ones")
	later := sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) {
		return tx.InState(sm.Pending, engine.Key{At: t1}, far, 0)
	})
	require.Equal(t, sortedRefs(t, s, "p4", "p5"), refsOf(later), "a key of ref 0 is before every order of its instant")
	processing := sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) {
		return tx.InState(sm.Processing, engine.Key{}, far, 0)
	})
	require.Len(t, processing, 1)
	require.Equal(t, "q1", processing[0].OrderID)
	require.True(t, t2.Equal(processing[0].StateSince))
	none := sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) {
		return tx.InState(sm.Pending, engine.Key{}, t0, 0)
	})
	require.Empty(t, none, "before to: an order of that very instant is not")
}

func testSweepRedirected(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	redirect := func(id, outcome string) {
		t.Helper()
		_, err := s.ReportRedirect(ctx, id, outcome)
		require.NoError(t, err)
	}
	for _, id := range []string{"o1", "o2", "o3", "o4", "o5"} {
		register(t, s, id, "c"+id, 100)
	}
	c.Add(time.Minute)
	redirect("o1", engine.RedirectSuccess)
	redirect("o2", engine.RedirectFailure)
	c.Add(time.Minute)
	t2 := c.Now()
	redirect("o3", engine.RedirectSuccess)
	c.Add(time.Minute)
	t3 := c.Now()
	redirect("o4", engine.RedirectCancel)
	far := t3.Add(time.Hour)
	at := func(o engine.SweepOrder) time.Time { return o.Redirect.At }

	want := append(sortedRefs(t, s, "o1", "o2"), order(t, s, "o3").Ref)
	got := sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) { return tx.Redirected(engine.Key{}, t3, 0) })
	require.Equal(t, want, refsOf(got), "redirected before t3, by (redirect time, ref)")
	for _, o := range got {
		require.NotNil(t, o.Redirect, o.OrderID)
		require.Equal(t, order(t, s, o.OrderID).Redirect.Outcome, o.Redirect.Outcome, o.OrderID)
	}
	require.Equal(t, engine.RedirectFailure, got[slices.Index(refsOf(got), order(t, s, "o2").Ref)].Redirect.Outcome)
	for _, limit := range []int{1, 2} {
		paged := page(t, s, limit, at, func(tx engine.SweepTx, after engine.Key, limit int) ([]engine.SweepOrder, error) {
			return tx.Redirected(after, t3, limit)
		})
		require.Equal(t, want, paged, "pages of %d", limit)
	}
	from := sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) {
		return tx.Redirected(engine.Key{At: t2}, far, 0)
	})
	require.Equal(t, sortedRefs(t, s, "o3", "o4"), refsOf(from), "at or after the key's time")
	require.True(t, t2.Equal(from[0].Redirect.At))

	// A redirect reported again counts from its latest report.
	c.Add(time.Minute)
	t4 := c.Now()
	redirect("o1", engine.RedirectCancel)
	got = sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) { return tx.Redirected(engine.Key{}, far, 0) })
	require.Equal(t, append(append(sortedRefs(t, s, "o2"), sortedRefs(t, s, "o3", "o4")...), order(t, s, "o1").Ref), refsOf(got))
	last := got[len(got)-1]
	require.Equal(t, engine.RedirectCancel, last.Redirect.Outcome)
	require.True(t, t4.Equal(last.Redirect.At))
}

// testSweepChangedRefs: the orders whose state changed or whose redirect
// was reported from a time on, and no others: an event that leaves the
// state as it was does not count.
func testSweepChangedRefs(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	for _, id := range []string{"a", "b", "c", "e"} {
		register(t, s, id, "c"+id, 100)
	}
	c.Add(time.Minute)
	t1 := c.Now()
	register(t, s, "d", "cd", 100)
	ingest(t, s, event("b_paid", sm.KindPaid, "cb", 100))
	_, err := s.ReportRedirect(ctx, "c", engine.RedirectSuccess)
	require.NoError(t, err)
	ingest(t, s, event("e_created", sm.KindCheckoutCreated, "ce", 0))
	ingest(t, s, event("f_paid", sm.KindPaid, "cf", 100)) // an order nobody registered

	changed := func(from time.Time) []int64 {
		return sweepRead(t, s, func(tx engine.SweepTx) ([]int64, error) { return tx.ChangedRefs(from) })
	}
	f, err := s.OrderByCheckout(ctx, "tazapay", "cf")
	require.NoError(t, err)
	want := append(sortedRefs(t, s, "b", "c", "d"), f.Ref)
	slices.Sort(want)
	require.Equal(t, want, changed(t1), "at or after from, ascending; e's event left it pending")
	require.Empty(t, changed(t1.Add(time.Second)))
	all := append(sortedRefs(t, s, "a", "b", "c", "d", "e"), f.Ref)
	slices.Sort(all)
	require.Equal(t, all, changed(time.Time{}), "every order from the zero time")
}

func testSweepOpenRefs(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		register(t, s, id, "c"+id, 100)
	}
	ingest(t, s, event("a_paid", sm.KindPaid, "ca", 150)) // amount_mismatch
	mode := event("b_paid", sm.KindPaid, "cb", 100)
	mode.Mode = engine.ModeTest
	ingest(t, s, mode)
	_, err := s.AckAnomaly(ctx, byKind(order(t, s, "b").Anomalies)[engine.AnomalyModeMismatch].ID, "QA")
	require.NoError(t, err)
	require.True(t, raise(t, s, order(t, s, "c").Ref, engine.AnomalyStuck))
	require.True(t, raise(t, s, order(t, s, "d").Ref, engine.AnomalyMissingWebhook))
	require.True(t, resolve(t, s, order(t, s, "d").Ref, engine.AnomalyMissingWebhook))
	dup := event("e_paid", sm.KindPaid, "ce", 100)
	ingest(t, s, dup)
	ingest(t, s, dup)

	openRefs := func(kinds ...string) []int64 {
		return sweepRead(t, s, func(tx engine.SweepTx) ([]int64, error) { return tx.OpenRefs(kinds...) })
	}
	require.Equal(t, sortedRefs(t, s, "a", "c"), openRefs(engine.AnomalyStuck, engine.AnomalyAmountMismatch))
	require.Equal(t, sortedRefs(t, s, "a", "e"), openRefs(engine.AnomalyDuplicate, engine.AnomalyAmountMismatch, engine.AnomalyAmountMismatch),
		"each order once")
	require.Empty(t, openRefs(engine.AnomalyModeMismatch), "acknowledged is not open")
	require.Empty(t, openRefs(engine.AnomalyMissingWebhook), "resolved is not open")
	require.Empty(t, openRefs(), "no kinds, no orders")
}

// testSweepOrders: Orders reads the orders of refs in ref order, leaving
// out refs with no order, one merged into another included.
func testSweepOrders(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	register(t, s, "o1", "c1", 100)
	register(t, s, "o2", "c2", 100)
	ingest(t, s, event("x_att", sm.KindPaymentProcessing, "pay_3", 0))
	orphan, err := s.OrderByCheckout(ctx, "tazapay", "pay_3")
	require.NoError(t, err)
	c.Add(time.Minute)
	_, err = s.RegisterOrder(ctx, engine.Registration{OrderID: "o3", Provider: "tazapay", CheckoutID: "c3", Amount: 100,
		Currency: "USD", OtherIDs: []string{"pay_3"}})
	require.NoError(t, err)
	o3 := order(t, s, "o3")
	require.NotEqual(t, orphan.Ref, o3.Ref, "the orphan was merged into the registered order")
	require.Equal(t, sm.Processing, o3.State)

	kept := sortedRefs(t, s, "o1", "o2", "o3")
	refs := append(slices.Clone(kept), orphan.Ref, kept[2]+1000)
	slices.Sort(refs)
	got := sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) { return tx.Orders(refs) })
	require.Equal(t, kept, refsOf(got), "in ref order; the merged-away and the unknown ref are left out")
	for _, o := range got {
		v := order(t, s, o.OrderID)
		require.Equal(t, v.Ref, o.Ref)
		require.Equal(t, v.State, o.State)
		require.Equal(t, v.CheckoutID, o.CheckoutID)
		require.True(t, v.StateSince.Equal(o.StateSince), o.OrderID)
	}
	none := sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) { return tx.Orders(nil) })
	require.Empty(t, none)

	// More refs than a statement may bind at once, most of them of no
	// order: the same three, in order.
	many := slices.Clone(refs)
	for ref := int64(1); ref <= 1200; ref++ {
		many = append(many, ref)
	}
	slices.Sort(many)
	many = slices.Compact(many)
	got = sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) { return tx.Orders(many) })
	require.Equal(t, kept, refsOf(got))
}

// testSweepRaise: Raise opens an anomaly of a kind once per order, ever:
// never again while it is open, and never again once it is closed.
func testSweepRaise(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	o := register(t, s, "o", "c", 100)
	register(t, s, "p", "cp", 100)
	ingest(t, s, event("p_paid", sm.KindPaid, "cp", 150))
	register(t, s, "q", "cq", 100)
	raisedAt := c.Now()

	twice := sweepRead(t, s, func(tx engine.SweepTx) ([2]bool, error) {
		so, err := sweepOrder(tx, o.Ref)
		if err != nil {
			return [2]bool{}, err
		}
		first, err := tx.Raise(so, engine.AnomalyStuck, "pending since 09:00")
		if err != nil {
			return [2]bool{}, err
		}
		again, err := tx.Raise(so, engine.AnomalyStuck, "pending since 09:00, still")
		return [2]bool{first, again}, err
	})
	require.Equal(t, [2]bool{true, false}, twice, "raised once in one transaction")
	a := byKind(order(t, s, "o").Anomalies)[engine.AnomalyStuck]
	require.Equal(t, engine.StatusOpen, a.Status)
	require.Equal(t, "pending since 09:00", a.Detail)
	require.Equal(t, 1, a.Count)
	require.Equal(t, engine.SeverityAction, a.Severity)
	require.Equal(t, "o", a.OrderID)
	require.Equal(t, sm.Pending, a.State)
	require.True(t, raisedAt.Equal(a.OpenedAt), "opened at the sweep's time")
	so := sweepRead(t, s, func(tx engine.SweepTx) (engine.SweepOrder, error) { return sweepOrder(tx, o.Ref) })
	require.Equal(t, []string{engine.AnomalyStuck}, so.Open, "the next sweep reads it open")

	c.Add(time.Minute)
	require.False(t, raise(t, s, o.Ref, engine.AnomalyStuck), "a later sweep does not raise it again")
	require.Equal(t, 1, byKind(order(t, s, "o").Anomalies)[engine.AnomalyStuck].Count, "a re-check is not a new occurrence")

	// Open at ingest: the sweep's raise neither counts it again nor
	// rewrites it.
	mismatch := byKind(order(t, s, "p").Anomalies)[engine.AnomalyAmountMismatch]
	require.False(t, raise(t, s, order(t, s, "p").Ref, engine.AnomalyAmountMismatch))
	require.Equal(t, mismatch, byKind(order(t, s, "p").Anomalies)[engine.AnomalyAmountMismatch])

	// Closed stays closed.
	_, err := s.AckAnomaly(ctx, a.ID, "paying by bank transfer")
	require.NoError(t, err)
	c.Add(time.Minute)
	require.False(t, raise(t, s, o.Ref, engine.AnomalyStuck), "acknowledged")
	a2 := byKind(order(t, s, "o").Anomalies)[engine.AnomalyStuck]
	require.Equal(t, engine.StatusAcknowledged, a2.Status)
	require.Equal(t, a.ID, a2.ID)
	require.Len(t, order(t, s, "o").Anomalies, 1)

	q := order(t, s, "q")
	require.True(t, raise(t, s, q.Ref, engine.AnomalyMissingWebhook))
	require.True(t, resolve(t, s, q.Ref, engine.AnomalyMissingWebhook))
	require.False(t, raise(t, s, q.Ref, engine.AnomalyMissingWebhook), "resolved")
	require.Equal(t, engine.StatusResolved, byKind(order(t, s, "q").Anomalies)[engine.AnomalyMissingWebhook].Status)
}

func testSweepResolve(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	o := register(t, s, "o", "c", 100)
	require.False(t, resolve(t, s, o.Ref, engine.AnomalyStuck), "nothing open to resolve")
	opened := c.Now()
	require.True(t, raise(t, s, o.Ref, engine.AnomalyStuck))

	c.Add(10 * time.Minute)
	var from time.Time
	closed := sweepRead(t, s, func(tx engine.SweepTx) (bool, error) {
		so, err := sweepOrder(tx, o.Ref)
		if err != nil {
			return false, err
		}
		return tx.Resolve(so, engine.AnomalyStuck, func(openedAt time.Time) string {
			from = openedAt
			return fmt.Sprintf("processing after %s", tx.Now().Sub(openedAt))
		})
	})
	require.True(t, closed)
	require.True(t, opened.Equal(from), "why is given when the anomaly was opened")
	a := byKind(order(t, s, "o").Anomalies)[engine.AnomalyStuck]
	require.Equal(t, engine.StatusResolved, a.Status)
	require.Equal(t, "processing after 10m0s", a.Resolution)
	require.NotNil(t, a.ResolvedAt)
	require.True(t, c.Now().Equal(*a.ResolvedAt))
	require.False(t, resolve(t, s, o.Ref, engine.AnomalyStuck), "already resolved")

	// An acknowledged anomaly is a person's: the sweep leaves it be.
	require.True(t, raise(t, s, o.Ref, engine.AnomalyMissingWebhook))
	mw := byKind(order(t, s, "o").Anomalies)[engine.AnomalyMissingWebhook]
	_, err := s.AckAnomaly(ctx, mw.ID, "")
	require.NoError(t, err)
	require.False(t, resolve(t, s, o.Ref, engine.AnomalyMissingWebhook))
	require.Equal(t, engine.StatusAcknowledged, byKind(order(t, s, "o").Anomalies)[engine.AnomalyMissingWebhook].Status)
}

func testSweepCursor(t *testing.T, open Opener) {
	t.Parallel()
	c := NewClock()
	s := open(t, c.Now)
	t0 := c.Now().Add(250 * time.Millisecond)
	t1 := t0.Add(90 * time.Minute)
	cursor := func(name string) time.Time {
		return sweepRead(t, s, func(tx engine.SweepTx) (time.Time, error) { return tx.Cursor(name) })
	}
	require.True(t, cursor("stuck").IsZero(), "zero the first time")
	got := sweepRead(t, s, func(tx engine.SweepTx) ([2]time.Time, error) {
		if err := tx.SetCursor("stuck", t1); err != nil {
			return [2]time.Time{}, err
		}
		at, err := tx.Cursor("stuck")
		return [2]time.Time{tx.Now(), at}, err
	})
	require.True(t, c.Now().Equal(got[0]), "the transaction's time is the store's clock: %s", got[0])
	require.True(t, t1.Equal(got[1]), "the transaction reads what it set: %s", got[1])
	require.True(t, t1.Equal(cursor("stuck")), "committed")
	require.True(t, cursor("missing_webhook").IsZero(), "each rule has its own")
	sweepRead(t, s, func(tx engine.SweepTx) (bool, error) { return true, tx.SetCursor("stuck", t0) })
	require.True(t, t0.Equal(cursor("stuck")), "set back: a cursor is what was set last")
}

// testSweepRollsBack: an error from the sweep's function rolls back
// everything it did, raises, resolutions and cursors, and comes back from
// Sweep; webhooks stored at the same time are not taken down with it.
func testSweepRollsBack(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	o := register(t, s, "o", "c", 100)
	o2 := register(t, s, "o2", "c2", 100)
	t0 := c.Now()
	require.True(t, raise(t, s, o2.Ref, engine.AnomalyMissingWebhook))
	sweepRead(t, s, func(tx engine.SweepTx) (bool, error) { return true, tx.SetCursor("rule", t0) })
	c.Add(time.Hour)

	boom := errors.New("the rule gave up")
	failing := func(tx engine.SweepTx) error {
		so, err := sweepOrder(tx, o.Ref)
		if err != nil {
			return err
		}
		so2, err := sweepOrder(tx, o2.Ref)
		if err != nil {
			return err
		}
		if _, err := tx.Raise(so, engine.AnomalyStuck, "stuck"); err != nil {
			return err
		}
		if _, err := tx.Resolve(so2, engine.AnomalyMissingWebhook, func(time.Time) string { return "cleared" }); err != nil {
			return err
		}
		if err := tx.SetCursor("rule", tx.Now()); err != nil {
			return err
		}
		return boom
	}
	sweeps, webhooks := 8, 32
	if raceEnabled {
		sweeps, webhooks = 3, 8
	}
	var wg sync.WaitGroup
	sweepErrs := make([]error, sweeps)
	ingestErrs := make([]error, webhooks)
	for i := range sweeps {
		wg.Go(func() { sweepErrs[i] = s.Sweep(ctx, failing) })
	}
	for i := range webhooks {
		wg.Go(func() {
			id := fmt.Sprintf("w%02d", i)
			_, ingestErrs[i] = s.Ingest(ctx, event(id, sm.KindPaymentProcessing, "cw"+id, 0), request())
		})
	}
	wg.Wait()
	for _, err := range sweepErrs {
		require.ErrorIs(t, err, boom)
	}
	for i, err := range ingestErrs {
		require.NoError(t, err, "webhook %d", i)
		_, err := s.OrderByCheckout(ctx, "tazapay", fmt.Sprintf("cww%02d", i))
		require.NoError(t, err, "webhook %d was stored", i)
	}
	require.Empty(t, order(t, s, "o").Anomalies, "the raise was rolled back")
	require.Equal(t, engine.StatusOpen, byKind(order(t, s, "o2").Anomalies)[engine.AnomalyMissingWebhook].Status,
		"the resolution was rolled back")
	at := sweepRead(t, s, func(tx engine.SweepTx) (time.Time, error) { return tx.Cursor("rule") })
	require.True(t, t0.Equal(at), "the cursor was rolled back: %s", at)
}
