package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/orderstate/orderstate/engine"

	sm "github.com/orderstate/orderstate/statemachine"
)

// RegisterOrder records the order the shop created a checkout for. It is
// idempotent: registering the same order again with the same details is OK.
// A webhook that came before the registration is attached to it. Returns
// EINVALID for a bad field and ECONFLICT when the order id or the checkout is
// already registered with different details.
func (db *DB) RegisterOrder(ctx context.Context, reg engine.Registration) (*engine.Order, error) {
	reg, err := engine.NormalizeRegistration(reg)
	if err != nil {
		return nil, err
	}
	err = db.update(ctx, func(stx *sql.Tx) error {
		tx := db.wrap(stx)
		if err := db.register(ctx, tx, reg); err != nil {
			return err
		}
		if err := db.attachIDs(ctx, tx, reg); err != nil {
			return err
		}
		o, err := db.adopt(ctx, tx, reg)
		if err != nil {
			return err
		}
		raised := newRaiser(tx, db.now())
		raised.settle(ctx, o, 0)
		return raised.err
	}, true)
	if err != nil {
		return nil, err
	}
	return db.Order(ctx, reg.OrderID)
}

func (db *DB) register(ctx context.Context, tx *wtx, reg engine.Registration) error {
	now := db.now()
	byID, err := loadOrder(ctx, tx, `order_id = ?`, reg.OrderID)
	if err != nil {
		return err
	}
	var byCheckout *orderRow
	var ref int64
	err = tx.QueryRowContext(ctx, `SELECT order_ref FROM order_aliases WHERE provider = ? AND external_id = ?`, reg.Provider, reg.CheckoutID).Scan(&ref)
	switch {
	case err == nil:
		if byCheckout, err = loadOrder(ctx, tx, `id = ?`, ref); err != nil {
			return err
		}
	case !errors.Is(err, sql.ErrNoRows):
		return storeError(err, "alias lookup")
	}

	if byID != nil {
		if byID.provider != reg.Provider || byID.checkoutID != reg.CheckoutID || byID.amount.Int64 != reg.Amount ||
			byID.currency.String != reg.Currency || byID.mode.String != reg.Mode {
			return engine.Errorf(engine.ECONFLICT, "order %s is already registered as %s %s, %d %s, %s", reg.OrderID,
				byID.provider, byID.checkoutID, byID.amount.Int64, byID.currency.String, byID.mode.String)
		}
		return nil
	}
	if byCheckout != nil && byCheckout.orderID.Valid {
		return engine.Errorf(engine.ECONFLICT, "%s checkout %s is already registered to order %s", reg.Provider, reg.CheckoutID, byCheckout.orderID.String)
	}

	if byCheckout == nil {
		r, err := tx.ExecContext(ctx, `INSERT INTO orders (order_id, provider, checkout_id, amount, currency, mode, registered_at,
			state, created_at, updated_at, state_since, registered_ids) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)`,
			reg.OrderID, reg.Provider, reg.CheckoutID, reg.Amount, reg.Currency, reg.Mode,
			formatTime(now), formatTime(now), formatTime(now), formatTime(now), idsJSON([]string{reg.CheckoutID}))
		if err != nil {
			return storeError(err, "register order")
		}
		if ref, err = r.LastInsertId(); err != nil {
			return storeError(err, "register order")
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO order_aliases (provider, external_id, order_ref) VALUES (?, ?, ?)`, reg.Provider, reg.CheckoutID, ref)
		if err != nil {
			return storeError(err, "record alias")
		}
		// Its webhooks usually follow within minutes: the first one then
		// finds the order without reading it.
		db.cache.put(&orderRow{ref: ref, orderID: sql.NullString{String: reg.OrderID, Valid: true}, provider: reg.Provider,
			checkoutID: reg.CheckoutID, amount: sql.NullInt64{Int64: reg.Amount, Valid: true},
			currency: sql.NullString{String: reg.Currency, Valid: true}, mode: sql.NullString{String: reg.Mode, Valid: true},
			state: sm.Pending, totals: sm.Totals{Registered: reg.Amount}, progress: sm.NewProgress(), registered: true,
			stateSince: now, createdAt: now, registeredIDs: []string{reg.CheckoutID}}, reg.Provider, []string{reg.CheckoutID})
		return nil
	}

	// Webhooks came first: attach the registration to the order they made,
	// re-resolve a refund state against the registered amount, and compare
	// what they said with what the shop registered.
	o := byCheckout
	o.totals.Registered = reg.Amount
	state := sm.Recount(o.state, o.totals)
	stateSince := o.stateSince
	if state != o.state {
		stateSince = now
	}
	_, err = tx.ExecContext(ctx, `UPDATE orders SET order_id = ?, amount = ?, currency = ?, mode = ?, registered_at = ?,
		state = ?, state_since = ?, updated_at = ?, registered_ids = ? WHERE id = ?`,
		reg.OrderID, reg.Amount, reg.Currency, reg.Mode, formatTime(now), string(state), formatTime(stateSince), formatTime(now),
		idsJSON([]string{reg.CheckoutID}), o.ref)
	if err != nil {
		return storeError(err, "register order")
	}
	db.cache.forget(o.ref)
	o.orderID = sql.NullString{String: reg.OrderID, Valid: true}
	o.amount = sql.NullInt64{Int64: reg.Amount, Valid: true}
	o.currency = sql.NullString{String: reg.Currency, Valid: true}
	o.mode = sql.NullString{String: reg.Mode, Valid: true}
	o.registered, o.state = true, state

	return nil
}

// attachIDs records a registration's other provider ids as names of its
// order. An id a webhook already made an unregistered order for merges that
// order into this one; an id of another registered order is a conflict.
func (db *DB) attachIDs(ctx context.Context, tx *wtx, reg engine.Registration) error {
	if len(reg.OtherIDs) == 0 {
		return nil
	}
	var ref int64
	if err := tx.QueryRowContext(ctx, `SELECT id FROM orders WHERE order_id = ?`, reg.OrderID).Scan(&ref); err != nil {
		return storeError(err, "register order")
	}
	now := db.now()
	for _, id := range reg.OtherIDs {
		var other int64
		err := tx.queryRow(ctx, qAliasLookup, reg.Provider, id).Scan(&other)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, qInsertAlias, reg.Provider, id, ref); err != nil {
				return storeError(err, "record alias")
			}
		case err != nil:
			return storeError(err, "alias lookup")
		case other != ref:
			o, err := loadOrder(ctx, tx, `id = ?`, other)
			if err != nil {
				return err
			}
			if o.orderID.Valid {
				return engine.Errorf(engine.ECONFLICT, "%s id %s belongs to order %s", reg.Provider, id, o.orderID.String)
			}
			if _, err := db.merge(ctx, tx, ref, []int64{other}, now); err != nil {
				return err
			}
		}
	}
	o, err := loadOrder(ctx, tx, `id = ?`, ref)
	if err != nil {
		return err
	}
	ids := o.registeredIDs
	for _, id := range reg.OtherIDs {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == len(o.registeredIDs) {
		return nil
	}
	db.cache.forget(ref)
	_, err = tx.ExecContext(ctx, `UPDATE orders SET registered_ids = ? WHERE id = ?`, idsJSON(ids), ref)
	return storeError2(err, "register order")
}

// adopt merges into the registered order the orders webhooks made before
// the registration that named it only by the shop's reference (a Tazapay
// payment attempt names the payin and the reference_id, not the checkout),
// and returns the registered order as it then stands.
func (db *DB) adopt(ctx context.Context, tx *wtx, reg engine.Registration) (*orderRow, error) {
	o, err := loadOrder(ctx, tx, `order_id = ?`, reg.OrderID)
	if err != nil {
		return nil, err
	}
	refs, err := orderRefs(ctx, tx, `SELECT id FROM orders INDEXED BY orders_reference
		WHERE order_id IS NULL AND reference = ? AND provider = ? ORDER BY id`, reg.OrderID, reg.Provider)
	if err != nil || len(refs) == 0 {
		return o, err
	}
	if _, err := db.merge(ctx, tx, o.ref, refs, db.now()); err != nil {
		return nil, err
	}
	return loadOrder(ctx, tx, `id = ?`, o.ref)
}

// orderRefs runs a query listing order refs.
func orderRefs(ctx context.Context, tx *wtx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, storeError(err, "find orders")
	}
	defer rows.Close()
	var refs []int64
	for rows.Next() {
		var ref int64
		if err := rows.Scan(&ref); err != nil {
			return nil, storeError(err, "find orders")
		}
		refs = append(refs, ref)
	}
	return refs, storeError2(rows.Err(), "find orders")
}

// storeError2 is storeError that passes nil through.
func storeError2(err error, msg string) error {
	if err == nil {
		return nil
	}
	return storeError(err, msg)
}

func loadOrder(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, where string, args ...any) (*orderRow, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, storeError(err, "load order")
	}
	return o, nil
}

// ReportRedirect records that the customer came back to the shop with the
// given outcome. Returns ENOTFOUND for an order nobody registered and
// EINVALID for an unknown outcome.
func (db *DB) ReportRedirect(ctx context.Context, orderID, outcome string) (*engine.Order, error) {
	switch outcome {
	case engine.RedirectSuccess, engine.RedirectCancel, engine.RedirectFailure:
	default:
		return nil, engine.Errorf(engine.EINVALID, "outcome must be success, cancel or failure; got %q", outcome)
	}
	err := db.update(ctx, func(stx *sql.Tx) error {
		tx := db.wrap(stx)
		o, err := loadOrder(ctx, tx, `order_id = ?`, orderID)
		if err != nil {
			return err
		} else if o == nil {
			return engine.Errorf(engine.ENOTFOUND, "order %s is not registered", orderID)
		}
		now := db.now()
		if _, err := tx.ExecContext(ctx, `UPDATE orders SET redirect_outcome = ?, redirect_at = ?, updated_at = ? WHERE id = ?`,
			outcome, formatTime(now), formatTime(now), o.ref); err != nil {
			return storeError(err, "record redirect")
		}
		db.cache.forget(o.ref)
		o.redirect = sql.NullString{String: outcome, Valid: true}
		o.redirectAt = now
		raised := newRaiser(tx, now)
		raised.settle(ctx, o, 0)
		return raised.err
	}, true)
	if err != nil {
		return nil, err
	}
	return db.Order(ctx, orderID)
}

// Order returns the authoritative view of the order the shop registered
// under orderID or, when it registered none, of the latest order a webhook
// created naming orderID as the shop's reference. Returns ENOTFOUND when
// there is neither.
func (db *DB) Order(ctx context.Context, orderID string) (*engine.Order, error) {
	o, err := db.orderView(ctx, `order_id = ?`, orderID)
	if o == nil && err == nil {
		// The customer may have tried more than one checkout under the
		// same shop order; the latest is the one still in play.
		o, err = db.orderView(ctx, `id = (SELECT id FROM orders INDEXED BY orders_reference
			WHERE order_id IS NULL AND reference = ? ORDER BY id DESC LIMIT 1)`, orderID)
	}
	if o == nil && err == nil {
		return nil, engine.Errorf(engine.ENOTFOUND, "no order %s", orderID)
	}
	return o, err
}

// OrderByCheckout returns the order a provider's checkout id (or any other
// id a webhook named it by) belongs to, registered or not. Returns
// ENOTFOUND when there is none.
func (db *DB) OrderByCheckout(ctx context.Context, provider, checkoutID string) (*engine.Order, error) {
	o, err := db.orderView(ctx, `id = (SELECT order_ref FROM order_aliases WHERE provider = ? AND external_id = ?)`, provider, checkoutID)
	if o == nil && err == nil {
		return nil, engine.Errorf(engine.ENOTFOUND, "no order for %s checkout %s", provider, checkoutID)
	}
	return o, err
}

// orderView returns nil and no error when no order matches: only the
// caller knows how to name what it looked for.
func (db *DB) orderView(ctx context.Context, where string, args ...any) (*engine.Order, error) {
	if err := db.closedError(); err != nil {
		return nil, err
	}
	stx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, storeError(err, "read order")
	}
	defer stx.Rollback()
	tx := db.rwrap(stx)
	o, err := loadOrder(ctx, tx, where, args...)
	if err != nil {
		return nil, err
	} else if o == nil {
		return nil, nil
	}
	view := o.view()
	if view.Anomalies, err = queryAnomalies(ctx, tx, engine.AnomalyFilter{OrderRef: o.ref}); err != nil {
		return nil, err
	}
	if view.Events, err = timeline(ctx, tx, o.ref); err != nil {
		return nil, err
	}
	return view, db.readDone(ctx, stx)
}

func (o *orderRow) view() *engine.Order {
	v := &engine.Order{
		Ref: o.ref, OrderID: o.shopID(), Provider: o.provider, CheckoutID: o.checkoutID, State: o.state,
		Amount: o.amount.Int64, Currency: o.currency.String, Mode: o.mode.String, Registered: o.registered,
		Captured: o.totals.Captured, Refunded: o.totals.Refunded, StateSince: o.stateSince, CreatedAt: o.createdAt,
		UpdatedAt: o.lastEventAt, Anomalies: []engine.Anomaly{}, Events: []engine.Entry{},
	}
	if v.UpdatedAt.Before(o.stateSince) {
		v.UpdatedAt = o.stateSince
	}
	v.Redirect = o.redirectView()
	return v
}

func timeline(ctx context.Context, tx querier, ref int64) ([]engine.Entry, error) {
	rows, err := tx.QueryContext(ctx, qTimeline, ref)
	if err != nil {
		return nil, storeError(err, "read timeline")
	}
	defer rows.Close()
	out := []engine.Entry{}
	for rows.Next() {
		var e engine.Entry
		var kind, result, from, to string
		var occurred, received sql.NullString
		if err := rows.Scan(&e.Seq, &e.ProviderEventID, &e.ProviderType, &kind, &result, &from, &to, &e.Amount,
			&e.Currency, &e.Mode, &occurred, &received, &e.OutOfOrder, &e.Unsigned, &e.Source); err != nil {
			return nil, storeError(err, "read timeline")
		}
		e.Kind, e.Result, e.FromState, e.ToState = sm.Kind(kind), sm.Result(result), sm.State(from), sm.State(to)
		if t := parseTime(occurred); !t.IsZero() {
			e.OccurredAt = &t
		}
		e.ReceivedAt = parseTime(received)
		out = append(out, e)
	}
	return out, storeError2(rows.Err(), "read timeline")
}

// Anomalies lists anomalies matching f, newest first.
func (db *DB) Anomalies(ctx context.Context, f engine.AnomalyFilter) ([]engine.Anomaly, error) {
	if err := db.closedError(); err != nil {
		return nil, err
	}
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, storeError(err, "read anomalies")
	}
	defer tx.Rollback()
	out, err := queryAnomalies(ctx, tx, f)
	if err != nil {
		return nil, err
	}
	return out, db.readDone(ctx, tx)
}

func queryAnomalies(ctx context.Context, tx querier, f engine.AnomalyFilter) ([]engine.Anomaly, error) {
	query, args := anomalyQuery(f)
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, storeError(err, "read anomalies")
	}
	defer rows.Close()
	out := []engine.Anomaly{}
	for rows.Next() {
		a, err := scanAnomaly(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, storeError2(rows.Err(), "read anomalies")
}

// anomalyQuery builds the query for f; the same filter shape always gives
// the same text, so the per-order one can be prepared once.
func anomalyQuery(f engine.AnomalyFilter) (string, []any) {
	where, args := []string{"1 = 1"}, []any{}
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.Kind != "" {
		add("a.kind = ?", f.Kind)
	}
	if f.Provider != "" {
		add("o.provider = ?", f.Provider)
	}
	if f.Status != "" {
		add("a.status = ?", f.Status)
	}
	if f.Severity != "" {
		kinds := []string{}
		for _, k := range engine.AnomalyKinds {
			if engine.Severity(k) == f.Severity {
				kinds = append(kinds, "'"+k+"'")
			}
		}
		where = append(where, "a.kind IN ("+strings.Join(kinds, ",")+")")
	}
	if f.State != "" {
		add("o.state = ?", string(f.State))
	}
	if f.OrderRef != 0 {
		add("a.order_ref = ?", f.OrderRef)
	}
	if !f.Since.IsZero() {
		add("a.opened_at >= ?", formatTime(f.Since))
	}
	if !f.Until.IsZero() {
		add("a.opened_at < ?", formatTime(f.Until))
	}
	if f.Before != 0 {
		add("a.id < ?", f.Before)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	return `SELECT a.id, a.kind, a.status, a.detail, a.event_seqs, a.count, a.opened_at, a.updated_at,
		a.resolved_at, COALESCE(a.resolution, ''), COALESCE(a.note, ''), ` + shopIDColumn + `, o.provider, o.checkout_id, o.state
		FROM anomalies a JOIN orders o ON o.id = a.order_ref WHERE ` + strings.Join(where, " AND ") + `
		ORDER BY a.id DESC LIMIT ?`, append(args, limit)
}

func scanAnomaly(row interface{ Scan(...any) error }) (engine.Anomaly, error) {
	var a engine.Anomaly
	var seqs, state string
	var opened, updated, resolved sql.NullString
	if err := row.Scan(&a.ID, &a.Kind, &a.Status, &a.Detail, &seqs, &a.Count, &opened, &updated, &resolved,
		&a.Resolution, &a.Note, &a.OrderID, &a.Provider, &a.CheckoutID, &state); err != nil {
		return a, storeError(err, "read anomaly")
	}
	a.State = sm.State(state)
	a.Severity = engine.Severity(a.Kind)
	a.OpenedAt, a.UpdatedAt = parseTime(opened), parseTime(updated)
	if t := parseTime(resolved); !t.IsZero() {
		a.ResolvedAt = &t
	}
	a.EventSeqs = []int64{}
	_ = json.Unmarshal([]byte(seqs), &a.EventSeqs)
	return a, nil
}

// withNote returns the notes of the anomaly id with note added
// (engine.AddNote); ENOTFOUND when there is no such anomaly.
func withNote(ctx context.Context, tx *sql.Tx, id int64, note, what string) (string, error) {
	var notes sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT note FROM anomalies WHERE id = ?`, id).Scan(&notes)
	if errors.Is(err, sql.ErrNoRows) {
		return "", engine.Errorf(engine.ENOTFOUND, "no anomaly %d", id)
	} else if err != nil {
		return "", storeError(err, what)
	}
	return engine.AddNote(id, notes.String, note)
}

// AckAnomaly records that a person looked at an anomaly, with their note.
// A later ack adds its note below the earlier ones rather than replacing
// what a colleague wrote; an ack without a note, or the same note again (a
// retried request), keeps the notes as they are. Returns ENOTFOUND for an
// unknown id, EINVALID for a note past engine.MaxNote or notes past
// engine.MaxNotes.
func (db *DB) AckAnomaly(ctx context.Context, id int64, note string) (*engine.Anomaly, error) {
	if err := engine.CheckNote(note); err != nil {
		return nil, err
	}
	err := db.update(ctx, func(tx *sql.Tx) error {
		merged, err := withNote(ctx, tx, id, note, "acknowledge anomaly")
		if err != nil {
			return err
		}
		now := formatTime(db.now())
		_, err = tx.ExecContext(ctx, `UPDATE anomalies SET status = 'acknowledged', note = ?, updated_at = ?,
			resolved_at = COALESCE(resolved_at, ?) WHERE id = ?`, nullString(merged), now, now, id)
		return storeError2(err, "acknowledge anomaly")
	}, true)
	if err != nil {
		return nil, err
	}
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, storeError(err, "read anomaly")
	}
	defer tx.Rollback()
	a, err := scanAnomaly(tx.QueryRowContext(ctx, `SELECT a.id, a.kind, a.status, a.detail, a.event_seqs, a.count, a.opened_at,
		a.updated_at, a.resolved_at, COALESCE(a.resolution, ''), COALESCE(a.note, ''), `+shopIDColumn+`, o.provider,
		o.checkout_id, o.state FROM anomalies a JOIN orders o ON o.id = a.order_ref WHERE a.id = ?`, id))
	if err != nil {
		return nil, err
	}
	// The ack itself is on disk, but the answer is read afterwards and
	// may show later writes (the order's new state, the anomaly raised
	// again) whose flush is still running: like every read, it waits.
	return &a, db.readDone(ctx, tx)
}

// Replay rebuilds every order from its stored events (originals only, in
// arrival order) and calls fn for each order whose state would change. With
// fix, it also writes the replayed state. It returns the number of orders
// checked.
func (db *DB) Replay(ctx context.Context, fix bool, fn func(engine.ReplayDiff)) (int, error) {
	if err := db.closedError(); err != nil {
		return 0, err
	}
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, storeError(err, "replay")
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT o.id, `+shopIDColumn+`, o.provider, o.checkout_id, o.state, COALESCE(o.amount, 0),
		e.kind, e.amount, e.source FROM orders o LEFT JOIN events e ON e.order_ref = o.id AND e.original_id IS NULL
		ORDER BY o.id, e.id`)
	if err != nil {
		return 0, storeError(err, "replay")
	}
	defer rows.Close()
	var cur *engine.ReplayDiff
	var totals sm.Totals
	n := 0
	var diffs []engine.ReplayDiff
	flush := func() {
		if cur != nil && cur.Replayed != cur.Stored {
			diffs = append(diffs, *cur)
			fn(*cur)
		}
	}
	for rows.Next() {
		var d engine.ReplayDiff
		var stored string
		var registered int64
		var kind sql.NullString
		var amount sql.NullInt64
		var source sql.NullString
		if err := rows.Scan(&d.Ref, &d.OrderID, &d.Provider, &d.CheckoutID, &stored, &registered, &kind, &amount, &source); err != nil {
			return n, storeError(err, "replay")
		}
		if cur == nil || cur.Ref != d.Ref {
			flush()
			d.Stored, d.Replayed = sm.State(stored), sm.Pending
			cur, totals = &d, sm.Totals{Registered: registered}
			n++
		}
		if !kind.Valid {
			continue
		}
		out, err := engine.Apply(cur.Replayed, &totals, sm.Kind(kind.String), amount.Int64, source.String)
		if err != nil {
			return n, engine.Wrap(engine.EINTERNAL, err, "replay order %d", cur.Ref)
		}
		cur.Replayed = out.To
		cur.Events++
	}
	if err := rows.Err(); err != nil {
		return n, storeError(err, "replay")
	}
	flush()
	if !fix || len(diffs) == 0 {
		return n, nil
	}
	return n, db.Update(ctx, func(tx *sql.Tx) error {
		now := formatTime(db.now())
		for _, d := range diffs {
			if _, err := tx.ExecContext(ctx, `UPDATE orders SET state = ?, state_since = ?, updated_at = ? WHERE id = ?`,
				string(d.Replayed), now, now, d.Ref); err != nil {
				return storeError(err, "replay fix")
			}
		}
		return nil
	})
}

// RecordRejections adds counts of refused requests (provider, reason) for
// the hour they happened in.
func (db *DB) RecordRejections(ctx context.Context, at time.Time, counts map[[2]string]int) error {
	if len(counts) == 0 {
		return nil
	}
	hour := formatTime(at.UTC().Truncate(time.Hour))
	return db.update(ctx, func(tx *sql.Tx) error {
		for k, n := range counts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO rejections (provider, reason, hour, count) VALUES (?, ?, ?, ?)
				ON CONFLICT (provider, reason, hour) DO UPDATE SET count = count + excluded.count`, k[0], k[1], hour, n); err != nil {
				return storeError(err, "record rejections")
			}
		}
		return nil
	}, true)
}
