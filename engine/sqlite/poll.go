package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/orderstate/orderstate/engine"
)

// PollCandidates returns the orders worth asking a provider about: those
// still pending or processing whose customer came back in [from, to), and
// those with an open missing_webhook or stuck anomaly opened at or after
// from; newest first, at most limit of them. It reads, and never holds up
// the writer.
func (db *DB) PollCandidates(ctx context.Context, from, to time.Time, before engine.Key, limit int) ([]engine.SweepOrder, error) {
	if err := db.closedError(); err != nil {
		return nil, err
	}
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, storeError(err, "poll candidates")
	}
	defer tx.Rollback()
	bound, ref := "9999", int64(0)
	if !before.At.IsZero() {
		bound, ref = formatTime(before.At), before.Ref
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+sweepColumns+` FROM orders o WHERE o.id IN (
			SELECT id FROM orders INDEXED BY orders_redirect
				WHERE redirect_at >= ? AND redirect_at < ? AND state IN ('pending', 'processing')
			UNION
			SELECT order_ref FROM anomalies
				WHERE status = 'open' AND kind IN (?, ?) AND opened_at >= ?)
			AND (COALESCE(o.redirect_at, o.state_since) < ? OR COALESCE(o.redirect_at, o.state_since) = ? AND (? = 0 OR o.id < ?))
		ORDER BY COALESCE(o.redirect_at, o.state_since) DESC, o.id DESC LIMIT ?`,
		formatTime(from), formatTime(to), engine.AnomalyMissingWebhook, engine.AnomalyStuck, formatTime(from),
		bound, bound, ref, ref, sqlLimit(limit))
	if err != nil {
		return nil, storeError(err, "poll candidates")
	}
	return scanSweepOrders(rows)
}

// NoteAnomaly adds a note to an anomaly and leaves its status as it is.
// Returns ENOTFOUND or EINVALID.
func (db *DB) NoteAnomaly(ctx context.Context, id int64, note string) error {
	if err := engine.CheckNote(note); err != nil {
		return err
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		merged, err := withNote(ctx, tx, id, note, "note anomaly")
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE anomalies SET note = ?, updated_at = ? WHERE id = ?`,
			nullString(merged), formatTime(db.now()), id)
		return storeError2(err, "note anomaly")
	}, true)
}
