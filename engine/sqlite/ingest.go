package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orderstate/orderstate/engine"

	sm "github.com/orderstate/orderstate/statemachine"
)

// Ingest stores one verified, parsed webhook: dedupe, apply to the order's
// state machine, record the raw bytes, the event, the transition and any
// anomaly, in one transaction. It returns once that is durably committed.
func (db *DB) Ingest(ctx context.Context, ev engine.Event, req *engine.Request) (engine.IngestResult, error) {
	if err := engine.ValidateEvent(ev); err != nil {
		return engine.IngestResult{}, err
	}
	headers, err := json.Marshal(engine.RedactHeaders(req.Header))
	if err != nil {
		return engine.IngestResult{}, engine.Wrap(engine.EINTERNAL, err, "cannot encode headers")
	}
	var res engine.IngestResult
	err = db.update(ctx, func(tx *sql.Tx) error {
		res = engine.IngestResult{}
		return db.ingest(ctx, db.wrap(tx), ev, headers, req.Body, &res)
	}, true)
	if err != nil {
		return engine.IngestResult{}, err
	}
	return res, nil
}

// orderRow is the stored fold of an order: everything Apply needs.
type orderRow struct {
	ref         int64
	orderID     sql.NullString
	provider    string
	checkoutID  string
	amount      sql.NullInt64
	currency    sql.NullString
	mode        sql.NullString
	state       sm.State
	totals      sm.Totals
	progress    sm.Progress
	redirect    sql.NullString
	stateSince  time.Time
	registered  bool
	createdAt   time.Time
	redirectAt  time.Time
	lastEventAt time.Time
	// reference is the shop's order id the webhook that created the
	// order named, if any; orderID is what the shop registered.
	reference sql.NullString
	// registeredIDs are the provider ids the shop registered for the order.
	registeredIDs []string
}

// shopIDColumn is shopID in SQL, for queries that list orders as o.
const shopIDColumn = `COALESCE(o.order_id, o.reference, '')`

// shopID is the shop's id for the order: the one it registered, else the
// one the webhooks named.
func (o *orderRow) shopID() string {
	if o.orderID.Valid {
		return o.orderID.String
	}
	return o.reference.String
}

// The ingest path's statements, prepared once on the writer connection.
const (
	qDedupe       = `SELECT id FROM events WHERE order_ref = ? AND dedupe = ? AND original_id IS NULL`
	qDedupeOrphan = `SELECT id FROM events WHERE order_ref IS NULL AND dedupe = ? AND original_id IS NULL`
	qInsertEvent  = `INSERT INTO events (order_ref, provider, dedupe, provider_event_id, provider_type, kind,
		result, from_state, to_state, amount, currency, mode, occurred_at, received_at, out_of_order, unsigned, ids, source)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qInsertRaw   = `INSERT INTO raw_events (event_id, headers, body) VALUES (?, ?, ?)`
	qUpdateOrder = `UPDATE orders SET state = ?, captured = ?, refunded = ?, full_refund = ?, max_rank = ?,
		max_occurred = ?, updated_at = ?, state_since = ?, last_event_at = ? WHERE id = ?`
	qUpdateOrderSameState = `UPDATE orders SET captured = ?, refunded = ?, full_refund = ?, max_rank = ?,
		max_occurred = ?, updated_at = ?, last_event_at = ? WHERE id = ?`
	qInsertDuplicate = `INSERT INTO events (order_ref, provider, dedupe, provider_event_id, provider_type, kind,
		result, amount, currency, mode, occurred_at, received_at, unsigned, original_id, source)
		VALUES (?, ?, ?, ?, ?, ?, 'duplicate', ?, ?, ?, ?, ?, ?, ?, ?)`
	qAliasLookup      = `SELECT order_ref FROM order_aliases WHERE provider = ? AND external_id = ?`
	qOrderByReference = `SELECT id FROM orders WHERE order_id = ? AND provider = ?`
	qInsertOrder      = `INSERT INTO orders (provider, checkout_id, reference, state, created_at, updated_at, state_since)
			VALUES (?, ?, ?, 'pending', ?, ?, ?)`
	qInsertAlias = `INSERT INTO order_aliases (provider, external_id, order_ref) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`
	qRaise = `INSERT INTO anomalies (order_ref, kind, status, detail, event_seqs, opened_at, updated_at)
		VALUES (?, ?, 'open', ?, ?, ?, ?)
		ON CONFLICT (order_ref, kind) DO UPDATE SET
			count = count + 1,
			event_seqs = CASE WHEN ? > 0 THEN json_insert(event_seqs, '$[#]', ?) ELSE event_seqs END,
			updated_at = excluded.updated_at`
	qResolve = `UPDATE anomalies SET status = 'resolved', resolved_at = ?, updated_at = ?, resolution = ?
		WHERE order_ref = ? AND kind = ? AND status = 'open'`
	qOrderByID   = `SELECT ` + orderColumns + ` FROM orders WHERE id = ?`
	qDataVersion = `PRAGMA data_version`
)

// hotQueries are prepared at Open.
var hotQueries = []string{resolveQueries[0], resolveQueries[1], resolveQueries[2], qDataVersion, qDedupe, qDedupeOrphan, qInsertEvent, qInsertRaw, qUpdateOrder, qUpdateOrderSameState, qInsertDuplicate, qAliasLookup, qOrderByReference, qInsertOrder, qInsertAlias, qRaise, qResolve, qOrderByID, qFacts, qOrderAnomalies}

const orderColumns = `id, order_id, provider, checkout_id, amount, currency, mode, registered_at IS NOT NULL,
	state, captured, refunded, full_refund, max_rank, max_occurred, redirect_outcome, redirect_at, state_since,
	created_at, last_event_at, reference, registered_ids`

// scanOrder reads orderColumns, after any leading columns given.
func scanOrder(row interface{ Scan(...any) error }, lead ...any) (*orderRow, error) {
	var o orderRow
	var maxOcc, redirectAt, since, created, lastEvent, regIDs sql.NullString
	var state string
	err := row.Scan(append(lead, &o.ref, &o.orderID, &o.provider, &o.checkoutID, &o.amount, &o.currency, &o.mode, &o.registered,
		&state, &o.totals.Captured, &o.totals.Refunded, &o.totals.FullRefund, &o.progress.MaxRank, &maxOcc,
		&o.redirect, &redirectAt, &since, &created, &lastEvent, &o.reference, &regIDs)...)
	if err != nil {
		return nil, err
	}
	if regIDs.Valid {
		if err := json.Unmarshal([]byte(regIDs.String), &o.registeredIDs); err != nil {
			return nil, fmt.Errorf("order %d: registered ids: %w", o.ref, err)
		}
	}
	o.state = sm.State(state)
	o.totals.Registered = o.amount.Int64
	o.progress.MaxOccurred = parseTime(maxOcc)
	o.redirectAt = parseTime(redirectAt)
	o.stateSince = parseTime(since)
	o.createdAt = parseTime(created)
	o.lastEventAt = parseTime(lastEvent)
	return &o, nil
}

func (db *DB) ingest(ctx context.Context, tx *wtx, ev engine.Event, headers, body []byte, res *engine.IngestResult) error {
	now := db.now()
	dedupe := engine.DedupeHash(ev.Provider, ev.DedupeKey)

	// A redelivery names the ids its first delivery did, which that one
	// tied to its order, so it resolves to the same order and is found
	// among that order's events (see migration 0004).
	var o *orderRow
	var created, merged bool
	var err error
	if ev.CheckoutID != "" {
		if o, created, merged, err = db.resolveOrder(ctx, tx, ev, now); err != nil {
			return err
		}
		if !created && ev.Reference != "" && !o.orderID.Valid && !o.reference.Valid {
			// The webhook that made the order did not name the shop's
			// order (a Tazapay payment attempt does not); this one does.
			if _, err := tx.ExecContext(ctx, `UPDATE orders SET reference = ? WHERE id = ?`, ev.Reference, o.ref); err != nil {
				return storeError(err, "record the shop's reference")
			}
			o.reference = sql.NullString{String: ev.Reference, Valid: true}
		}
	}
	if !created {
		var origID int64
		if o != nil {
			err = tx.queryRow(ctx, qDedupe, o.ref, dedupe).Scan(&origID)
		} else {
			err = tx.queryRow(ctx, qDedupeOrphan, dedupe).Scan(&origID)
		}
		switch {
		case err == nil:
			return db.recordDuplicate(ctx, tx, ev, dedupe, origID, o, merged, now, res)
		case !errors.Is(err, sql.ErrNoRows):
			return storeError(err, "dedupe lookup")
		}
	}

	var out sm.Outcome
	var outOfOrder bool
	if o != nil {
		outOfOrder = o.progress.Observe(ev.Kind, ev.OccurredAt)
		if out, err = engine.Apply(o.state, &o.totals, ev.Kind, ev.Amount, ev.Source); err != nil {
			return engine.Wrap(engine.EINTERNAL, err, "order %d cannot apply %s", o.ref, ev.Kind)
		}
	} else {
		out = sm.Outcome{Result: sm.Ignored}
	}

	var orderRef any
	var fromState, toState any
	if o != nil {
		orderRef, fromState, toState = o.ref, string(out.From), string(out.To)
	}
	r, err := tx.ExecContext(ctx, qInsertEvent,
		orderRef, ev.Provider, dedupe, ev.EventID, ev.Type, string(ev.Kind), string(out.Result), fromState, toState,
		ev.Amount, nullString(ev.Currency), nullString(ev.Mode), nullTime(ev.OccurredAt), formatTime(now), outOfOrder, ev.Unsigned,
		idsJSON(engine.EventIDs(ev)), engine.SourceOf(ev.Source))
	if err != nil {
		return storeError(err, "insert event")
	}
	seq, err := r.LastInsertId()
	if err != nil {
		return storeError(err, "insert event")
	}
	if _, err := tx.ExecContext(ctx, qInsertRaw, seq, headers, body); err != nil {
		return storeError(err, "insert raw event")
	}
	res.Seq, res.Result = seq, out.Result
	if o == nil {
		return nil
	}

	stateSince := o.stateSince
	if out.Changed() {
		stateSince = now
		_, err = tx.ExecContext(ctx, qUpdateOrder,
			string(out.To), o.totals.Captured, o.totals.Refunded, o.totals.FullRefund, o.progress.MaxRank,
			nullTime(o.progress.MaxOccurred), formatTime(now), formatTime(stateSince), formatTime(now), o.ref)
	} else {
		// SQLite rewrites the entry of every index on a column an UPDATE
		// sets, changed or not: an event that leaves the state as it was
		// leaves the state index alone.
		_, err = tx.ExecContext(ctx, qUpdateOrderSameState,
			o.totals.Captured, o.totals.Refunded, o.totals.FullRefund, o.progress.MaxRank,
			nullTime(o.progress.MaxOccurred), formatTime(now), formatTime(now), o.ref)
	}
	if err != nil {
		return storeError(err, "update order")
	}
	o.state, o.stateSince, o.lastEventAt = out.To, stateSince, now

	raised := newRaiser(tx, now)
	for _, f := range engine.ArrivalFindings(ev, seq, out, outOfOrder) {
		raised.raise(ctx, o, f.Kind, seq, f.Detail)
	}
	for _, r := range engine.SettledResolutions(ev, out, o.redirectView(), now) {
		raised.resolve(ctx, o.ref, r.Kind, r.Why)
	}
	// Most webhooks cannot change what the rules find (a payment on the
	// registered checkout, at the registered amount): those skip reading
	// the order's facts.
	if !engine.Unchanged(o.registration(), o.redirectView(), out.From, out.To, engine.FactOf(ev, seq)) {
		raised.settle(ctx, o, seq)
	}
	if raised.err != nil {
		return raised.err
	}
	res.State, res.Anomalies = out.To, raised.kinds
	res.OrderID = o.shopID()
	return nil
}

func (db *DB) recordDuplicate(ctx context.Context, tx *wtx, ev engine.Event, dedupe []byte, origID int64, o *orderRow, merged bool, now time.Time, res *engine.IngestResult) error {
	var ref any
	if o != nil {
		ref = o.ref
	}
	r, err := tx.ExecContext(ctx, qInsertDuplicate,
		ref, ev.Provider, dedupe, ev.EventID, ev.Type, string(ev.Kind), ev.Amount, nullString(ev.Currency),
		nullString(ev.Mode), nullTime(ev.OccurredAt), formatTime(now), ev.Unsigned, origID, engine.SourceOf(ev.Source))
	if err != nil {
		return storeError(err, "insert duplicate")
	}
	seq, _ := r.LastInsertId()
	res.Seq, res.Result = seq, sm.Duplicate
	if o == nil {
		return nil
	}
	raised := newRaiser(tx, now)
	f := engine.DuplicateFinding(ev, seq)
	raised.raise(ctx, o, f.Kind, seq, f.Detail)
	if merged {
		raised.settle(ctx, o, 0)
	}
	res.State, res.OrderID, res.Anomalies = o.state, o.shopID(), raised.kinds
	return raised.err
}

// resolveOrder finds the order an event is about, by any provider id it
// carries or by the shop's reference, and creates an unregistered one when
// nobody registered it yet (created). It records every id the event
// carries as an alias.
func (db *DB) resolveOrder(ctx context.Context, tx *wtx, ev engine.Event, now time.Time) (o *orderRow, created, merged bool, err error) {
	ids := engine.EventIDs(ev)
	db.counters.lookups.Add(1)
	// An unregistered order that an event names the shop's order for may
	// have to join the registered one: that takes the full path, unless
	// the order already holds that reference, since then registering it
	// would have adopted the order (see adopt).
	if o := db.cache.lookup(ev.Provider, ids); o != nil &&
		(o.registered || ev.Reference == "" || o.reference.Valid && o.reference.String == ev.Reference) {
		db.counters.hits.Add(1)
		return o, false, false, nil
	}
	// One statement finds every order any of the ids names, with its row:
	// when the order exists and knows all the ids it is the only read.
	args := make([]any, 0, 1+len(ids))
	args = append(args, ev.Provider)
	for _, id := range ids {
		args = append(args, id)
	}
	q := ""
	if len(ids) <= len(resolveQueries) {
		q = resolveQueries[len(ids)-1]
	} else {
		q = resolveQuery(len(ids))
	}
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, false, false, storeError(err, "alias lookup")
	}
	found := map[string]*orderRow{}
	for rows.Next() {
		var id string
		o, err := scanOrder(rows, &id)
		if err != nil {
			rows.Close()
			return nil, false, false, storeError(err, "alias lookup")
		}
		found[id] = o
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, false, storeError(err, "alias lookup")
	}
	named := engine.NameOrders(ids, func(id string) (*orderRow, bool) { f, ok := found[id]; return f, ok },
		func(o *orderRow) int64 { return o.ref })
	missing, others := named.Missing, named.Others
	var ref int64
	if named.Found {
		o, ref = named.First, named.First.ref
	}
	if len(others) > 0 {
		// The event names, by different ids, orders that were stored apart
		// (a payment attempt that knew only the payin id arrived before
		// anything tied it to the checkout): they are one order.
		if ref, err = db.merge(ctx, tx, ref, others, now); err != nil {
			return nil, false, false, err
		}
		o = nil
	}
	if ev.Reference != "" && (o == nil || !o.registered) {
		// The event names the shop's order. An order the shop registered
		// under that id takes the event, and the order the event's ids made
		// before the registration (a payment attempt naming only the payin)
		// joins it: whichever came first, the payment is the registered
		// order's, flagged by the checkout rule when its checkout is not
		// the one registered.
		var byRef int64
		err := tx.queryRow(ctx, qOrderByReference, ev.Reference, ev.Provider).Scan(&byRef)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, false, false, storeError(err, "reference lookup")
		case ref == 0:
			ref = byRef
		case byRef != ref:
			if o == nil {
				if o, err = scanOrder(tx.queryRow(ctx, qOrderByID, ref)); err != nil {
					return nil, false, false, storeError(err, "load order")
				}
			}
			if !o.registered {
				if ref, err = db.merge(ctx, tx, byRef, []int64{ref}, now); err != nil {
					return nil, false, false, err
				}
				others = append(others, byRef)
			}
			o = nil
		}
	}
	if ref == 0 {
		r, err := tx.ExecContext(ctx, qInsertOrder, ev.Provider, ev.CheckoutID, nullString(ev.Reference), formatTime(now), formatTime(now), formatTime(now))
		if err != nil {
			return nil, false, false, storeError(err, "create order")
		}
		if ref, err = r.LastInsertId(); err != nil {
			return nil, false, false, storeError(err, "create order")
		}
		created = true
		o = &orderRow{ref: ref, provider: ev.Provider, checkoutID: ev.CheckoutID, state: sm.Pending,
			progress: sm.NewProgress(), stateSince: now, createdAt: now, reference: sql.NullString{String: ev.Reference, Valid: ev.Reference != ""}}
	}
	for _, id := range missing {
		if _, err := tx.ExecContext(ctx, qInsertAlias, ev.Provider, id, ref); err != nil {
			return nil, false, false, storeError(err, "record alias")
		}
	}
	if o == nil {
		if o, err = scanOrder(tx.queryRow(ctx, qOrderByID, ref)); err != nil {
			return nil, false, false, storeError(err, "load order")
		}
	}
	if len(others) == 0 {
		// Every id now names this order (when others were registered apart
		// and stay apart, some ids still name them).
		db.cache.put(o, ev.Provider, ids)
	}
	return o, created, len(others) > 0, nil
}

// resolveQueries[n-1] finds the orders n provider ids name, for the counts
// events carry: building the text each time was a measurable cost.
var resolveQueries = []string{resolveQuery(1), resolveQuery(2), resolveQuery(3)}

// resolveQuery finds the orders n provider ids name, each row led by the id
// that matched.
func resolveQuery(n int) string {
	cols := strings.Split(orderColumns, ",")
	for i, c := range cols {
		cols[i] = "o." + strings.TrimSpace(c)
	}
	return `SELECT a.external_id, ` + strings.Join(cols, ", ") + ` FROM order_aliases a JOIN orders o ON o.id = a.order_ref
		WHERE a.provider = ? AND a.external_id IN (?` + strings.Repeat(", ?", n-1) + `)`
}

// raiser records anomalies within a transaction, keeping the first error.
type raiser struct {
	tx    *wtx
	now   time.Time
	kinds []string
	err   error
}

func newRaiser(tx *wtx, now time.Time) *raiser { return &raiser{tx: tx, now: now} }

// raise opens an anomaly of kind on the order, or adds the event to the one
// already there. A resolved or acknowledged anomaly stays closed.
func (r *raiser) raise(ctx context.Context, o *orderRow, kind string, seq int64, detail string) {
	if r.err != nil {
		return
	}
	seqs := "[]"
	if seq > 0 {
		seqs = fmt.Sprintf("[%d]", seq)
	}
	_, err := r.tx.ExecContext(ctx, qRaise,
		o.ref, kind, detail, seqs, formatTime(r.now), formatTime(r.now), seq, seq)
	if err != nil {
		r.err = storeError(err, "record anomaly")
		return
	}
	r.kinds = append(r.kinds, kind)
}

// resolve closes an open anomaly whose condition cleared.
func (r *raiser) resolve(ctx context.Context, ref int64, kind, resolution string) {
	if r.err != nil {
		return
	}
	_, err := r.tx.ExecContext(ctx, qResolve, formatTime(r.now), formatTime(r.now), resolution, ref, kind)
	if err != nil {
		r.err = storeError(err, "resolve anomaly")
	}
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
