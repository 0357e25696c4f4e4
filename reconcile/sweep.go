package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
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
	// At is the store's clock when the sweep began.
	At time.Time `json:"at"`
	// Checked counts the orders the rules looked at, each once however
	// many rules or transactions looked at it.
	Checked int      `json:"checked"`
	Changes []Change `json:"changes"`
	// Transactions is how many write transactions the sweep took: one,
	// unless it had more than Config.SweepChunk anomalies to raise or
	// resolve.
	Transactions int `json:"transactions"`
	// RawPurged is what the retention purge after the sweep did; nil when
	// Config.RetainRaw is zero.
	RawPurged *RawPurgeResult `json:"raw_purged,omitempty"`
}

// RawPurgeResult is what one run of the retention purge did.
type RawPurgeResult struct {
	engine.RawPurge
	// Before is the cutoff: raw requests received before it were purged.
	Before time.Time `json:"before"`
	// More says the run stopped at its bound with some still to purge,
	// which the next sweep goes on with.
	More bool `json:"more"`
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
// redirect_mismatch) and resolves those whose condition cleared. Running it
// again at once changes nothing.
//
// Each write transaction raises or resolves about Config.SweepChunk
// anomalies at most, and commits them with the cursors of the rules it
// finished; a rule stopped short leaves its cursor where the next
// transaction must pick up. So the first sweep of a large store, which may
// have tens of thousands to raise, holds the writer (and, from another
// process, the store's write lock) for one chunk at a time, and webhooks
// are committed in between. An error stops the sweep: what the committed
// transactions did is in the result returned with it.
func (r *Reconciler) Sweep(ctx context.Context) (SweepResult, error) {
	total := SweepResult{Changes: []Change{}}
	checked := map[int64]struct{}{}
	var carried carry
	for {
		var res SweepResult
		var next carry
		var seen map[int64]struct{}
		more := false
		err := r.store.Sweep(ctx, func(tx engine.SweepTx) error {
			// The store may run fn again after a failed attempt, so
			// it works on a copy of what the last commit carried.
			res, next = SweepResult{At: tx.Now(), Changes: []Change{}}, carried.clone(tx.Now())
			s := &sweep{cfg: r.cfg, tx: tx, res: &res, budget: r.cfg.SweepChunk, reads: readsPerChunk(r.cfg.SweepChunk),
				carry: &next, seen: map[int64]struct{}{}}
			err := s.run()
			more, seen = s.more, s.seen
			return err
		})
		if err != nil {
			total.Checked = len(checked)
			return total, err
		}
		carried = next
		for ref := range seen {
			checked[ref] = struct{}{}
		}
		if total.Transactions == 0 {
			total.At = res.At
		}
		total.Transactions++
		total.Checked = len(checked)
		total.Changes = append(total.Changes, res.Changes...)
		if !more {
			return total, nil
		}
		r.log.DebugContext(ctx, "sweep goes on in a new transaction", slog.Int("transactions", total.Transactions),
			slog.Int("changes", len(total.Changes)))
	}
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
	if r.cfg.RetainRaw > 0 {
		p, err := r.PurgeRaw(ctx)
		res.RawPurged = &p
		if err != nil {
			return res, err
		}
		if p.Requests > 0 {
			r.log.InfoContext(ctx, "raw requests purged", slog.Int("requests", p.Requests), slog.Int64("bytes", p.Bytes),
				slog.Time("before", p.Before), slog.Bool("more", p.More))
		}
	}
	level := slog.LevelDebug
	if len(res.Changes) > 0 {
		level = slog.LevelInfo
	}
	r.log.Log(ctx, level, "sweep done", slog.Int("raised", res.Count(Raised)), slog.Int("resolved", res.Count(Resolved)),
		slog.Int("checked", res.Checked), slog.Int("transactions", res.Transactions), slog.Float64("took_ms", float64(time.Since(start).Microseconds())/1000))
	return res, nil
}

// maxPurgeChunks bounds the transactions one retention run takes: the
// first run on a store that kept everything for a year would otherwise
// hold the sweep for as long as it takes to purge it all. The next sweep
// goes on where it stopped.
const maxPurgeChunks = 100

// PurgeRaw purges the raw requests received more than Config.RetainRaw
// ago, Config.SweepChunk to a transaction. The sweep runs it after the
// rules when RetainRaw is set.
func (r *Reconciler) PurgeRaw(ctx context.Context) (RawPurgeResult, error) {
	res := RawPurgeResult{Before: r.now().Add(-r.cfg.RetainRaw)}
	raw, ok := r.store.(engine.RawStore)
	if !ok || r.cfg.RetainRaw <= 0 {
		return res, nil
	}
	for range maxPurgeChunks {
		p, more, err := raw.PurgeRaw(ctx, res.Before, r.cfg.SweepChunk)
		res.Add(p)
		res.More = more
		if err != nil || !more {
			return res, err
		}
	}
	return res, nil
}

// sweep is one run of the rules inside one transaction.
type sweep struct {
	cfg Config
	tx  engine.SweepTx
	res *SweepResult
	// budget is how many more changes this transaction may make, and
	// reads how many more candidates it may read; more says a rule
	// stopped short for want of either.
	budget, reads int
	more          bool
	carry         *carry
	// seen holds the orders this transaction looked at.
	seen map[int64]struct{}
}

// carry is what one transaction of a Sweep hands on to the next. It is not
// stored: a sweep that stops reads from the cursors the next time, and
// finds done what its committed transactions did.
type carry struct {
	// began is the store's clock when the sweep's first transaction
	// began. The changed rule's cursor moves only to there: an order
	// that changes while the sweep goes on is re-checked by the next one.
	began time.Time
	// done names the rules and reads that are through: a later
	// transaction does not run them again, or a rule would move its
	// cursor past what it never read.
	done map[string]bool
	// progress is where each read that stopped short got to, so the
	// next transaction reads on from there rather than from its window's
	// start.
	progress map[string]engine.Key
	// changed lists the refs the changed rule re-checks, read once, in
	// its first transaction; nil until then.
	changed []int64
}

func (c carry) clone(now time.Time) carry {
	if c.began.IsZero() {
		c.began = now
	}
	c.done, c.progress = maps.Clone(c.done), maps.Clone(c.progress)
	if c.done == nil {
		c.done, c.progress = map[string]bool{}, map[string]engine.Key{}
	}
	return c
}

func (s *sweep) run() error {
	// Re-checking changed orders first means a first sweep, which has no
	// window yet and so re-checks every order with an open anomaly, does not
	// also re-check what it is about to raise.
	if err := s.changed(); err != nil || s.more {
		return err
	}
	for _, st := range []struct {
		state sm.State
		ttl   time.Duration
	}{{sm.Pending, s.cfg.PendingTTL}, {sm.Processing, s.cfg.ProcessingTTL}} {
		if err := s.stuck(st.state, st.ttl); err != nil || s.more {
			return err
		}
	}
	return s.missing()
}

// candidates is one of the reads the rules make.
type candidates struct {
	name string // its key in carry.done and carry.progress
	// read returns the orders after a key in the read's order, at most
	// limit of them, and whether there may be more.
	read  func(after engine.Key, limit int) (orders []engine.SweepOrder, more bool, err error)
	keyOf func(engine.SweepOrder) engine.Key
}

// paged is a read whose pages are full until the last.
func paged(read func(after engine.Key, limit int) ([]engine.SweepOrder, error)) func(engine.Key, int) ([]engine.SweepOrder, bool, error) {
	return func(after engine.Key, limit int) ([]engine.SweepOrder, bool, error) {
		orders, err := read(after, limit)
		return orders, err == nil && len(orders) == limit, err
	}
}

// readsPerChunk bounds the candidates a transaction reads to ten times
// the changes it may make: a read costs a tenth of a write or less, and
// without a bound a first sweep would read every order in flight in one
// transaction however few it raised.
func readsPerChunk(chunk int) int {
	if chunk > math.MaxInt/10 {
		return math.MaxInt
	}
	return 10 * chunk
}

// scan reads c page by page from start (or from where this sweep's
// previous transaction stopped) and calls act on each order needs picks.
// It stops short when the transaction has made its share of changes (it
// asks before each order it may change, so one order's changes are never
// split) or read its share of candidates, and returns the key of the last
// order it is through with.
func (s *sweep) scan(c candidates, start engine.Key, needs func(engine.SweepOrder) bool, act func(engine.SweepOrder) error) (stopped bool, through engine.Key, err error) {
	if s.carry.done[c.name] {
		return false, start, nil
	}
	after := start
	if k, ok := s.carry.progress[c.name]; ok {
		after = k
	}
	stop := func() (bool, engine.Key, error) {
		s.more = true
		s.carry.progress[c.name] = after
		return true, after, nil
	}
	for {
		// A page the size of a chunk: a transaction that raises a
		// whole chunk reads about one page.
		orders, more, err := c.read(after, s.cfg.SweepChunk)
		if err != nil {
			return false, after, err
		}
		s.reads -= len(orders)
		for _, o := range orders {
			s.seen[o.Ref] = struct{}{}
			if needs(o) {
				if s.budget <= 0 {
					return stop()
				}
				if err := act(o); err != nil {
					return false, after, err
				}
			}
			after = c.keyOf(o)
		}
		if !more {
			delete(s.carry.progress, c.name)
			s.carry.done[c.name] = true
			return false, after, nil
		}
		if s.reads <= 0 {
			return stop()
		}
	}
}

// stopAt moves the cursor of a rule read in time order to the last order
// it is through with, should the sweep end before the next transaction:
// the next sweep then starts there rather than at the window's start.
func (s *sweep) stopAt(err error, cursor string, through engine.Key) error {
	if err != nil || through.At.IsZero() {
		return err
	}
	return s.tx.SetCursor(cursor, through.At)
}

// finish records that the rule named cursor is through, up to at.
func (s *sweep) finish(cursor string, at time.Time) error {
	s.carry.done[cursor] = true
	return s.tx.SetCursor(cursor, at)
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

func byStateSince(o engine.SweepOrder) engine.Key { return engine.Key{At: o.StateSince, Ref: o.Ref} }
func byRedirect(o engine.SweepOrder) engine.Key   { return engine.Key{At: o.Redirect.At, Ref: o.Ref} }
func byRef(o engine.SweepOrder) engine.Key        { return engine.Key{Ref: o.Ref} }

// stuck raises stuck on the orders whose time in state crossed ttl since
// the last sweep.
func (s *sweep) stuck(state sm.State, ttl time.Duration) error {
	name := cursorStuck + string(state)
	if s.carry.done[name] {
		return nil
	}
	from, err := s.window(name)
	if err != nil {
		return err
	}
	now := s.tx.Now()
	to := now.Add(-ttl)
	if !from.Before(to) {
		return s.finish(name, to)
	}
	c := candidates{name: name, keyOf: byStateSince, read: paged(func(after engine.Key, limit int) ([]engine.SweepOrder, error) {
		return s.tx.InState(state, after, to, limit)
	})}
	stopped, through, err := s.scan(c, engine.Key{At: from}, func(o engine.SweepOrder) bool { return !o.IsOpen(engine.AnomalyStuck) },
		func(o engine.SweepOrder) error {
			detail := fmt.Sprintf("The order has been %s since %s (%s), longer than the %s an order may stay %s.",
				state, stamp(o.StateSince), human(now.Sub(o.StateSince)), human(ttl), state)
			return s.raise(o, engine.AnomalyStuck, detail)
		})
	if err != nil || stopped {
		return s.stopAt(err, name, through)
	}
	return s.finish(name, to)
}

// missing raises missing_webhook on the orders whose customer came back
// with success more than the grace period ago and that still have no
// outcome. A redirect that said cancel or failure expects no payment, so
// nothing is missing.
func (s *sweep) missing() error {
	if s.carry.done[cursorMissing] {
		return nil
	}
	from, err := s.window(cursorMissing)
	if err != nil {
		return err
	}
	now := s.tx.Now()
	to := now.Add(-s.cfg.RedirectGrace)
	if !from.Before(to) {
		return s.finish(cursorMissing, to)
	}
	needs := func(o engine.SweepOrder) bool {
		return awaitingWebhook(o) && o.Redirect.At.Before(to) && !o.IsOpen(engine.AnomalyMissingWebhook)
	}
	raise := func(o engine.SweepOrder) error {
		detail := fmt.Sprintf("The customer came back from %s with success at %s, but no webhook has confirmed the payment %s later; the order is still %s.",
			o.Provider, stamp(o.Redirect.At), human(now.Sub(o.Redirect.At)), o.State)
		return s.raise(o, engine.AnomalyMissingWebhook, detail)
	}
	if from.IsZero() {
		// With no window yet, every redirect ever reported is a
		// candidate, most of them long paid; the orders still in flight
		// are far fewer, so read those and check their redirect. They are
		// not in redirect order, so there is no cursor to leave should
		// the sweep end before it is through them: the next one reads
		// them again and skips those raised.
		for _, st := range []sm.State{sm.Pending, sm.Processing} {
			c := candidates{name: "missing." + string(st), keyOf: byStateSince,
				read: paged(func(after engine.Key, limit int) ([]engine.SweepOrder, error) {
					return s.tx.InState(st, after, now.Add(time.Nanosecond), limit)
				})}
			if stopped, _, err := s.scan(c, engine.Key{}, needs, raise); err != nil || stopped {
				return err
			}
		}
		// An order this read passed in an earlier transaction was
		// judged against that transaction's threshold; one whose
		// redirect was too recent then is past it now, unread. The
		// cursor goes no further than the threshold of the sweep's
		// first transaction, so the next sweep's window holds them.
		return s.finish(cursorMissing, minTime(to, s.carry.began.Add(-s.cfg.RedirectGrace)))
	}
	c := candidates{name: cursorMissing, keyOf: byRedirect, read: paged(func(after engine.Key, limit int) ([]engine.SweepOrder, error) {
		return s.tx.Redirected(after, to, limit)
	})}
	stopped, through, err := s.scan(c, engine.Key{At: from}, needs, raise)
	if err != nil || stopped {
		return s.stopAt(err, cursorMissing, through)
	}
	return s.finish(cursorMissing, to)
}

// changed re-checks the orders whose state or redirect changed since the
// last sweep: that is the only way a time-based anomaly clears, and the
// only way a redirect can come to contradict the provider.
func (s *sweep) changed() error {
	if s.carry.done[cursorChanges] {
		return nil
	}
	if s.carry.changed == nil {
		from, err := s.tx.Cursor(cursorChanges)
		if err != nil {
			return err
		}
		var refs []int64
		if from.IsZero() {
			refs, err = s.tx.OpenRefs(engine.AnomalyMissingWebhook, engine.AnomalyStuck, engine.AnomalyRedirectMismatch)
		} else {
			refs, err = s.tx.ChangedRefs(from.Add(-overlap))
		}
		if err != nil {
			return err
		}
		if refs == nil {
			refs = []int64{} // read, and empty: not read again
		}
		s.carry.changed = refs
	}
	refs := s.carry.changed
	c := candidates{name: cursorChanges, keyOf: byRef, read: func(after engine.Key, limit int) ([]engine.SweepOrder, bool, error) {
		for {
			i, _ := slices.BinarySearch(refs, after.Ref+1)
			n := min(len(refs)-i, limit)
			orders, err := s.tx.Orders(refs[i : i+n])
			if err != nil || len(orders) > 0 || i+n == len(refs) {
				return orders, i+n < len(refs), err
			}
			// None of these orders is left to read; the scan
			// cannot step past what it never saw, so step here.
			after.Ref = refs[i+n-1]
		}
	}}
	stopped, _, err := s.scan(c, engine.Key{}, func(engine.SweepOrder) bool { return true }, s.recheck)
	if err != nil || stopped {
		// Stopped short, the cursor stays: a sweep that ends here
		// re-checks the same orders, and finds nothing left to do on
		// those re-checked already.
		return err
	}
	return s.finish(cursorChanges, s.carry.began)
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
	s.budget--
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

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
