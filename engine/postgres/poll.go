package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderstate/orderstate/engine"
)

// PollCandidates returns the orders worth asking a provider about: those
// still pending or processing whose customer came back in [from, to), and
// those with an open missing_webhook or stuck anomaly opened at or after
// from; newest first, at most limit of them.
func (db *DB) PollCandidates(ctx context.Context, from, to time.Time, before engine.Key, limit int) ([]engine.SweepOrder, error) {
	var bound *time.Time
	if !before.At.IsZero() {
		t := before.At.UTC()
		bound = &t
	}
	var out []engine.SweepOrder
	err := db.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+sweepColumns+` FROM orders o WHERE o.id IN (
				SELECT id FROM orders
					WHERE redirect_at >= $1 AND redirect_at < $2 AND state IN ('pending', 'processing')
				UNION
				SELECT order_ref FROM anomalies
					WHERE status = 'open' AND kind IN ($3, $4) AND opened_at >= $1)
				AND ($6::timestamptz IS NULL OR (COALESCE(o.redirect_at, o.state_since), o.id) < ($6, $7))
			ORDER BY COALESCE(o.redirect_at, o.state_since) DESC, o.id DESC LIMIT $5`,
			from.UTC(), to.UTC(), engine.AnomalyMissingWebhook, engine.AnomalyStuck, limitOf(limit), bound, before.Ref)
		if err != nil {
			return err
		}
		out, err = scanSweepOrders(rows)
		return err
	})
	return out, err
}

// NoteAnomaly adds a note to an anomaly and leaves its status as it is.
// Returns ENOTFOUND or EINVALID.
func (db *DB) NoteAnomaly(ctx context.Context, id int64, note string) error {
	if err := engine.CheckNote(note); err != nil {
		return err
	}
	return db.write(ctx, nil, func(tx pgx.Tx) error {
		merged, err := withNote(ctx, tx, id, note)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE anomalies SET note = $1, updated_at = $2 WHERE id = $3`, nullString(merged), db.now(), id)
		return err
	})
}
