package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// A webhook's transaction costs PostgreSQL far more in waking up, parsing
// messages and committing than in the rows it writes: alone, each takes
// three round trips and a commit of its own. Webhooks that arrive together
// therefore share one: a few committers each take whatever is waiting,
// and store it in the same three round trips a single webhook needs, with
// one commit (group commit, as the SQLite store's writer does it).
const (
	// committers is how many group transactions one process runs at once:
	// enough to keep PostgreSQL busy while others wait for their commit's
	// flush, few enough that a burst is shared out in groups, not spread
	// over as many transactions as webhooks.
	committers = 2
	// groupMax bounds a group: its locks and rows are held until it
	// commits.
	groupMax = 32
	// groupTimeout bounds one group's transaction, since it no longer
	// belongs to any one request, and each webhook's own when the group
	// failed.
	groupTimeout = 30 * time.Second
	// groupLockTimeout bounds a group's wait for a lock: a webhook whose
	// order another transaction holds long would hold up every webhook of
	// its group. Past it the group fails and each webhook goes alone, the
	// blocked one waiting by itself.
	groupLockTimeout = `SET LOCAL lock_timeout = '5s'`
)

// ingestOp is one webhook waiting for its transaction.
type ingestOp struct {
	ev      engine.Event
	dedupe  []byte
	headers []byte
	body    []byte
	locks   []int64
	res     engine.IngestResult
	err     error
	done    chan struct{}
}

// startCommitters starts the goroutines that run the ingest groups.
func (db *DB) startCommitters() {
	db.ingestQ = make(chan *ingestOp)
	db.quit = make(chan struct{})
	for range committers {
		db.committers.Go(db.commitLoop)
	}
}

// submit hands op to a committer and waits for its answer. The channel is
// unbuffered: once a committer took op it answers it, so a caller never
// waits on an op nobody holds, even as Close stops the committers.
func (db *DB) submit(ctx context.Context, op *ingestOp) (engine.IngestResult, error) {
	if err := db.closedError(); err != nil {
		return engine.IngestResult{}, err
	}
	select {
	case db.ingestQ <- op:
	case <-db.quit:
		return engine.IngestResult{}, db.closedError()
	case <-ctx.Done():
		return engine.IngestResult{}, storeError(ctx.Err(), "ingest")
	}
	select {
	case <-op.done:
		return op.res, op.err
	case <-ctx.Done():
		// The group may still commit the event: the provider's retry then
		// finds it a duplicate.
		return engine.IngestResult{}, storeError(ctx.Err(), "ingest")
	}
}

// commitLoop takes the next webhook, and with it every one already
// waiting, up to groupMax, and stores them together. A webhook about an
// order another of its group is about waits for the next group.
func (db *DB) commitLoop() {
	var carry []*ingestOp
	for {
		ops := carry
		carry = nil
		if len(ops) == 0 {
			select {
			case op := <-db.ingestQ:
				ops = append(ops, op)
			case <-db.quit:
				return
			}
		}
	more:
		for len(ops) < groupMax {
			select {
			case op := <-db.ingestQ:
				ops = append(ops, op)
			default:
				break more
			}
		}
		ops, carry = db.runGroup(ops)
		for _, op := range ops {
			close(op.done)
		}
	}
}

// runGroup stores ops and sets each one's answer, but for those it
// carries over to the next group.
func (db *DB) runGroup(ops []*ingestOp) (done, carry []*ingestOp) {
	if len(ops) > 1 {
		ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
		carry, err := db.ingestGroup(ctx, ops)
		cancel()
		if err == nil {
			return slices.DeleteFunc(ops, func(op *ingestOp) bool { return slices.Contains(carry, op) }), carry
		}
		// Nothing of the group committed (or, when the answer to COMMIT
		// was lost, all of it did, and each webhook now finds itself a
		// duplicate): each goes again in a transaction of its own, which
		// also keeps one webhook's failure from failing the others.
		db.log.Debug("ingest group failed; storing its webhooks one by one", "webhooks", len(ops), "err", err)
	}
	// Each alone and at once, each with a deadline of its own: one
	// webhook waiting on a lock must not hold up the others.
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
			defer cancel()
			op.res, op.err = db.ingestAlone(ctx, op)
		})
	}
	wg.Wait()
	return ops, nil
}

// ingestGroup stores ops in one transaction, but for those it returns to
// be carried over: one that shares a lock or an order with an earlier op
// of the group. The others, when they are first deliveries naming one
// known order, go through the pipeline: every lookup in the first round
// trip, every event and order in the second, every anomaly and COMMIT in
// the third. The rest (a duplicate, an order to create or merge) follow
// one by one in the same transaction, after the pipeline's writes, which
// they see.
func (db *DB) ingestGroup(ctx context.Context, ops []*ingestOp) (carry []*ingestOp, err error) {
	if err := db.closedError(); err != nil {
		return nil, err
	}
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Release()
	committed := false
	defer func() {
		if !committed {
			rollback(ctx, c)
		}
	}()
	now := db.now()
	held := map[int64]bool{}
	var locks []int64
	var piped, tail []*ingestOp
	for _, op := range ops {
		if slices.ContainsFunc(op.locks, func(k int64) bool { return held[k] }) {
			carry = append(carry, op)
			continue
		}
		piped = append(piped, op)
		for _, k := range op.locks {
			held[k] = true
			locks = append(locks, k)
		}
	}
	// Taken in one order, all at once: groups on several replicas cannot
	// deadlock on them.
	slices.Sort(locks)

	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue(groupLockTimeout)
	b.Queue(qLock, locks)
	queueGroupLookup(&b, piped)
	br := c.SendBatch(ctx, &b)
	_, err = br.Exec()
	for range 2 {
		if err == nil {
			_, err = br.Exec()
		}
	}
	var earlier map[string]int64
	var found map[string]*orderRow
	if err == nil {
		earlier, found, err = readGroupLookup(br)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	var steps []*step
	named := map[int64]bool{}
	for _, op := range piped {
		switch st, how := pipelined(op, earlier[string(op.dedupe)], found, named, now); how {
		case pipe:
			if err := st.apply(now); err != nil {
				return nil, err
			}
			steps = append(steps, st)
		case later:
			carry = append(carry, op)
		default:
			tail = append(tail, op)
		}
	}
	if len(steps) > 0 {
		b = pgx.Batch{}
		queueGroupWrites(&b, steps, now)
		br = c.SendBatch(ctx, &b)
		err = readGroupWrites(br, steps)
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}

	b = pgx.Batch{}
	for _, st := range steps {
		r := &raiser{now: now}
		st.decide(r, now, &st.op.res)
		b.QueuedQueries = append(b.QueuedQueries, r.batch.QueuedQueries...)
	}
	if len(tail) == 0 {
		b.Queue("COMMIT")
	}
	if b.Len() > 0 {
		if err := c.SendBatch(ctx, &b).Close(); err != nil {
			return nil, err
		}
	}
	for _, op := range tail {
		if err := db.ingest(ctx, c, op, true, &op.res); err != nil {
			return nil, err
		}
	}
	if len(tail) > 0 {
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			return nil, err
		}
	}
	committed = true
	return carry, nil
}

// how an op goes through its group.
type how int

const (
	pipe  how = iota // in the pipeline
	alone            // one by one after it
	later            // in the next group
)

// pipelined is op's step and how it goes: through the group's pipeline
// when it is a first delivery whose ids all name one known order and that
// needs nothing looked up by the shop's reference; in the next group when
// another op of this one named that order first. named records the
// orders taken.
func pipelined(op *ingestOp, origID int64, found map[string]*orderRow, named map[int64]bool, now time.Time) (*step, how) {
	if origID != 0 {
		return nil, alone
	}
	ev := op.ev
	if ev.CheckoutID == "" {
		return &step{op: op}, pipe
	}
	ids := engine.NameOrders(engine.EventIDs(ev), func(id string) (*orderRow, bool) {
		f, ok := found[aliasKey(ev.Provider, id)]
		return f, ok
	}, func(o *orderRow) int64 { return o.ref })
	o, missing := ids.First, ids.Missing
	switch {
	case len(ids.Others) > 0:
		// The event joins orders stored apart: a merge.
		return nil, alone
	case o == nil && ev.Reference == "":
		// Nothing names the order yet: the event makes it.
		return &step{op: op, o: freshOrder(ev, now), newIDs: missing}, pipe
	case o == nil:
		return nil, alone
	case ev.Reference != "" && !o.registered:
		return nil, alone
	case named[o.ref]:
		return nil, later
	}
	named[o.ref] = true
	return &step{op: op, o: o, newIDs: missing}, pipe
}

func aliasKey(provider, id string) string { return provider + "\x00" + id }

// queueGroupLookup queues, as two statements for the whole group, the
// search for earlier deliveries of the ops' events and for the orders
// their ids name, locked in one order.
func queueGroupLookup(b *pgx.Batch, ops []*ingestOp) {
	var dedupes [][]byte
	var providers, ids []string
	for _, op := range ops {
		dedupes = append(dedupes, op.dedupe)
		for _, id := range engine.EventIDs(op.ev) {
			providers, ids = append(providers, op.ev.Provider), append(ids, id)
		}
	}
	b.Queue(`SELECT dedupe, id FROM events WHERE dedupe = ANY($1) AND original_id IS NULL`, dedupes)
	b.Queue(`SELECT a.provider, a.external_id, `+orderColumns+` FROM unnest($1::text[], $2::text[]) AS k (provider, external_id)
		JOIN order_aliases a ON a.provider = k.provider AND a.external_id = k.external_id
		JOIN orders o ON o.id = a.order_ref ORDER BY o.id FOR UPDATE OF o`, providers, ids)
}

// readGroupLookup reads queueGroupLookup's answers: the seq of each earlier
// delivery by dedupe hash, and the orders by aliasKey.
func readGroupLookup(br pgx.BatchResults) (map[string]int64, map[string]*orderRow, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	earlier := map[string]int64{}
	for rows.Next() {
		var dedupe []byte
		var id int64
		if err := rows.Scan(&dedupe, &id); err != nil {
			rows.Close()
			return nil, nil, err
		}
		earlier[string(dedupe)] = id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if rows, err = br.Query(); err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	found := map[string]*orderRow{}
	for rows.Next() {
		var provider, id string
		o, err := scanOrder(rows, &provider, &id)
		if err != nil {
			return nil, nil, err
		}
		found[aliasKey(provider, id)] = o
	}
	return earlier, found, rows.Err()
}

// queueGroupWrites queues, as a handful of statements for the whole
// group, the orders its events make, the ids they name for the first
// time, the events with their raw bodies, the orders' new folds, and the
// facts of the orders the rules must look at again. Each statement sees
// the ones before it, so an event finds the order made for it by the
// provider's checkout id, unique, before its id is known here.
func queueGroupWrites(b *pgx.Batch, steps []*step, now time.Time) {
	fresh, folded := byOrder(steps)
	var facts []*step
	for _, st := range folded {
		if st.withFacts {
			facts = append(facts, st)
		}
	}
	if len(fresh) > 0 {
		queueFreshOrders(b, fresh, now)
	}
	queueAliases(b, steps)
	queueEvents(b, steps, now)
	if len(folded) > 0 {
		queueFolds(b, folded, now)
	}
	if len(facts) > 0 {
		queueFactsOf(b, ordersOf(facts))
	}
}

// byOrder splits the steps that have an order into those whose order the
// group makes (ref 0) and those whose order was stored before.
func byOrder(steps []*step) (fresh, folded []*step) {
	for _, st := range steps {
		switch {
		case st.o == nil:
		case st.o.ref == 0:
			fresh = append(fresh, st)
		default:
			folded = append(folded, st)
		}
	}
	return fresh, folded
}

// freshOrder is the order an event makes when none of its ids names one
// yet, before it is stored: unregistered, pending, its ref unknown (0).
func freshOrder(ev engine.Event, now time.Time) *orderRow {
	return &orderRow{provider: ev.Provider, checkoutID: ev.CheckoutID, state: sm.Pending, progress: sm.NewProgress(),
		stateSince: now, createdAt: now}
}

// queueFreshOrders inserts the orders the steps make, already holding the
// fold of their one event.
func queueFreshOrders(b *pgx.Batch, steps []*step, now time.Time) {
	var providers, checkouts, states []string
	var captured, refunded []int64
	var fullRefund []bool
	var ranks []int32
	var maxOcc []*time.Time
	for _, st := range steps {
		o := st.o
		providers, checkouts, states = append(providers, o.provider), append(checkouts, o.checkoutID), append(states, string(o.state))
		captured, refunded, fullRefund = append(captured, o.totals.Captured), append(refunded, o.totals.Refunded), append(fullRefund, o.totals.FullRefund)
		ranks, maxOcc = append(ranks, int32(o.progress.MaxRank)), append(maxOcc, optTime(o.progress.MaxOccurred))
	}
	b.Queue(`INSERT INTO orders (provider, checkout_id, state, captured, refunded, full_refund, max_rank, max_occurred,
			created_at, updated_at, state_since, last_event_at)
		SELECT provider, checkout_id, state, captured, refunded, full_refund, max_rank, max_occurred, $8, $8, $8, $8
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::boolean[], $7::integer[], $9::timestamptz[])
			AS v (provider, checkout_id, state, captured, refunded, full_refund, max_rank, max_occurred)
		RETURNING id, provider, checkout_id`,
		providers, checkouts, states, captured, refunded, fullRefund, ranks, now, maxOcc)
}

// orderRefs is each step's order for a statement's arrays: its ref, or
// for an order made in this group (ref 0) its checkout id, which the
// statement looks up.
func orderRefs(steps []*step, each func(*step) int) (refs []*int64, fresh []*string) {
	for _, st := range steps {
		for range each(st) {
			var ref *int64
			var checkout *string
			switch {
			case st.o == nil:
			case st.o.ref == 0:
				checkout = &st.o.checkoutID
			default:
				ref = &st.o.ref
			}
			refs, fresh = append(refs, ref), append(fresh, checkout)
		}
	}
	return refs, fresh
}

// queueAliases records the ids the steps' events name for the first time:
// each is one op's, whose lock on it no other op of the group shares.
func queueAliases(b *pgx.Batch, steps []*step) {
	var providers, ids []string
	for _, st := range steps {
		for _, id := range st.newIDs {
			providers, ids = append(providers, st.op.ev.Provider), append(ids, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	refs, fresh := orderRefs(steps, func(st *step) int { return len(st.newIDs) })
	b.Queue(`INSERT INTO order_aliases (provider, external_id, order_ref)
		SELECT provider, external_id, COALESCE(order_ref, (SELECT id FROM orders o WHERE o.provider = v.provider AND o.checkout_id = v.fresh))
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) AS v (provider, external_id, order_ref, fresh)`,
		providers, ids, refs, fresh)
}

// queueEvents inserts the steps' events and their raw requests. Their
// seqs come back with their dedupe hashes, unique in a group, since
// RETURNING keeps no promise of order.
func queueEvents(b *pgx.Batch, steps []*step, now time.Time) {
	n := len(steps)
	var (
		providers, eventIDs, types, kinds, results = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		froms, tos, currencies, modes              = make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
		dedupes, bodies                            = make([][]byte, n), make([][]byte, n)
		amounts                                    = make([]int64, n)
		occurred                                   = make([]*time.Time, n)
		outOfOrder, unsigned                       = make([]bool, n), make([]bool, n)
		ids, headers                               = make([]string, n), make([]string, n)
		sources                                    = make([]string, n)
	)
	refs, fresh := orderRefs(steps, func(*step) int { return 1 })
	for i, st := range steps {
		ev := st.op.ev
		if st.o != nil {
			from, to := string(st.out.From), string(st.out.To)
			froms[i], tos[i] = &from, &to
		}
		providers[i], eventIDs[i], types[i], kinds[i], results[i] = ev.Provider, ev.EventID, ev.Type, string(ev.Kind), string(st.out.Result)
		currencies[i], modes[i], occurred[i] = optString(ev.Currency), optString(ev.Mode), optTime(ev.OccurredAt)
		dedupes[i], bodies[i], headers[i] = st.op.dedupe, st.op.body, string(st.op.headers)
		amounts[i], outOfOrder[i], unsigned[i] = ev.Amount, st.outOfOrder, ev.Unsigned
		idsJSON, _ := json.Marshal(engine.EventIDs(ev))
		ids[i] = string(idsJSON)
		sources[i] = engine.SourceOf(ev.Source)
	}
	b.Queue(`WITH v AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[], $13::timestamptz[], $14::boolean[], $15::boolean[],
			$16::text[], $17::text[], $18::bytea[], $20::text[], $21::text[]) WITH ORDINALITY AS v (order_ref, provider, dedupe, provider_event_id,
			provider_type, kind, result, from_state, to_state, amount, currency, mode, occurred_at, out_of_order, unsigned, ids,
			headers, body, fresh, source, i)),
		e AS (INSERT INTO events (order_ref, provider, dedupe, provider_event_id, provider_type, kind, result, from_state,
			to_state, amount, currency, mode, occurred_at, received_at, out_of_order, unsigned, ids, source)
			SELECT COALESCE(order_ref, (SELECT id FROM orders o WHERE o.provider = v.provider AND o.checkout_id = v.fresh)),
				provider, dedupe, provider_event_id, provider_type, kind, result, from_state, to_state, amount,
				currency, mode, occurred_at, $19, out_of_order, unsigned, ids::jsonb, source FROM v ORDER BY i
			RETURNING id, dedupe),
		r AS (INSERT INTO raw_events (event_id, headers, body) SELECT e.id, v.headers::jsonb, v.body FROM e JOIN v USING (dedupe))
		SELECT id, dedupe FROM e`,
		refs, providers, dedupes, eventIDs, types, kinds, results, froms, tos, amounts, currencies, modes, occurred,
		outOfOrder, unsigned, ids, headers, bodies, now, fresh, sources)
}

// queueFolds writes the steps' orders' new folds.
func queueFolds(b *pgx.Batch, steps []*step, now time.Time) {
	var refs, captured, refunded []int64
	var states []string
	var ranks []int32
	var fullRefund []bool
	var maxOcc []*time.Time
	var since []time.Time
	for _, st := range steps {
		o := st.o
		refs, states, since = append(refs, o.ref), append(states, string(o.state)), append(since, o.stateSince)
		captured, refunded, fullRefund = append(captured, o.totals.Captured), append(refunded, o.totals.Refunded), append(fullRefund, o.totals.FullRefund)
		ranks, maxOcc = append(ranks, int32(o.progress.MaxRank)), append(maxOcc, optTime(o.progress.MaxOccurred))
	}
	b.Queue(`UPDATE orders o SET state = v.state, captured = v.captured, refunded = v.refunded, full_refund = v.full_refund,
			max_rank = v.max_rank, max_occurred = v.max_occurred, updated_at = $9, state_since = v.state_since, last_event_at = $9
		FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::boolean[], $6::integer[], $7::timestamptz[],
			$8::timestamptz[]) AS v (id, state, captured, refunded, full_refund, max_rank, max_occurred, state_since)
		WHERE o.id = v.id`, refs, states, captured, refunded, fullRefund, ranks, maxOcc, since, now)
}

// readGroupWrites reads queueGroupWrites' answers into the steps.
func readGroupWrites(br pgx.BatchResults, steps []*step) error {
	fresh, folded := byOrder(steps)
	if len(fresh) > 0 {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		// Two providers may each make an order for the same checkout id
		// in one group: the provider tells them apart.
		made := map[string]int64{}
		for rows.Next() {
			var ref int64
			var provider, checkout string
			if err := rows.Scan(&ref, &provider, &checkout); err != nil {
				rows.Close()
				return err
			}
			made[aliasKey(provider, checkout)] = ref
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, st := range fresh {
			if st.o.ref = made[aliasKey(st.o.provider, st.o.checkoutID)]; st.o.ref == 0 {
				return engine.Errorf(engine.EINTERNAL, "the group made no order for checkout %s", st.o.checkoutID)
			}
		}
	}
	if slices.ContainsFunc(steps, func(st *step) bool { return len(st.newIDs) > 0 }) {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	seqs := map[string]int64{}
	for rows.Next() {
		var seq int64
		var dedupe []byte
		if err := rows.Scan(&seq, &dedupe); err != nil {
			rows.Close()
			return err
		}
		seqs[string(dedupe)] = seq
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, st := range steps {
		if st.seq = seqs[string(st.op.dedupe)]; st.seq == 0 {
			return engine.Errorf(engine.EINTERNAL, "the group's insert returned no seq for event %s", st.op.ev.EventID)
		}
	}
	if len(folded) > 0 {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	for _, st := range fresh {
		// The order is this event's alone and new: its facts are known
		// without reading them, as the one-at-a-time path would read them.
		if st.withFacts {
			st.facts, st.status = engine.Facts{State: st.o.state}, map[string]string{}
			if st.o.state == sm.NeedsReview {
				f := engine.FactOf(st.op.ev, st.seq)
				f.IDs, f.Result = nil, st.out.Result
				st.facts.Events = []engine.Fact{f}
			}
		}
	}
	var facts []*step
	for _, st := range folded {
		if st.withFacts {
			facts = append(facts, st)
		}
	}
	if len(facts) == 0 {
		return nil
	}
	read, err := scanFactsOf(br, ordersOf(facts))
	if err != nil {
		return err
	}
	for _, st := range facts {
		st.facts, st.status = read[st.o.ref].facts, read[st.o.ref].status
	}
	return nil
}

// ordersOf lists the steps' orders.
func ordersOf(steps []*step) []*orderRow {
	orders := make([]*orderRow, len(steps))
	for i, st := range steps {
		orders[i] = st.o
	}
	return orders
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Microsecond)
	return &t
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
