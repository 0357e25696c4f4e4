package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/orderstate/orderstate/engine"

	sm "github.com/orderstate/orderstate/statemachine"
)

// merge folds orders that turned out to be the same checkout into one and
// returns the order kept: the one the shop registered, else the oldest. Two
// orders the shop registered separately are never merged; the first is
// returned and the event is applied to it alone.
func (db *DB) merge(ctx context.Context, tx *wtx, first int64, others []int64, now time.Time) (int64, error) {
	ids := append([]int64{first}, others...)
	target, registered := int64(0), 0
	for _, id := range ids {
		var isReg bool
		if err := tx.QueryRowContext(ctx, `SELECT order_id IS NOT NULL FROM orders WHERE id = ?`, id).Scan(&isReg); err != nil {
			return 0, storeError(err, "merge orders")
		}
		if isReg {
			registered++
			target = id
		}
	}
	if registered > 1 {
		return first, nil
	}
	// Rows and aliases move: the cache cannot follow, so it starts over.
	db.cache.clear()
	if target == 0 {
		target = first
		for _, id := range ids {
			target = min(target, id)
		}
	}
	for _, id := range ids {
		if id == target {
			continue
		}
		steps := []struct {
			q    string
			args []any
		}{
			{`UPDATE events SET order_ref = ? WHERE order_ref = ?`, []any{target, id}},
			{`UPDATE order_aliases SET order_ref = ? WHERE order_ref = ?`, []any{target, id}},
			// One anomaly of a kind per order: the kept order's wins.
			{`UPDATE OR IGNORE anomalies SET order_ref = ? WHERE order_ref = ?`, []any{target, id}},
			{`DELETE FROM anomalies WHERE order_ref = ?`, []any{id}},
			// The shop reference a webhook named stays findable.
			{`UPDATE orders SET reference = (SELECT reference FROM orders WHERE id = ?) WHERE id = ? AND reference IS NULL`, []any{id, target}},
			{`DELETE FROM orders WHERE id = ?`, []any{id}},
		}
		for _, st := range steps {
			if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
				return 0, storeError(err, "merge orders")
			}
		}
	}
	// The caller settles the merged order's anomalies once whatever made
	// it merge is stored: the event that tied two ids together is one of
	// the facts the checkout rule reads.
	return target, db.refold(ctx, tx, target, now)
}

// refold recomputes an order's state, totals and progress from its stored
// events, as replay does, and rewrites what each event did in arrival order,
// so the merged timeline shows each step, the one into needs_review
// included.
func (db *DB) refold(ctx context.Context, tx *wtx, ref int64, now time.Time) error {
	o, err := scanOrder(tx.queryRow(ctx, qOrderByID, ref))
	if err != nil {
		return storeError(err, "refold order")
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, kind, amount, occurred_at, result, COALESCE(from_state, ''), COALESCE(to_state, ''), source
		FROM events WHERE order_ref = ? AND original_id IS NULL ORDER BY id`, ref)
	if err != nil {
		return storeError(err, "refold order")
	}
	var steps []engine.Step
	for rows.Next() {
		var st engine.Step
		var kind, result, from, to string
		var occurred sql.NullString
		if err := rows.Scan(&st.Seq, &kind, &st.Amount, &occurred, &result, &from, &to, &st.Source); err != nil {
			rows.Close()
			return storeError(err, "refold order")
		}
		st.Kind, st.Result, st.From, st.To, st.OccurredAt = sm.Kind(kind), sm.Result(result), sm.State(from), sm.State(to), parseTime(occurred)
		steps = append(steps, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return storeError(err, "refold order")
	}
	fold, err := engine.Refold(o.totals.Registered, steps)
	if err != nil {
		return engine.Wrap(engine.EINTERNAL, err, "refold order %d", ref)
	}
	for _, c := range fold.Changed {
		if _, err := tx.ExecContext(ctx, `UPDATE events SET result = ?, from_state = ?, to_state = ? WHERE id = ?`,
			string(c.Outcome.Result), string(c.Outcome.From), string(c.Outcome.To), c.Seq); err != nil {
			return storeError(err, "refold order")
		}
	}
	state, totals, progress := fold.State, fold.Totals, fold.Progress
	since := o.stateSince
	if state != o.state {
		since = now
	}
	_, err = tx.ExecContext(ctx, qUpdateOrder, string(state), totals.Captured, totals.Refunded, totals.FullRefund,
		progress.MaxRank, nullTime(progress.MaxOccurred), formatTime(now), formatTime(since), formatTime(now), ref)
	return storeError2(err, "refold order")
}
