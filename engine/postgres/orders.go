package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// RegisterOrder records the order the shop created a checkout for; see
// engine.Store. It serialises with every webhook naming the checkout, its
// other ids or the order id as the shop's reference.
func (db *DB) RegisterOrder(ctx context.Context, reg engine.Registration) (*engine.Order, error) {
	reg, err := engine.NormalizeRegistration(reg)
	if err != nil {
		return nil, err
	}
	keys := []string{"order\x00" + reg.OrderID, idKey(reg.Provider, reg.CheckoutID), referenceKey(reg.Provider, reg.OrderID)}
	for _, id := range reg.OtherIDs {
		keys = append(keys, idKey(reg.Provider, id))
	}
	err = db.write(ctx, keys, func(tx pgx.Tx) error {
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
		r := &raiser{now: db.now()}
		if err := r.settle(ctx, tx, o, 0); err != nil {
			return err
		}
		return r.flush(ctx, tx)
	})
	if err != nil {
		return nil, err
	}
	return db.Order(ctx, reg.OrderID)
}

func (db *DB) register(ctx context.Context, tx pgx.Tx, reg engine.Registration) error {
	now := db.now()
	byID, err := loadOrder(ctx, tx, true, `o.order_id = $1`, reg.OrderID)
	if err != nil {
		return err
	}
	byCheckout, err := loadOrder(ctx, tx, true, `o.id = (SELECT order_ref FROM order_aliases WHERE provider = $1 AND external_id = $2)`,
		reg.Provider, reg.CheckoutID)
	if err != nil {
		return err
	}
	if byID != nil {
		if byID.provider != reg.Provider || byID.checkoutID != reg.CheckoutID || byID.totals.Registered != reg.Amount ||
			str(byID.currency) != reg.Currency || str(byID.mode) != reg.Mode {
			return engine.Errorf(engine.ECONFLICT, "order %s is already registered as %s %s, %d %s, %s", reg.OrderID,
				byID.provider, byID.checkoutID, byID.totals.Registered, str(byID.currency), str(byID.mode))
		}
		return nil
	}
	if byCheckout != nil && byCheckout.orderID != nil {
		return engine.Errorf(engine.ECONFLICT, "%s checkout %s is already registered to order %s", reg.Provider, reg.CheckoutID, *byCheckout.orderID)
	}
	ids, _ := json.Marshal([]string{reg.CheckoutID})
	if byCheckout == nil {
		var ref int64
		err := tx.QueryRow(ctx, `INSERT INTO orders (order_id, provider, checkout_id, amount, currency, mode, registered_at,
			registered_ids, state, created_at, updated_at, state_since) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $7, $7, $7)
			RETURNING id`, reg.OrderID, reg.Provider, reg.CheckoutID, reg.Amount, reg.Currency, reg.Mode, now, ids).Scan(&ref)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO order_aliases (provider, external_id, order_ref) VALUES ($1, $2, $3)`, reg.Provider, reg.CheckoutID, ref)
		return err
	}
	// Webhooks came first: attach the registration to the order they made
	// and re-resolve a refund state against the registered amount.
	o := byCheckout
	o.totals.Registered = reg.Amount
	state := sm.Recount(o.state, o.totals)
	stateSince := o.stateSince
	if state != o.state {
		stateSince = now
	}
	_, err = tx.Exec(ctx, `UPDATE orders SET order_id = $1, amount = $2, currency = $3, mode = $4, registered_at = $5,
		state = $6, state_since = $7, updated_at = $5, registered_ids = $8 WHERE id = $9`,
		reg.OrderID, reg.Amount, reg.Currency, reg.Mode, now, string(state), stateSince, ids, o.ref)
	return err
}

// attachIDs records a registration's other provider ids as names of its
// order: an id a webhook made an unregistered order for merges that order
// into this one; an id of another registered order is a conflict.
func (db *DB) attachIDs(ctx context.Context, tx pgx.Tx, reg engine.Registration) error {
	if len(reg.OtherIDs) == 0 {
		return nil
	}
	var ref int64
	if err := tx.QueryRow(ctx, `SELECT id FROM orders WHERE order_id = $1`, reg.OrderID).Scan(&ref); err != nil {
		return err
	}
	now := db.now()
	for _, id := range reg.OtherIDs {
		var other int64
		err := tx.QueryRow(ctx, `SELECT order_ref FROM order_aliases WHERE provider = $1 AND external_id = $2`, reg.Provider, id).Scan(&other)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, `INSERT INTO order_aliases (provider, external_id, order_ref) VALUES ($1, $2, $3)`, reg.Provider, id, ref); err != nil {
				return err
			}
		case err != nil:
			return err
		case other != ref:
			o, err := loadOrder(ctx, tx, true, `o.id = $1`, other)
			if err != nil {
				return err
			}
			if o.orderID != nil {
				return engine.Errorf(engine.ECONFLICT, "%s id %s belongs to order %s", reg.Provider, id, *o.orderID)
			}
			if _, err := db.merge(ctx, tx, ref, []int64{other}, now); err != nil {
				return err
			}
		}
	}
	o, err := loadOrder(ctx, tx, true, `o.id = $1`, ref)
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
	b, _ := json.Marshal(ids)
	_, err = tx.Exec(ctx, `UPDATE orders SET registered_ids = $1 WHERE id = $2`, b, ref)
	return err
}

// adopt merges into the registered order the orders webhooks made before
// the registration that named it only by the shop's reference, and returns
// the registered order as it then stands.
func (db *DB) adopt(ctx context.Context, tx pgx.Tx, reg engine.Registration) (*orderRow, error) {
	o, err := loadOrder(ctx, tx, true, `o.order_id = $1`, reg.OrderID)
	if err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT id FROM orders WHERE order_id IS NULL AND reference = $1 AND provider = $2 ORDER BY id`,
		reg.OrderID, reg.Provider)
	if err != nil {
		return nil, err
	}
	refs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(refs) == 0 {
		return o, err
	}
	if _, err := db.merge(ctx, tx, o.ref, refs, db.now()); err != nil {
		return nil, err
	}
	return loadOrder(ctx, tx, true, `o.id = $1`, o.ref)
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
	err := db.write(ctx, []string{"order\x00" + orderID}, func(tx pgx.Tx) error {
		o, err := loadOrder(ctx, tx, true, `o.order_id = $1`, orderID)
		if err != nil {
			return err
		} else if o == nil {
			return engine.Errorf(engine.ENOTFOUND, "order %s is not registered", orderID)
		}
		now := db.now()
		if _, err := tx.Exec(ctx, `UPDATE orders SET redirect_outcome = $1, redirect_at = $2, updated_at = $2 WHERE id = $3`,
			outcome, now, o.ref); err != nil {
			return err
		}
		o.redirect, o.redirectAt = &outcome, now
		r := &raiser{now: now}
		if err := r.settle(ctx, tx, o, 0); err != nil {
			return err
		}
		return r.flush(ctx, tx)
	})
	if err != nil {
		return nil, err
	}
	return db.Order(ctx, orderID)
}

// Order returns the authoritative view of the order the shop registered
// under orderID or, when it registered none, of the latest order a webhook
// created naming orderID as the shop's reference. Returns ENOTFOUND.
func (db *DB) Order(ctx context.Context, orderID string) (*engine.Order, error) {
	o, err := db.orderView(ctx, `o.order_id = $1`, orderID)
	if o == nil && err == nil {
		o, err = db.orderView(ctx, `o.id = (SELECT id FROM orders WHERE order_id IS NULL AND reference = $1 ORDER BY id DESC LIMIT 1)`, orderID)
	}
	if o == nil && err == nil {
		return nil, engine.Errorf(engine.ENOTFOUND, "no order %s", orderID)
	}
	return o, err
}

// OrderByCheckout returns the order any provider id names. Returns
// ENOTFOUND.
func (db *DB) OrderByCheckout(ctx context.Context, provider, checkoutID string) (*engine.Order, error) {
	o, err := db.orderView(ctx, `o.id = (SELECT order_ref FROM order_aliases WHERE provider = $1 AND external_id = $2)`, provider, checkoutID)
	if o == nil && err == nil {
		return nil, engine.Errorf(engine.ENOTFOUND, "no order for %s checkout %s", provider, checkoutID)
	}
	return o, err
}

// read runs fn in a read-only transaction that sees one snapshot.
func (db *DB) read(ctx context.Context, fn func(pgx.Tx) error) error {
	if err := db.closedError(); err != nil {
		return err
	}
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, fn)
	return storeError(err, "read")
}

func (db *DB) orderView(ctx context.Context, where string, args ...any) (*engine.Order, error) {
	var view *engine.Order
	err := db.read(ctx, func(tx pgx.Tx) error {
		view = nil
		o, err := loadOrder(ctx, tx, false, where, args...)
		if err != nil || o == nil {
			return err
		}
		view = o.view()
		if view.Anomalies, err = queryAnomalies(ctx, tx, engine.AnomalyFilter{OrderRef: o.ref}); err != nil {
			return err
		}
		view.Events, err = timeline(ctx, tx, o.ref)
		return err
	})
	return view, err
}

func (o *orderRow) view() *engine.Order {
	v := &engine.Order{
		Ref: o.ref, OrderID: o.shopID(), Provider: o.provider, CheckoutID: o.checkoutID, State: o.state,
		Amount: o.totals.Registered, Currency: str(o.currency), Mode: str(o.mode), Registered: o.registered,
		Captured: o.totals.Captured, Refunded: o.totals.Refunded, StateSince: o.stateSince, CreatedAt: o.createdAt,
		UpdatedAt: o.lastEventAt, Anomalies: []engine.Anomaly{}, Events: []engine.Entry{}, Redirect: o.redirectView(),
	}
	if v.UpdatedAt.Before(o.stateSince) {
		v.UpdatedAt = o.stateSince
	}
	return v
}

func timeline(ctx context.Context, tx pgx.Tx, ref int64) ([]engine.Entry, error) {
	rows, err := tx.Query(ctx, `SELECT id, provider_event_id, provider_type, kind, result, COALESCE(from_state, ''),
		COALESCE(to_state, ''), amount, COALESCE(currency, ''), COALESCE(mode, ''), occurred_at, received_at, out_of_order, unsigned, source
		FROM events WHERE order_ref = $1 ORDER BY id`, ref)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []engine.Entry{}
	for rows.Next() {
		var e engine.Entry
		var kind, result, from, to string
		var occurred *time.Time
		if err := rows.Scan(&e.Seq, &e.ProviderEventID, &e.ProviderType, &kind, &result, &from, &to, &e.Amount,
			&e.Currency, &e.Mode, &occurred, &e.ReceivedAt, &e.OutOfOrder, &e.Unsigned, &e.Source); err != nil {
			return nil, err
		}
		e.Kind, e.Result, e.FromState, e.ToState = sm.Kind(kind), sm.Result(result), sm.State(from), sm.State(to)
		if occurred != nil {
			t := occurred.UTC()
			e.OccurredAt = &t
		}
		e.ReceivedAt = e.ReceivedAt.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// Anomalies lists anomalies matching f, newest first.
func (db *DB) Anomalies(ctx context.Context, f engine.AnomalyFilter) ([]engine.Anomaly, error) {
	var out []engine.Anomaly
	err := db.read(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = queryAnomalies(ctx, tx, f)
		return err
	})
	return out, err
}

const anomalyColumns = `a.id, a.kind, a.status, a.detail, a.event_seqs, a.count, a.opened_at, a.updated_at,
	a.resolved_at, COALESCE(a.resolution, ''), COALESCE(a.note, ''), ` + shopIDColumn + `, o.provider, o.checkout_id, o.state`

func queryAnomalies(ctx context.Context, tx pgx.Tx, f engine.AnomalyFilter) ([]engine.Anomaly, error) {
	where, args := []string{"true"}, []any{}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Kind != "" {
		add("a.kind = $%d", f.Kind)
	}
	if f.Provider != "" {
		add("o.provider = $%d", f.Provider)
	}
	if f.Status != "" {
		add("a.status = $%d", f.Status)
	}
	if f.Severity != "" {
		var kinds []string
		for _, k := range engine.AnomalyKinds {
			if engine.Severity(k) == f.Severity {
				kinds = append(kinds, k)
			}
		}
		add("a.kind = ANY($%d)", kinds)
	}
	if f.State != "" {
		add("o.state = $%d", string(f.State))
	}
	if f.OrderRef != 0 {
		add("a.order_ref = $%d", f.OrderRef)
	}
	if !f.Since.IsZero() {
		add("a.opened_at >= $%d", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		add("a.opened_at < $%d", f.Until.UTC())
	}
	if f.Before != 0 {
		add("a.id < $%d", f.Before)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	args = append(args, limit)
	rows, err := tx.Query(ctx, `SELECT `+anomalyColumns+` FROM anomalies a JOIN orders o ON o.id = a.order_ref
		WHERE `+strings.Join(where, " AND ")+fmt.Sprintf(` ORDER BY a.id DESC LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, err
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
	return out, rows.Err()
}

func scanAnomaly(row pgx.Row, trail ...any) (engine.Anomaly, error) {
	var a engine.Anomaly
	var seqs []byte
	var state string
	var resolved *time.Time
	if err := row.Scan(append([]any{&a.ID, &a.Kind, &a.Status, &a.Detail, &seqs, &a.Count, &a.OpenedAt, &a.UpdatedAt, &resolved,
		&a.Resolution, &a.Note, &a.OrderID, &a.Provider, &a.CheckoutID, &state}, trail...)...); err != nil {
		return a, err
	}
	a.State = sm.State(state)
	a.Severity = engine.Severity(a.Kind)
	a.OpenedAt, a.UpdatedAt = a.OpenedAt.UTC(), a.UpdatedAt.UTC()
	if resolved != nil {
		t := resolved.UTC()
		a.ResolvedAt = &t
	}
	a.EventSeqs = []int64{}
	_ = json.Unmarshal(seqs, &a.EventSeqs)
	return a, nil
}

// AckAnomaly records that a person looked at an anomaly, with their note;
// see the SQLite store's, whose rules it keeps. Returns ENOTFOUND or
// EINVALID.
func (db *DB) AckAnomaly(ctx context.Context, id int64, note string) (*engine.Anomaly, error) {
	if err := engine.CheckNote(note); err != nil {
		return nil, err
	}
	var a engine.Anomaly
	err := db.write(ctx, nil, func(tx pgx.Tx) error {
		merged, err := withNote(ctx, tx, id, note)
		if err != nil {
			return err
		}
		now := db.now()
		if _, err := tx.Exec(ctx, `UPDATE anomalies SET status = 'acknowledged', note = $1, updated_at = $2,
			resolved_at = COALESCE(resolved_at, $2) WHERE id = $3`, nullString(merged), now, id); err != nil {
			return err
		}
		a, err = scanAnomaly(tx.QueryRow(ctx, `SELECT `+anomalyColumns+` FROM anomalies a JOIN orders o ON o.id = a.order_ref WHERE a.id = $1`, id))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// withNote locks the anomaly id and returns its notes with note added
// (engine.AddNote); ENOTFOUND when there is no such anomaly.
func withNote(ctx context.Context, tx pgx.Tx, id int64, note string) (string, error) {
	var notes *string
	err := tx.QueryRow(ctx, `SELECT note FROM anomalies WHERE id = $1 FOR UPDATE`, id).Scan(&notes)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", engine.Errorf(engine.ENOTFOUND, "no anomaly %d", id)
	} else if err != nil {
		return "", err
	}
	return engine.AddNote(id, str(notes), note)
}

// Replay rebuilds every order from its stored events and calls fn for each
// order whose state would change; with fix, it writes the replayed state.
// It returns the number of orders checked.
func (db *DB) Replay(ctx context.Context, fix bool, fn func(engine.ReplayDiff)) (int, error) {
	var diffs []engine.ReplayDiff
	n := 0
	err := db.read(ctx, func(tx pgx.Tx) error {
		diffs, n = nil, 0
		rows, err := tx.Query(ctx, `SELECT o.id, `+shopIDColumn+`, o.provider, o.checkout_id, o.state, COALESCE(o.amount, 0),
			e.kind, e.amount, e.source FROM orders o LEFT JOIN events e ON e.order_ref = o.id AND e.original_id IS NULL
			ORDER BY o.id, e.id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		var cur *engine.ReplayDiff
		var totals sm.Totals
		flush := func() {
			if cur != nil && cur.Replayed != cur.Stored {
				diffs = append(diffs, *cur)
			}
		}
		for rows.Next() {
			var d engine.ReplayDiff
			var stored string
			var registered int64
			var kind *string
			var amount *int64
			var source *string
			if err := rows.Scan(&d.Ref, &d.OrderID, &d.Provider, &d.CheckoutID, &stored, &registered, &kind, &amount, &source); err != nil {
				return err
			}
			if cur == nil || cur.Ref != d.Ref {
				flush()
				d.Stored, d.Replayed = sm.State(stored), sm.Pending
				cur, totals = &d, sm.Totals{Registered: registered}
				n++
			}
			if kind == nil {
				continue
			}
			var amt int64
			if amount != nil {
				amt = *amount
			}
			out, err := engine.Apply(cur.Replayed, &totals, sm.Kind(*kind), amt, str(source))
			if err != nil {
				return engine.Wrap(engine.EINTERNAL, err, "replay order %d", cur.Ref)
			}
			cur.Replayed = out.To
			cur.Events++
		}
		flush()
		return rows.Err()
	})
	if err != nil {
		return n, err
	}
	for _, d := range diffs {
		fn(d)
	}
	if !fix || len(diffs) == 0 {
		return n, nil
	}
	return n, db.write(ctx, nil, func(tx pgx.Tx) error {
		now := db.now()
		for _, d := range diffs {
			if _, err := tx.Exec(ctx, `UPDATE orders SET state = $1, state_since = $2, updated_at = $2 WHERE id = $3`,
				string(d.Replayed), now, d.Ref); err != nil {
				return err
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
	hour := at.UTC().Truncate(time.Hour)
	return db.write(ctx, nil, func(tx pgx.Tx) error {
		for k, n := range counts {
			if _, err := tx.Exec(ctx, `INSERT INTO rejections (provider, reason, hour, count) VALUES ($1, $2, $3, $4)
				ON CONFLICT (provider, reason, hour) DO UPDATE SET count = rejections.count + excluded.count`, k[0], k[1], hour, n); err != nil {
				return err
			}
		}
		return nil
	})
}

// OpenAnomalyCounts returns how many anomalies of each kind are open.
func (db *DB) OpenAnomalyCounts(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	err := db.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT kind, COUNT(*) FROM anomalies WHERE status = 'open' GROUP BY kind`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var kind string
			var n int
			if err := rows.Scan(&kind, &n); err != nil {
				return err
			}
			out[kind] = n
		}
		return rows.Err()
	})
	return out, err
}
