package engine

import (
	"time"

	sm "github.com/orderstate/orderstate/statemachine"
)

// SweepTx is the reconciler's handle on one write transaction of a store:
// the reads its time-based rules page through and the raises, resolutions
// and cursors they write, all committed together. Valid only inside the
// function given to the store's Sweep.
type SweepTx interface {
	// Now is the store's clock at the start of the transaction. The rules
	// compare it with times the store stamped, so it must be the same clock.
	Now() time.Time
	// InState returns the orders in state whose state_since is before to,
	// in (state_since, ref) order from after on, at most limit of them (all
	// when limit <= 0).
	InState(state sm.State, after Key, to time.Time, limit int) ([]SweepOrder, error)
	// Redirected returns the orders whose redirect was reported at or after
	// after.At and before to, in (redirect_at, ref) order from after on, at
	// most limit of them.
	Redirected(after Key, to time.Time, limit int) ([]SweepOrder, error)
	// ChangedRefs lists, ascending, the refs of the orders whose state or
	// redirect changed at or after from.
	ChangedRefs(from time.Time) ([]int64, error)
	// OpenRefs lists, ascending, the refs of the orders with an open
	// anomaly of one of kinds.
	OpenRefs(kinds ...string) ([]int64, error)
	// Orders reads the orders of refs, in ref order; refs gone since are
	// left out.
	Orders(refs []int64) ([]SweepOrder, error)
	// Raise opens an anomaly of kind on o unless one of that kind exists,
	// open or closed, and reports whether it did.
	Raise(o SweepOrder, kind, detail string) (bool, error)
	// Resolve closes o's open anomaly of kind, with the resolution why
	// gives from the time it was opened, and reports whether one was open.
	Resolve(o SweepOrder, kind string, why func(openedAt time.Time) string) (bool, error)
	// Cursor is where the rule named name got to; zero the first time.
	Cursor(name string) (time.Time, error)
	// SetCursor records how far the rule named name got, committed with the
	// anomalies it raised.
	SetCursor(name string, at time.Time) error
}

// SweepOrder is an order as the time-based rules see it.
type SweepOrder struct {
	Ref        int64
	OrderID    string
	Provider   string
	CheckoutID string
	State      sm.State
	StateSince time.Time
	// Redirect is nil until the shop reports the customer's return.
	Redirect *Redirect
	// Open lists the kinds of the order's open anomalies.
	Open []string
}

// IsOpen reports whether the order has an open anomaly of kind.
func (o SweepOrder) IsOpen(kind string) bool {
	for _, k := range o.Open {
		if k == kind {
			return true
		}
	}
	return false
}

// Key is a candidate's place in the order a read returns them: the time
// the read is ordered by, then the order's ref. Reads return the orders
// after a key and at most a limit of them, so a rule that stopped short can
// go on where it left off without reading again what it already passed. The
// zero Key is before every order.
type Key struct {
	At  time.Time
	Ref int64
}
