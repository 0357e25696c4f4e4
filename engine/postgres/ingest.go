package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// dbtx is what the write path needs of a transaction: a pgx.Tx, or a
// pooled connection on which the ingest path runs its own, to send BEGIN
// and COMMIT in the batches around its statements.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// orderRow is the stored fold of an order: everything Apply needs.
type orderRow struct {
	ref           int64
	orderID       *string
	provider      string
	checkoutID    string
	amount        *int64
	currency      *string
	mode          *string
	registered    bool
	registeredIDs []string
	state         sm.State
	totals        sm.Totals
	progress      sm.Progress
	redirect      *string
	redirectAt    time.Time
	stateSince    time.Time
	createdAt     time.Time
	lastEventAt   time.Time
	reference     *string
}

const orderColumns = `o.id, o.order_id, o.provider, o.checkout_id, o.amount, o.currency, o.mode, o.registered_at IS NOT NULL,
	o.registered_ids, o.state, o.captured, o.refunded, o.full_refund, o.max_rank, o.max_occurred, o.redirect_outcome,
	o.redirect_at, o.state_since, o.created_at, o.last_event_at, o.reference`

// shopIDColumn is the shop's id for the order in SQL: the one it
// registered, else the one the webhooks named.
const shopIDColumn = `COALESCE(o.order_id, o.reference, '')`

func scanOrder(row pgx.Row, lead ...any) (*orderRow, error) {
	var o orderRow
	var regIDs []byte
	var state string
	var maxOcc, redirectAt, since, created, lastEvent *time.Time
	err := row.Scan(append(lead, &o.ref, &o.orderID, &o.provider, &o.checkoutID, &o.amount, &o.currency, &o.mode, &o.registered,
		&regIDs, &state, &o.totals.Captured, &o.totals.Refunded, &o.totals.FullRefund, &o.progress.MaxRank, &maxOcc,
		&o.redirect, &redirectAt, &since, &created, &lastEvent, &o.reference)...)
	if err != nil {
		return nil, err
	}
	if regIDs != nil {
		if err := json.Unmarshal(regIDs, &o.registeredIDs); err != nil {
			return nil, fmt.Errorf("order %d: registered ids: %w", o.ref, err)
		}
	}
	o.state = sm.State(state)
	if o.amount != nil {
		o.totals.Registered = *o.amount
	}
	o.progress.MaxOccurred = timeOf(maxOcc)
	o.redirectAt, o.stateSince, o.createdAt, o.lastEventAt = timeOf(redirectAt), timeOf(since), timeOf(created), timeOf(lastEvent)
	return &o, nil
}

func (o *orderRow) shopID() string {
	if o.orderID != nil {
		return *o.orderID
	}
	if o.reference != nil {
		return *o.reference
	}
	return ""
}

// registration is what the shop registered for the order, as the rules
// see it; nil for none.
func (o *orderRow) registration() *engine.Registration {
	if !o.registered {
		return nil
	}
	return &engine.Registration{OrderID: str(o.orderID), Provider: o.provider, CheckoutID: o.checkoutID,
		Amount: o.totals.Registered, Currency: str(o.currency), Mode: str(o.mode), OtherIDs: o.registeredIDs}
}

func (o *orderRow) redirectView() *engine.Redirect {
	if o.redirect == nil {
		return nil
	}
	return &engine.Redirect{Outcome: *o.redirect, At: o.redirectAt}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// loadOrder reads the order matching where, locked for this transaction
// when lock is set; nil when there is none.
func loadOrder(ctx context.Context, tx dbtx, lock bool, where string, args ...any) (*orderRow, error) {
	q := `SELECT ` + orderColumns + ` FROM orders o WHERE ` + where
	if lock {
		q += ` FOR UPDATE`
	}
	o, err := scanOrder(tx.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return o, err
}

// Ingest stores one verified, parsed webhook: dedupe, apply, record the raw
// bytes, the event, the transition and any anomaly, in one transaction,
// serialised with every other write about the ids the event names. Webhooks
// that arrive together share a transaction (see group.go).
func (db *DB) Ingest(ctx context.Context, ev engine.Event, req *engine.Request) (engine.IngestResult, error) {
	op, err := newIngestOp(ev, req)
	if err != nil {
		return engine.IngestResult{}, err
	}
	return db.submit(ctx, op)
}

// newIngestOp checks ev and prepares what its transaction needs.
func newIngestOp(ev engine.Event, req *engine.Request) (*ingestOp, error) {
	if err := engine.ValidateEvent(ev); err != nil {
		return nil, err
	}
	headers, err := json.Marshal(engine.RedactHeaders(req.Header))
	if err != nil {
		return nil, engine.Wrap(engine.EINTERNAL, err, "cannot encode headers")
	}
	dedupe := engine.DedupeHash(ev.Provider, ev.DedupeKey)
	keys := []string{"dedupe\x00" + string(dedupe)}
	for _, id := range engine.EventIDs(ev) {
		keys = append(keys, idKey(ev.Provider, id))
	}
	if ev.Reference != "" {
		keys = append(keys, referenceKey(ev.Provider, ev.Reference))
	}
	return &ingestOp{ev: ev, dedupe: dedupe, headers: headers, body: req.Body, locks: lockIDs(keys), done: make(chan struct{})}, nil
}

// ingestAlone stores op in a transaction of its own, run again when it
// loses a race.
func (db *DB) ingestAlone(ctx context.Context, op *ingestOp) (engine.IngestResult, error) {
	var res engine.IngestResult
	var err error
	for range attempts {
		res = engine.IngestResult{}
		err = db.ingestOnce(ctx, op, &res)
		if !retryable(err) {
			break
		}
	}
	if err != nil {
		return engine.IngestResult{}, storeError(err, "ingest")
	}
	return res, nil
}

// ingestOnce runs one attempt at storing op in a transaction of its own on
// a pooled connection: BEGIN goes out with the first reads and COMMIT with
// the last writes, so a webhook costs three round trips in the common
// case, not one per statement.
func (db *DB) ingestOnce(ctx context.Context, op *ingestOp, res *engine.IngestResult) error {
	if err := db.closedError(); err != nil {
		return err
	}
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	committed := false
	defer func() {
		if !committed {
			rollback(ctx, c)
		}
	}()
	if err := db.ingest(ctx, c, op, false, res); err != nil {
		return err
	}
	committed = true
	return nil
}

// rollback ends a failed transaction on c. A connection that cannot even
// roll back is broken: it must not go back to the pool inside a
// transaction.
func rollback(ctx context.Context, c *pgxpool.Conn) {
	if _, err := c.Exec(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
		c.Conn().Close(context.WithoutCancel(ctx))
	}
}

// ingest stores op on tx. With inTx the transaction is already open and
// holds op's locks, and stays open; else ingest begins it, takes the locks
// and commits.
func (db *DB) ingest(ctx context.Context, tx dbtx, op *ingestOp, inTx bool, res *engine.IngestResult) error {
	now := db.now()
	ev := op.ev
	// One round trip begins the transaction, takes the locks, finds the
	// orders the event's ids name, and looks for an earlier delivery.
	ids := engine.EventIDs(ev)
	var b pgx.Batch
	if !inTx {
		b.Queue("BEGIN")
		b.Queue(qLock, op.locks)
	}
	queueLookup(&b, op)
	br := tx.SendBatch(ctx, &b)
	var err error
	if !inTx {
		if _, err = br.Exec(); err == nil {
			_, err = br.Exec()
		}
	}
	var origID int64
	var found map[string]*orderRow
	if err == nil {
		origID, found, err = readLookup(br, op)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	var o *orderRow
	var merged bool
	if ev.CheckoutID != "" {
		if o, merged, err = db.resolveOrder(ctx, tx, ev, ids, found, now); err != nil {
			return err
		}
	}
	if origID != 0 {
		if err := db.recordDuplicate(ctx, tx, ev, op.dedupe, origID, o, merged, now, res); err != nil {
			return err
		}
		if inTx {
			return nil
		}
		_, err := tx.Exec(ctx, "COMMIT")
		return err
	}
	// The second round trip stores the event with its raw body, the
	// order's new fold, and reads back the facts the rules look at.
	st := &step{op: op, o: o}
	b = pgx.Batch{}
	if err := st.queue(&b, now); err != nil {
		return err
	}
	br = tx.SendBatch(ctx, &b)
	err = st.read(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// The third sends what the rules decided, and COMMIT.
	r := &raiser{now: now}
	st.decide(r, now, res)
	if !inTx {
		r.batch.Queue("COMMIT")
	}
	return r.flush(ctx, tx)
}

// queueLookup queues the search for an earlier delivery of op's event and
// for the orders its ids name, locked.
func queueLookup(b *pgx.Batch, op *ingestOp) {
	b.Queue(`SELECT id FROM events WHERE dedupe = $1 AND original_id IS NULL`, op.dedupe)
	if ids := engine.EventIDs(op.ev); len(ids) > 0 {
		b.Queue(qAliases, op.ev.Provider, ids)
	}
}

// readLookup reads queueLookup's answers: the earlier delivery's seq (0
// for none) and the orders found by id.
func readLookup(br pgx.BatchResults, op *ingestOp) (int64, map[string]*orderRow, error) {
	var origID int64
	err := br.QueryRow().Scan(&origID)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	if err != nil || len(engine.EventIDs(op.ev)) == 0 {
		return origID, nil, err
	}
	found, err := scanAliases(br)
	return origID, found, err
}

// step is one new event's way through the write: the order it applies to,
// what applying it did, and what the rules need read back.
type step struct {
	op         *ingestOp
	o          *orderRow
	newIDs     []string // ids the event names that no order had yet: the group path records them for o
	out        sm.Outcome
	outOfOrder bool
	withFacts  bool
	seq        int64
	facts      engine.Facts
	status     map[string]string
}

// apply applies the event to its order in memory: the outcome, and
// whether the rules may find something new, so need the order's facts.
func (st *step) apply(now time.Time) error {
	ev, o := st.op.ev, st.o
	st.out = sm.Outcome{Result: sm.Ignored}
	if o == nil {
		return nil
	}
	st.outOfOrder = o.progress.Observe(ev.Kind, ev.OccurredAt)
	out, err := engine.Apply(o.state, &o.totals, ev.Kind, ev.Amount, ev.Source)
	if err != nil {
		return engine.Wrap(engine.EINTERNAL, err, "order %d cannot apply %s", o.ref, ev.Kind)
	}
	st.out = out
	if out.Changed() {
		o.stateSince = now
	}
	o.state, o.lastEventAt = out.To, now
	// Most webhooks cannot change what the rules find: those skip reading
	// the order's facts.
	st.withFacts = !engine.Unchanged(o.registration(), o.redirectView(), out.From, out.To, engine.Fact{Kind: ev.Kind,
		Amount: ev.Amount, Currency: ev.Currency, Mode: ev.Mode, IDs: engine.EventIDs(ev)})
	return nil
}

// fromTo is what the event did to its order, for its row: nil without one.
func (st *step) fromTo() (orderRef, from, to any) {
	if st.o == nil {
		return nil, nil, nil
	}
	return st.o.ref, string(st.out.From), string(st.out.To)
}

// queue applies the event and queues the event with its raw body, the
// order's new fold and, when the rules may find something new, the read
// of the order's facts.
func (st *step) queue(b *pgx.Batch, now time.Time) error {
	if err := st.apply(now); err != nil {
		return err
	}
	ev, o := st.op.ev, st.o
	orderRef, fromState, toState := st.fromTo()
	idsJSON, _ := json.Marshal(engine.EventIDs(ev))
	b.Queue(`WITH e AS (INSERT INTO events (order_ref, provider, dedupe, provider_event_id, provider_type, kind, result,
		from_state, to_state, amount, currency, mode, occurred_at, received_at, out_of_order, unsigned, ids, source)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $20) RETURNING id)
		INSERT INTO raw_events (event_id, headers, body) SELECT id, $18, $19 FROM e RETURNING event_id`,
		orderRef, ev.Provider, st.op.dedupe, ev.EventID, ev.Type, string(ev.Kind), string(st.out.Result), fromState, toState,
		ev.Amount, nullString(ev.Currency), nullString(ev.Mode), nullTime(ev.OccurredAt), now, st.outOfOrder, ev.Unsigned, idsJSON,
		st.op.headers, st.op.body, engine.SourceOf(ev.Source))
	if o == nil {
		return nil
	}
	b.Queue(`UPDATE orders SET state = $1, captured = $2, refunded = $3, full_refund = $4, max_rank = $5,
		max_occurred = $6, updated_at = $7, state_since = $8, last_event_at = $7 WHERE id = $9`,
		string(o.state), o.totals.Captured, o.totals.Refunded, o.totals.FullRefund, o.progress.MaxRank,
		nullTime(o.progress.MaxOccurred), now, o.stateSince, o.ref)
	if st.withFacts {
		queueFacts(b, o)
	}
	return nil
}

// read reads the answers to what queue queued, in its order.
func (st *step) read(br pgx.BatchResults) error {
	if err := br.QueryRow().Scan(&st.seq); err != nil {
		return err
	}
	if st.o == nil {
		return nil
	}
	if _, err := br.Exec(); err != nil {
		return err
	}
	if !st.withFacts {
		return nil
	}
	var err error
	st.facts, st.status, err = scanFacts(br, st.o)
	return err
}

// decide gathers in r what the rules make of the stored event, and fills
// the webhook's answer.
func (st *step) decide(r *raiser, now time.Time, res *engine.IngestResult) {
	ev, o := st.op.ev, st.o
	res.Seq, res.Result = st.seq, st.out.Result
	if o == nil {
		return
	}
	for _, f := range engine.ArrivalFindings(ev, st.seq, st.out, st.outOfOrder) {
		r.raise(o, f.Kind, st.seq, f.Detail)
	}
	for _, s := range engine.SettledResolutions(ev, st.out, o.redirectView(), now) {
		if !st.withFacts || st.status[s.Kind] == engine.StatusOpen {
			r.resolve(o.ref, s.Kind, s.Why)
		}
	}
	if st.withFacts {
		r.settleWith(o, st.seq, st.facts, st.status)
	}
	res.State, res.Anomalies, res.OrderID = st.out.To, r.kinds, o.shopID()
}

func (db *DB) recordDuplicate(ctx context.Context, tx dbtx, ev engine.Event, dedupe []byte, origID int64, o *orderRow, merged bool, now time.Time, res *engine.IngestResult) error {
	var ref any
	if o != nil {
		ref = o.ref
	}
	var seq int64
	err := tx.QueryRow(ctx, `INSERT INTO events (order_ref, provider, dedupe, provider_event_id, provider_type, kind, result,
		amount, currency, mode, occurred_at, received_at, unsigned, original_id, source)
		VALUES ($1, $2, $3, $4, $5, $6, 'duplicate', $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id`,
		ref, ev.Provider, dedupe, ev.EventID, ev.Type, string(ev.Kind), ev.Amount, nullString(ev.Currency),
		nullString(ev.Mode), nullTime(ev.OccurredAt), now, ev.Unsigned, origID, engine.SourceOf(ev.Source)).Scan(&seq)
	if err != nil {
		return err
	}
	res.Seq, res.Result = seq, sm.Duplicate
	if o == nil {
		return nil
	}
	r := &raiser{now: now}
	f := engine.DuplicateFinding(ev, seq)
	r.raise(o, f.Kind, seq, f.Detail)
	if merged {
		if err := r.settle(ctx, tx, o, 0); err != nil {
			return err
		}
	}
	res.State, res.OrderID, res.Anomalies = o.state, o.shopID(), r.kinds
	return r.flush(ctx, tx)
}

// qAliases finds, locked, the orders a provider's ids name, each row led by
// the id that matched.
const qAliases = `SELECT a.external_id, ` + orderColumns + ` FROM order_aliases a JOIN orders o ON o.id = a.order_ref
	WHERE a.provider = $1 AND a.external_id = ANY($2) ORDER BY o.id FOR UPDATE OF o`

// scanAliases reads qAliases' answer from a batch.
func scanAliases(br pgx.BatchResults) (map[string]*orderRow, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := map[string]*orderRow{}
	for rows.Next() {
		var id string
		o, err := scanOrder(rows, &id)
		if err != nil {
			return nil, err
		}
		found[id] = o
	}
	return found, rows.Err()
}

// resolveOrder finds the order an event is about, by any provider id it
// carries or by the shop's reference, merging orders it shows to be one and
// creating an unregistered one when nobody registered it yet. It records
// every id the event carries as an alias, and returns the order locked.
func (db *DB) resolveOrder(ctx context.Context, tx dbtx, ev engine.Event, ids []string, found map[string]*orderRow, now time.Time) (*orderRow, bool, error) {
	var err error
	var o *orderRow
	named := engine.NameOrders(ids, func(id string) (*orderRow, bool) { f, ok := found[id]; return f, ok },
		func(o *orderRow) int64 { return o.ref })
	missing, others := named.Missing, named.Others
	var ref int64
	if named.Found {
		o, ref = named.First, named.First.ref
	}
	merged := false
	if len(others) > 0 {
		if ref, err = db.merge(ctx, tx, ref, others, now); err != nil {
			return nil, false, err
		}
		o, merged = nil, true
	}
	if ev.Reference != "" && (o == nil || !o.registered) {
		// The shop's order named by the event takes it, and brings along
		// the order its ids made before the registration (see the SQLite
		// store's resolveOrder, which this follows).
		var byRef int64
		err := tx.QueryRow(ctx, `SELECT id FROM orders WHERE order_id = $1 AND provider = $2 FOR UPDATE`, ev.Reference, ev.Provider).Scan(&byRef)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return nil, false, err
		case ref == 0:
			ref = byRef
		case byRef != ref:
			if o == nil {
				if o, err = loadOrder(ctx, tx, true, `o.id = $1`, ref); err != nil {
					return nil, false, err
				}
			}
			if !o.registered {
				if ref, err = db.merge(ctx, tx, byRef, []int64{ref}, now); err != nil {
					return nil, false, err
				}
				merged = true
			}
			o = nil
		}
	}
	if ref == 0 {
		err := tx.QueryRow(ctx, `INSERT INTO orders (provider, checkout_id, reference, state, created_at, updated_at, state_since)
			VALUES ($1, $2, $3, 'pending', $4, $4, $4) RETURNING id`, ev.Provider, ev.CheckoutID, nullString(ev.Reference), now).Scan(&ref)
		if err != nil {
			return nil, false, err
		}
	}
	for _, id := range missing {
		if _, err := tx.Exec(ctx, `INSERT INTO order_aliases (provider, external_id, order_ref) VALUES ($1, $2, $3)`, ev.Provider, id, ref); err != nil {
			return nil, false, err
		}
	}
	if o == nil {
		if o, err = loadOrder(ctx, tx, true, `o.id = $1`, ref); err != nil {
			return nil, false, err
		}
	}
	if ev.Reference != "" && o.orderID == nil && o.reference == nil {
		// The webhook that made the order did not name the shop's order
		// (a Tazapay payment attempt does not); this one does.
		if _, err := tx.Exec(ctx, `UPDATE orders SET reference = $1 WHERE id = $2`, ev.Reference, o.ref); err != nil {
			return nil, false, err
		}
		o.reference = &ev.Reference
	}
	return o, merged, nil
}

// merge folds orders that turned out to be the same checkout into one and
// returns the order kept: the one the shop registered, else the oldest. Two
// orders the shop registered separately are never merged. The caller
// settles the merged order's anomalies once whatever made it merge is
// stored.
func (db *DB) merge(ctx context.Context, tx dbtx, first int64, others []int64, now time.Time) (int64, error) {
	ids := append([]int64{first}, others...)
	slices.Sort(ids)
	rows, err := tx.Query(ctx, `SELECT id, order_id IS NOT NULL FROM orders WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return 0, err
	}
	target, registered := int64(0), 0
	for rows.Next() {
		var id int64
		var isReg bool
		if err := rows.Scan(&id, &isReg); err != nil {
			rows.Close()
			return 0, err
		}
		if isReg {
			registered++
			target = id
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if registered > 1 {
		return first, nil
	}
	if target == 0 {
		target = ids[0]
	}
	for _, id := range ids {
		if id == target {
			continue
		}
		steps := []struct {
			q    string
			args []any
		}{
			{`UPDATE events SET order_ref = $1 WHERE order_ref = $2`, []any{target, id}},
			{`UPDATE order_aliases SET order_ref = $1 WHERE order_ref = $2`, []any{target, id}},
			// One anomaly of a kind per order: the kept order's wins.
			{`UPDATE anomalies SET order_ref = $1 WHERE order_ref = $2
				AND kind NOT IN (SELECT kind FROM anomalies WHERE order_ref = $1)`, []any{target, id}},
			{`DELETE FROM anomalies WHERE order_ref = $1`, []any{id}},
			{`UPDATE orders SET reference = (SELECT reference FROM orders WHERE id = $1) WHERE id = $2 AND reference IS NULL`, []any{id, target}},
			{`DELETE FROM orders WHERE id = $1`, []any{id}},
		}
		for _, st := range steps {
			if _, err := tx.Exec(ctx, st.q, st.args...); err != nil {
				return 0, err
			}
		}
	}
	return target, db.refold(ctx, tx, target, now)
}

// refold recomputes an order's state, totals and progress from its stored
// events and rewrites what each event did in arrival order, so the merged
// timeline shows each step.
func (db *DB) refold(ctx context.Context, tx dbtx, ref int64, now time.Time) error {
	o, err := loadOrder(ctx, tx, true, `o.id = $1`, ref)
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT id, kind, amount, occurred_at, result, COALESCE(from_state, ''), COALESCE(to_state, ''), source
		FROM events WHERE order_ref = $1 AND original_id IS NULL ORDER BY id`, ref)
	if err != nil {
		return err
	}
	var steps []engine.Step
	for rows.Next() {
		var st engine.Step
		var kind, result, from, to string
		var occurred *time.Time
		if err := rows.Scan(&st.Seq, &kind, &st.Amount, &occurred, &result, &from, &to, &st.Source); err != nil {
			rows.Close()
			return err
		}
		st.Kind, st.Result, st.From, st.To, st.OccurredAt = sm.Kind(kind), sm.Result(result), sm.State(from), sm.State(to), timeOf(occurred)
		steps = append(steps, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	fold, err := engine.Refold(o.totals.Registered, steps)
	if err != nil {
		return engine.Wrap(engine.EINTERNAL, err, "refold order %d", ref)
	}
	for _, c := range fold.Changed {
		if _, err := tx.Exec(ctx, `UPDATE events SET result = $1, from_state = $2, to_state = $3 WHERE id = $4`,
			string(c.Outcome.Result), string(c.Outcome.From), string(c.Outcome.To), c.Seq); err != nil {
			return err
		}
	}
	state, totals, progress := fold.State, fold.Totals, fold.Progress
	since := o.stateSince
	if state != o.state {
		since = now
	}
	_, err = tx.Exec(ctx, `UPDATE orders SET state = $1, captured = $2, refunded = $3, full_refund = $4, max_rank = $5,
		max_occurred = $6, updated_at = $7, state_since = $8, last_event_at = $7 WHERE id = $9`,
		string(state), totals.Captured, totals.Refunded, totals.FullRefund, progress.MaxRank, nullTime(progress.MaxOccurred),
		now, since, ref)
	return err
}

// raiser gathers the anomaly writes the rules decide into one batch, sent
// by flush.
type raiser struct {
	now   time.Time
	batch pgx.Batch
	kinds []string
}

// raise opens an anomaly of kind on the order, or adds the event to the one
// already there. A resolved or acknowledged anomaly stays closed.
func (r *raiser) raise(o *orderRow, kind string, seq int64, detail string) {
	r.raiseSeqs(o, kind, detail, []int64{seq}, seq)
}

// raiseSeqs opens an anomaly with seqs as its evidence or, when one of its
// kind exists, counts seq as one more occurrence (none when seq is 0).
func (r *raiser) raiseSeqs(o *orderRow, kind, detail string, seqs []int64, seq int64) {
	if seqs == nil || seqs[0] == 0 {
		seqs = []int64{}
	}
	evidence, _ := json.Marshal(seqs)
	r.batch.Queue(`INSERT INTO anomalies (order_ref, kind, status, detail, event_seqs, opened_at, updated_at)
		VALUES ($1, $2, 'open', $3, $4, $5, $5)
		ON CONFLICT (order_ref, kind) DO UPDATE SET
			count = anomalies.count + CASE WHEN $6::bigint > 0 THEN 1 ELSE 0 END,
			event_seqs = CASE WHEN $6::bigint > 0 THEN anomalies.event_seqs || to_jsonb($6::bigint) ELSE anomalies.event_seqs END,
			updated_at = CASE WHEN $6::bigint > 0 THEN excluded.updated_at ELSE anomalies.updated_at END`,
		o.ref, kind, detail, evidence, r.now, seq)
	r.kinds = append(r.kinds, kind)
}

// resolve closes an open anomaly whose condition cleared.
func (r *raiser) resolve(ref int64, kind, resolution string) {
	r.batch.Queue(`UPDATE anomalies SET status = 'resolved', resolved_at = $1, updated_at = $1, resolution = $2
		WHERE order_ref = $3 AND kind = $4 AND status = 'open'`, r.now, resolution, ref, kind)
}

// flush sends what was gathered, in one round trip.
func (r *raiser) flush(ctx context.Context, tx dbtx) error {
	if r.batch.Len() == 0 {
		return nil
	}
	err := tx.SendBatch(ctx, &r.batch).Close()
	r.batch = pgx.Batch{}
	return err
}

// qFacts reads what engine.Assess looks at for some orders and the status
// of each kind of anomaly each ever had, as one query (lead column the
// order, then 0 for an event, 1 for an anomaly's kind and status). Without
// a registration the rules read the events only for the contradictions,
// and those mean needs_review: $1 lists the orders whose events are read,
// $2 every order.
const qFacts = `SELECT order_ref, 0, id, provider, provider_type, kind, amount, COALESCE(currency, ''), COALESCE(mode, ''), ids, source, result
	FROM events WHERE order_ref = ANY($1::bigint[]) AND original_id IS NULL
	UNION ALL SELECT order_ref, 1, 0, '', '', kind, 0, status, '', NULL, '', '' FROM anomalies WHERE order_ref = ANY($2::bigint[])`

// queueFacts queues qFacts for the order o.
func queueFacts(b *pgx.Batch, o *orderRow) { queueFactsOf(b, []*orderRow{o}) }

// queueFactsOf queues qFacts for the orders.
func queueFactsOf(b *pgx.Batch, orders []*orderRow) {
	var withEvents, all []int64
	for _, o := range orders {
		all = append(all, o.ref)
		if o.registered || o.state == sm.NeedsReview {
			withEvents = append(withEvents, o.ref)
		}
	}
	b.Queue(qFacts, withEvents, all)
}

// orderFacts is what qFacts read of one order.
type orderFacts struct {
	facts  engine.Facts
	status map[string]string
}

// scanFacts reads queueFacts' answer.
func scanFacts(br pgx.BatchResults, o *orderRow) (engine.Facts, map[string]string, error) {
	read, err := scanFactsOf(br, []*orderRow{o})
	if err != nil {
		return engine.Facts{}, nil, err
	}
	return read[o.ref].facts, read[o.ref].status, nil
}

// scanFactsOf reads queueFactsOf's answer, by order.
func scanFactsOf(br pgx.BatchResults, orders []*orderRow) (map[int64]*orderFacts, error) {
	read := map[int64]*orderFacts{}
	for _, o := range orders {
		read[o.ref] = &orderFacts{facts: engine.Facts{State: o.state, Redirect: o.redirectView(), Registration: o.registration()},
			status: map[string]string{}}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var ref int64
		var e engine.Fact
		var what int
		var kind, result string
		var ids []byte
		if err := rows.Scan(&ref, &what, &e.Seq, &e.Provider, &e.Type, &kind, &e.Amount, &e.Currency, &e.Mode, &ids, &e.Source, &result); err != nil {
			return nil, err
		}
		of := read[ref]
		if of == nil {
			return nil, engine.Errorf(engine.EINTERNAL, "facts of order %d, which were not asked for", ref)
		}
		if what == 1 {
			of.status[kind] = e.Currency
			continue
		}
		e.Kind, e.Result = sm.Kind(kind), sm.Result(result)
		if ids != nil && of.facts.Registration != nil {
			if err := json.Unmarshal(ids, &e.IDs); err != nil {
				return nil, engine.Wrap(engine.EINTERNAL, err, "event %d: stored ids", e.Seq)
			}
		}
		of.facts.Events = append(of.facts.Events, e)
	}
	return read, rows.Err()
}

// settle reads the order's facts and gathers what bringing its order-free
// anomalies in line with them takes; see settleWith.
func (r *raiser) settle(ctx context.Context, tx dbtx, o *orderRow, seq int64) error {
	var b pgx.Batch
	queueFacts(&b, o)
	br := tx.SendBatch(ctx, &b)
	facts, status, err := scanFacts(br, o)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	r.settleWith(o, seq, facts, status)
	return nil
}

// settleWith brings the order's order-free anomalies in line with what
// engine.Assess finds in its facts, as the SQLite store's settle does.
func (r *raiser) settleWith(o *orderRow, seq int64, facts engine.Facts, status map[string]string) {
	found := engine.Assess(facts)
	for _, f := range found {
		st, had := status[f.Kind]
		switch {
		case !had:
			r.raiseSeqs(o, f.Kind, f.Detail, f.Seqs, 0)
		case st == engine.StatusResolved:
			// New facts made it hold again; see the SQLite store's settle.
			evidence, _ := json.Marshal(f.Seqs)
			r.batch.Queue(`UPDATE anomalies SET status = 'open', resolved_at = NULL, resolution = NULL, detail = $1,
				event_seqs = $2, count = count + 1, updated_at = $3 WHERE order_ref = $4 AND kind = $5 AND status = 'resolved'`,
				f.Detail, evidence, r.now, o.ref, f.Kind)
			r.kinds = append(r.kinds, f.Kind)
		case seq > 0 && st == engine.StatusOpen && slices.Contains(f.Seqs, seq):
			r.raise(o, f.Kind, seq, f.Detail)
		}
	}
	for kind, st := range status {
		if st != engine.StatusOpen || !engine.IsOrderFree(kind) ||
			slices.ContainsFunc(found, func(f engine.Finding) bool { return f.Kind == kind }) {
			continue
		}
		r.resolve(o.ref, kind, engine.Resolution(kind, facts))
	}
}
