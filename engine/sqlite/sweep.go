package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/orderstate/orderstate/engine"

	sm "github.com/orderstate/orderstate/statemachine"
)

// Sweep runs fn in one write transaction with the primitives the time-based
// anomaly rules need. Candidates, raises, resolutions and the cursors that
// record how far the rules got commit together, so a sweep that fails leaves
// nothing half done and the next one starts from the same place.
//
// fn runs on the store's writer, so webhooks wait while it runs: it must
// touch only the rows its windows select, through the indexes.
func (db *DB) Sweep(ctx context.Context, fn func(engine.SweepTx) error) error {
	return db.Update(ctx, func(tx *sql.Tx) error {
		now, w := db.now(), db.wrap(tx)
		return fn(&sweepTx{ctx: ctx, tx: w, now: now, r: newRaiser(w, now), stmts: map[string]*sql.Stmt{}})
	})
}

// sweepTx is the sweep's handle on the write transaction; valid only inside
// the function given to Sweep.
type sweepTx struct {
	ctx   context.Context
	tx    *wtx
	now   time.Time
	r     *raiser
	stmts map[string]*sql.Stmt
}

// stmt prepares query on the transaction once per sweep: a first sweep
// raises tens of thousands of anomalies, and preparing the same statement
// for each costs about as much as running it. The statements close with
// the transaction.
func (s *sweepTx) stmt(query string) (*sql.Stmt, error) {
	if st, ok := s.stmts[query]; ok {
		return st, nil
	}
	st, err := s.tx.Tx.PrepareContext(s.ctx, query)
	if err != nil {
		return nil, err
	}
	s.stmts[query] = st
	return st, nil
}

// ExecContext runs query through the sweep's prepared statements.
func (s *sweepTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := s.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// Now is the store's clock at the start of the transaction. The rules
// compare it with times the store stamped, so it must be the same clock.
func (s *sweepTx) Now() time.Time { return s.now }

// sweepColumns reads an order for the rules; the open kinds come from the
// (order_ref, kind) unique index, one probe per order.
const sweepColumns = `o.id, ` + shopIDColumn + `, o.provider, o.checkout_id, o.state, o.state_since,
	o.redirect_outcome, o.redirect_at,
	(SELECT group_concat(a.kind) FROM anomalies a WHERE a.order_ref = o.id AND a.status = 'open')`

// InState returns the orders in state whose state_since is before to, in
// (state_since, ref) order from after on, at most limit of them (all when
// limit <= 0).
func (s *sweepTx) InState(state sm.State, after engine.Key, to time.Time, limit int) ([]engine.SweepOrder, error) {
	// INDEXED BY makes a missing or unusable index an error instead of a
	// silent scan of every order. The index holds the ref after
	// state_since, so the order comes from it too; SQLite seeks on
	// state_since alone and steps over the refs of after's instant, which
	// costs only where many orders share one stamp.
	return s.orders(`SELECT `+sweepColumns+` FROM orders o INDEXED BY orders_state_since
		WHERE o.state = ? AND (o.state_since, o.id) > (?, ?) AND o.state_since < ?
		ORDER BY o.state_since, o.id LIMIT ?`,
		string(state), lowerBound(after.At), after.Ref, formatTime(to), sqlLimit(limit))
}

// Redirected returns the orders whose redirect was reported before to, in
// (redirect_at, ref) order from after on, at most limit of them.
func (s *sweepTx) Redirected(after engine.Key, to time.Time, limit int) ([]engine.SweepOrder, error) {
	return s.orders(`SELECT `+sweepColumns+` FROM orders o INDEXED BY orders_redirect
		WHERE (o.redirect_at, o.id) > (?, ?) AND o.redirect_at < ?
		ORDER BY o.redirect_at, o.id LIMIT ?`,
		lowerBound(after.At), after.Ref, formatTime(to), sqlLimit(limit))
}

// ChangedRefs returns, in ascending order, the refs of the orders whose
// state changed or whose redirect was reported at or after from: the only
// ones whose time-based anomalies can have cleared since a sweep that ran
// at from. It reads the two indexes alone; Orders reads the orders.
func (s *sweepTx) ChangedRefs(from time.Time) ([]int64, error) {
	states := make([]string, len(sm.States))
	args := make([]any, 0, len(sm.States)+2)
	for i, st := range sm.States {
		states[i] = "?"
		args = append(args, string(st))
	}
	args = append(args, lowerBound(from), lowerBound(from))
	return s.refs(`SELECT id FROM orders INDEXED BY orders_state_since
		WHERE state IN (`+strings.Join(states, ", ")+`) AND state_since >= ?
		UNION
		SELECT id FROM orders INDEXED BY orders_redirect WHERE redirect_at >= ?
		ORDER BY 1`, args...)
}

// OpenRefs returns, in ascending order, the refs of the orders that have
// an open anomaly of any of kinds.
func (s *sweepTx) OpenRefs(kinds ...string) ([]int64, error) {
	if len(kinds) == 0 {
		return nil, nil
	}
	marks := make([]string, len(kinds))
	args := make([]any, len(kinds))
	for i, k := range kinds {
		marks[i], args[i] = "?", k
	}
	return s.refs(`SELECT DISTINCT a.order_ref FROM anomalies a INDEXED BY anomalies_status
		WHERE a.status = 'open' AND a.kind IN (`+strings.Join(marks, ", ")+`) ORDER BY 1`, args...)
}

func (s *sweepTx) refs(query string, args ...any) ([]int64, error) {
	rows, err := s.tx.QueryContext(s.ctx, query, args...)
	if err != nil {
		return nil, storeError(err, "sweep candidates")
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var ref int64
		if err := rows.Scan(&ref); err != nil {
			return nil, storeError(err, "sweep candidates")
		}
		out = append(out, ref)
	}
	return out, storeError2(rows.Err(), "sweep candidates")
}

// ordersBatch bounds the refs one query binds, well under SQLite's limit
// on a statement's parameters.
const ordersBatch = 500

// Orders returns the orders with the given refs, in the order of refs,
// which must ascend; a ref with no order is left out.
func (s *sweepTx) Orders(refs []int64) ([]engine.SweepOrder, error) {
	var out []engine.SweepOrder
	for len(refs) > 0 {
		batch := refs[:min(len(refs), ordersBatch)]
		refs = refs[len(batch):]
		marks := strings.Repeat("?, ", len(batch))
		args := make([]any, len(batch))
		for i, r := range batch {
			args[i] = r
		}
		orders, err := s.orders(`SELECT `+sweepColumns+` FROM orders o WHERE o.id IN (`+marks[:len(marks)-2]+`) ORDER BY o.id`, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, orders...)
	}
	return out, nil
}

// sqlLimit is limit as SQLite's LIMIT takes it: negative for none.
func sqlLimit(limit int) int64 {
	if limit <= 0 {
		return -1
	}
	return int64(limit)
}

func (s *sweepTx) orders(query string, args ...any) ([]engine.SweepOrder, error) {
	rows, err := s.tx.QueryContext(s.ctx, query, args...)
	if err != nil {
		return nil, storeError(err, "sweep candidates")
	}
	return scanSweepOrders(rows)
}

// scanSweepOrders reads rows of sweepColumns, and closes them.
func scanSweepOrders(rows *sql.Rows) ([]engine.SweepOrder, error) {
	defer rows.Close()
	var out []engine.SweepOrder
	for rows.Next() {
		var o engine.SweepOrder
		var state string
		var since, outcome, redirectAt, open sql.NullString
		if err := rows.Scan(&o.Ref, &o.OrderID, &o.Provider, &o.CheckoutID, &state, &since, &outcome, &redirectAt, &open); err != nil {
			return nil, storeError(err, "sweep candidates")
		}
		o.State, o.StateSince = sm.State(state), parseTime(since)
		if outcome.Valid {
			o.Redirect = &engine.Redirect{Outcome: outcome.String, At: parseTime(redirectAt)}
		}
		if open.Valid && open.String != "" {
			o.Open = strings.Split(open.String, ",")
		}
		out = append(out, o)
	}
	return out, storeError2(rows.Err(), "sweep candidates")
}

// Raise opens an anomaly of kind on the order unless one of that kind was
// ever recorded for it, and reports whether it did. Unlike the ingest path,
// which counts each event that shows the anomaly again, a rule re-checked
// on every sweep is not a new occurrence; and a resolved or acknowledged
// anomaly stays closed.
func (s *sweepTx) Raise(o engine.SweepOrder, kind, detail string) (bool, error) {
	return s.r.ensure(s.ctx, s, o.Ref, kind, detail), s.r.err
}

// Resolve closes the order's open anomaly of kind, with the resolution why
// returns given when the anomaly was opened, and reports whether there was
// one to close.
func (s *sweepTx) Resolve(o engine.SweepOrder, kind string, why func(openedAt time.Time) string) (bool, error) {
	var opened sql.NullString
	st, err := s.stmt(`SELECT opened_at FROM anomalies WHERE order_ref = ? AND kind = ? AND status = 'open'`)
	if err != nil {
		return false, storeError(err, "sweep resolve")
	}
	err = st.QueryRowContext(s.ctx, o.Ref, kind).Scan(&opened)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, storeError(err, "sweep resolve")
	}
	s.r.resolve(s.ctx, o.Ref, kind, why(parseTime(opened)))
	return s.r.err == nil, s.r.err
}

// Cursor returns how far the rule named name got (zero if never run).
func (s *sweepTx) Cursor(name string) (time.Time, error) {
	var at sql.NullString
	err := s.tx.QueryRowContext(s.ctx, `SELECT at FROM watermarks WHERE name = ?`, name).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	} else if err != nil {
		return time.Time{}, storeError(err, "read sweep cursor")
	}
	return parseTime(at), nil
}

// SetCursor records how far the rule named name got, committed with the
// anomalies it raised.
func (s *sweepTx) SetCursor(name string, at time.Time) error {
	_, err := s.tx.ExecContext(s.ctx, `INSERT INTO watermarks (name, at) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET at = excluded.at`, name, formatTime(at))
	return storeError2(err, "set sweep cursor")
}

// ensure is raise for rules that are re-checked rather than triggered by an
// event: ON CONFLICT DO NOTHING keeps the count and a closed status as they
// are. x runs the statement, so a caller raising many can prepare it once.
func (r *raiser) ensure(ctx context.Context, x interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, ref int64, kind, detail string) bool {
	if r.err != nil {
		return false
	}
	res, err := x.ExecContext(ctx, `INSERT INTO anomalies (order_ref, kind, status, detail, opened_at, updated_at)
		VALUES (?, ?, 'open', ?, ?, ?) ON CONFLICT (order_ref, kind) DO NOTHING`,
		ref, kind, detail, formatTime(r.now), formatTime(r.now))
	if err != nil {
		r.err = storeError(err, "record anomaly")
		return false
	}
	n, err := res.RowsAffected()
	if err != nil {
		r.err = storeError(err, "record anomaly")
		return false
	}
	if n > 0 {
		r.kinds = append(r.kinds, kind)
	}
	return n > 0
}

// lowerBound is the text every stored time sorts at or after, for a zero from.
func lowerBound(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}
