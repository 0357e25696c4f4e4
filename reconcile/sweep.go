package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Cursor names in the store's watermarks table. Each records the upper end
// of the window its rule last read, so a changed threshold moves the next
// window rather than skipping orders.
const (
	cursorChanges = "sweep.changes"
	cursorMissing = "sweep.missing_webhook"
	cursorStuck   = "sweep.stuck." // + state
)

// overlap re-reads the end of the previous window: rows are stamped by the
// clock of whichever process wrote them, and re-reading is harmless because
// every rule is idempotent.
const overlap = time.Minute

// Change is one anomaly a sweep raised or resolved.
type Change struct {
	Action     string `json:"action"` // "raised" or "resolved"
	Kind       string `json:"kind"`
	OrderID    string `json:"order_id,omitempty"`
	Provider   string `json:"provider"`
	CheckoutID string `json:"checkout_id"`
	Text       string `json:"text"`
}

// Change actions.
const (
	Raised   = "raised"
	Resolved = "resolved"
)

// SweepResult is what one sweep did.
type SweepResult struct {
	// At is the store's clock when the sweep ran.
	At time.Time `json:"at"`
	// Checked counts the candidate orders the rules looked at.
	Checked int      `json:"checked"`
	Changes []Change `json:"changes"`
}

// Count returns how many changes had the given action.
func (r SweepResult) Count(action string) int {
	n := 0
	for _, c := range r.Changes {
		if c.Action == action {
			n++
		}
	}
	return n
}

// Sweep raises the time-based anomalies (missing_webhook, stuck,
// redirect_mismatch) and resolves those whose condition cleared, in one
// transaction. Running it again at once changes nothing.
func (r *Reconciler) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	err := r.store.Sweep(ctx, func(tx *engine.SweepTx) error {
		res = SweepResult{At: tx.Now(), Changes: []Change{}}
		s := &sweep{cfg: r.cfg, tx: tx, res: &res}
		return s.run()
	})
	if err != nil {
		return SweepResult{}, err
	}
	return res, nil
}

// RunSweep is Sweep followed by recording the sweep's watermark, which the
// scheduler catches up against.
func (r *Reconciler) RunSweep(ctx context.Context) (SweepResult, error) {
	start := time.Now()
	res, err := r.Sweep(ctx)
	if err != nil {
		return res, err
	}
	if err := r.store.SetWatermark(ctx, WatermarkSweep, res.At); err != nil {
		return res, err
	}
	level := slog.LevelDebug
	if len(res.Changes) > 0 {
		level = slog.LevelInfo
	}
	r.log.Log(ctx, level, "sweep done", slog.Int("raised", res.Count(Raised)), slog.Int("resolved", res.Count(Resolved)),
		slog.Int("checked", res.Checked), slog.Duration("took", time.Since(start)))
	return res, nil
}

// sweep is one run of the rules inside the transaction.
type sweep struct {
	cfg Config
	tx  *engine.SweepTx
	res *SweepResult
}

func (s *sweep) run() error {
	// Re-checking changed orders first means a first sweep, which has no
	// window yet and so re-checks every order with an open anomaly, does not
	// also re-check what it is about to raise.
	if err := s.changed(); err != nil {
		return err
	}
	for _, st := range []struct {
		state sm.State
		ttl   time.Duration
	}{{sm.Pending, s.cfg.PendingTTL}, {sm.Processing, s.cfg.ProcessingTTL}} {
		if err := s.stuck(st.state, st.ttl); err != nil {
			return err
		}
	}
	return s.missing()
}

// window returns where the rule named cursor should start reading: zero
// (from the beginning) the first time.
func (s *sweep) window(cursor string) (time.Time, error) {
	from, err := s.tx.Cursor(cursor)
	if err != nil || from.IsZero() {
		return time.Time{}, err
	}
	return from.Add(-overlap), nil
}

// stuck raises stuck on the orders whose time in state crossed ttl since
// the last sweep.
func (s *sweep) stuck(state sm.State, ttl time.Duration) error {
	name := cursorStuck + string(state)
	from, err := s.window(name)
	if err != nil {
		return err
	}
	now := s.tx.Now()
	to := now.Add(-ttl)
	if from.Before(to) {
		orders, err := s.tx.InState(state, from, to)
		if err != nil {
			return err
		}
		s.res.Checked += len(orders)
		for _, o := range orders {
			if o.IsOpen(engine.AnomalyStuck) {
				continue
			}
			detail := fmt.Sprintf("The order has been %s since %s (%s), longer than the %s an order may stay %s.",
				state, stamp(o.StateSince), human(now.Sub(o.StateSince)), human(ttl), state)
			if err := s.raise(o, engine.AnomalyStuck, detail); err != nil {
				return err
			}
		}
	}
	return s.tx.SetCursor(name, to)
}

// missing raises missing_webhook on the orders whose customer came back
// with success more than the grace period ago and that still have no
// outcome. A redirect that said cancel or failure expects no payment, so
// nothing is missing.
func (s *sweep) missing() error {
	from, err := s.window(cursorMissing)
	if err != nil {
		return err
	}
	now := s.tx.Now()
	to := now.Add(-s.cfg.RedirectGrace)
	if from.Before(to) {
		var orders []engine.SweepOrder
		if from.IsZero() {
			// With no window yet, every redirect ever reported is a
			// candidate, most of them long paid; the orders still in
			// flight are far fewer, so read those and check their redirect.
			orders, err = s.inFlight(now)
		} else {
			orders, err = s.tx.Redirected(from, to)
		}
		if err != nil {
			return err
		}
		s.res.Checked += len(orders)
		for _, o := range orders {
			if !awaitingWebhook(o) || !o.Redirect.At.Before(to) || o.IsOpen(engine.AnomalyMissingWebhook) {
				continue
			}
			detail := fmt.Sprintf("The customer came back from %s with success at %s, but no webhook has confirmed the payment %s later; the order is still %s.",
				o.Provider, stamp(o.Redirect.At), human(now.Sub(o.Redirect.At)), o.State)
			if err := s.raise(o, engine.AnomalyMissingWebhook, detail); err != nil {
				return err
			}
		}
	}
	return s.tx.SetCursor(cursorMissing, to)
}

func (s *sweep) inFlight(now time.Time) ([]engine.SweepOrder, error) {
	var out []engine.SweepOrder
	for _, st := range []sm.State{sm.Pending, sm.Processing} {
		orders, err := s.tx.InState(st, time.Time{}, now.Add(time.Nanosecond))
		if err != nil {
			return nil, err
		}
		out = append(out, orders...)
	}
	return out, nil
}

// changed re-checks the orders whose state or redirect changed since the
// last sweep: that is the only way a time-based anomaly clears, and the
// only way a redirect can come to contradict the provider.
func (s *sweep) changed() error {
	from, err := s.tx.Cursor(cursorChanges)
	if err != nil {
		return err
	}
	now := s.tx.Now()
	var orders []engine.SweepOrder
	if from.IsZero() {
		orders, err = s.tx.WithOpen(engine.AnomalyMissingWebhook, engine.AnomalyStuck, engine.AnomalyRedirectMismatch)
	} else {
		orders, err = s.tx.Changed(from.Add(-overlap))
	}
	if err != nil {
		return err
	}
	s.res.Checked += len(orders)
	for _, o := range orders {
		if err := s.recheck(o); err != nil {
			return err
		}
	}
	return s.tx.SetCursor(cursorChanges, now)
}

func (s *sweep) recheck(o engine.SweepOrder) error {
	if !inFlight(o.State) {
		if o.IsOpen(engine.AnomalyStuck) {
			err := s.resolve(o, engine.AnomalyStuck, func(opened time.Time) string {
				return fmt.Sprintf("The order reached %s at %s, %s after it was flagged stuck.", o.State, stamp(o.StateSince), human(o.StateSince.Sub(opened)))
			})
			if err != nil {
				return err
			}
		}
		if o.IsOpen(engine.AnomalyMissingWebhook) {
			err := s.resolve(o, engine.AnomalyMissingWebhook, func(opened time.Time) string {
				if o.Redirect == nil {
					return fmt.Sprintf("The order reached %s at %s.", o.State, stamp(o.StateSince))
				}
				return fmt.Sprintf("The order reached %s at %s, %s after the customer's redirect.", o.State, stamp(o.StateSince), human(o.StateSince.Sub(o.Redirect.At)))
			})
			if err != nil {
				return err
			}
		}
	} else if o.IsOpen(engine.AnomalyMissingWebhook) && !awaitingWebhook(o) {
		err := s.resolve(o, engine.AnomalyMissingWebhook, func(opened time.Time) string {
			return fmt.Sprintf("The shop reported the customer's redirect as %s, so no confirming webhook is expected; it was open %s.",
				redirectOutcome(o), human(s.tx.Now().Sub(opened)))
		})
		if err != nil {
			return err
		}
	}
	if o.Redirect == nil {
		return nil
	}
	if why := engine.RedirectContradiction(o.Redirect.Outcome, o.State); why != "" {
		if o.IsOpen(engine.AnomalyRedirectMismatch) {
			return nil
		}
		return s.raise(o, engine.AnomalyRedirectMismatch, why)
	}
	if !o.IsOpen(engine.AnomalyRedirectMismatch) {
		return nil
	}
	return s.resolve(o, engine.AnomalyRedirectMismatch, func(opened time.Time) string {
		return fmt.Sprintf("The redirect (%s) and the order's state (%s) agree now, %s after the mismatch was flagged.",
			o.Redirect.Outcome, o.State, human(s.tx.Now().Sub(opened)))
	})
}

func (s *sweep) raise(o engine.SweepOrder, kind, detail string) error {
	raised, err := s.tx.Raise(o, kind, detail)
	if err != nil {
		return err
	}
	if raised {
		s.record(Raised, o, kind, detail)
	}
	return nil
}

func (s *sweep) resolve(o engine.SweepOrder, kind string, why func(time.Time) string) error {
	var text string
	resolved, err := s.tx.Resolve(o, kind, func(opened time.Time) string { text = why(opened); return text })
	if err != nil {
		return err
	}
	if resolved {
		s.record(Resolved, o, kind, text)
	}
	return nil
}

func (s *sweep) record(action string, o engine.SweepOrder, kind, text string) {
	s.res.Changes = append(s.res.Changes, Change{Action: action, Kind: kind, OrderID: o.OrderID, Provider: o.Provider,
		CheckoutID: o.CheckoutID, Text: text})
}

// inFlight reports whether an order has no outcome yet.
func inFlight(s sm.State) bool { return s == sm.Pending || s == sm.Processing }

// awaitingWebhook reports whether the customer's redirect said the payment
// succeeded while the provider has not said so.
func awaitingWebhook(o engine.SweepOrder) bool {
	return o.Redirect != nil && o.Redirect.Outcome == engine.RedirectSuccess && inFlight(o.State)
}

func redirectOutcome(o engine.SweepOrder) string {
	if o.Redirect == nil {
		return "none"
	}
	return o.Redirect.Outcome
}
