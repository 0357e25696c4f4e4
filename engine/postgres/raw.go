package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderstate/orderstate/engine"
)

var _ engine.RawStore = (*DB)(nil)

// watermarkRetention is how far the retention purge has got: the arrival
// time of the last raw request it purged, or the cutoff of the run that
// finished.
const watermarkRetention = "retention.raw"

// retentionOverlap re-reads a little before the watermark: replicas stamp
// arrivals with their own clocks, which may be a little apart.
const retentionOverlap = time.Minute

// RawRequest returns the raw request of event seq, a duplicate's
// original's. Returns ENOTFOUND.
func (db *DB) RawRequest(ctx context.Context, seq int64) (*engine.RawRequest, error) {
	var r *engine.RawRequest
	err := db.read(ctx, func(tx pgx.Tx) error {
		r = &engine.RawRequest{}
		var headers []byte
		var hasRaw bool
		err := tx.QueryRow(ctx, `SELECT o.id, o.provider, o.provider_event_id, o.received_at, r.event_id IS NOT NULL,
				COALESCE(r.headers, '{}'::jsonb), COALESCE(r.body, ''::bytea), r.purged_at
			FROM events e JOIN events o ON o.id = COALESCE(e.original_id, e.id) LEFT JOIN raw_events r ON r.event_id = o.id
			WHERE e.id = $1`, seq).Scan(&r.Seq, &r.Provider, &r.EventID, &r.ReceivedAt, &hasRaw, &headers, &r.Body, &r.PurgedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return engine.Errorf(engine.ENOTFOUND, "no event %d", seq)
		} else if err != nil {
			return err
		}
		if !hasRaw {
			return engine.Errorf(engine.ENOTFOUND, "event %d has no raw request stored", seq)
		}
		return json.Unmarshal(headers, &r.Header)
	})
	if err != nil {
		return nil, storeError(err, "read raw request")
	}
	r.ReceivedAt = r.ReceivedAt.UTC()
	if r.PurgedAt != nil {
		at := r.PurgedAt.UTC()
		r.PurgedAt = &at
	}
	return r, nil
}

// PurgeRaw purges the raw requests of events received before cutoff, at
// most limit, oldest first, reading from where the last run got to.
func (db *DB) PurgeRaw(ctx context.Context, cutoff time.Time, limit int) (engine.RawPurge, bool, error) {
	if limit <= 0 {
		limit = 1000
	}
	var p engine.RawPurge
	var more bool
	err := db.write(ctx, nil, func(tx pgx.Tx) error {
		p, more = engine.RawPurge{}, false
		var from time.Time
		err := tx.QueryRow(ctx, `SELECT at FROM watermarks WHERE name = $1`, watermarkRetention).Scan(&from)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if !from.IsZero() {
			from = from.Add(-retentionOverlap)
		}
		rows, err := tx.Query(ctx, `SELECT e.id, e.received_at FROM events e JOIN raw_events r ON r.event_id = e.id
			WHERE e.received_at >= $1 AND e.received_at < $2 AND r.purged_at IS NULL
			ORDER BY e.received_at, e.id LIMIT $3`, from, cutoff.UTC(), limit+1)
		if err != nil {
			return err
		}
		var ids []int64
		var last time.Time
		for rows.Next() {
			var id int64
			var at time.Time
			if err := rows.Scan(&id, &at); err != nil {
				rows.Close()
				return err
			}
			if len(ids) == limit {
				more = true
				break
			}
			ids, last = append(ids, id), at
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if p, err = db.purge(ctx, tx, ids, engine.PurgeRetention, ""); err != nil {
			return err
		}
		next := cutoff.UTC().Truncate(time.Microsecond)
		if more {
			next = last
		}
		_, err = tx.Exec(ctx, `INSERT INTO watermarks (name, at) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET at = excluded.at`,
			watermarkRetention, next)
		return err
	})
	return p, more, err
}

// PurgeOrderRaw purges every raw request of the order registered as
// orderID, and of the orders nobody registered whose webhooks named it.
func (db *DB) PurgeOrderRaw(ctx context.Context, orderID string) (engine.RawPurge, error) {
	var p engine.RawPurge
	err := db.write(ctx, nil, func(tx pgx.Tx) error {
		p = engine.RawPurge{}
		var refs []int64
		rows, err := tx.Query(ctx, `SELECT id FROM orders WHERE order_id = $1
			UNION SELECT id FROM orders WHERE order_id IS NULL AND reference = $1`, orderID)
		if err != nil {
			return err
		}
		if refs, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return err
		}
		if len(refs) == 0 {
			return engine.Errorf(engine.ENOTFOUND, "no order %s", orderID)
		}
		rows, err = tx.Query(ctx, `SELECT r.event_id FROM raw_events r JOIN events e ON e.id = r.event_id
			WHERE r.purged_at IS NULL AND e.order_ref = ANY($1)`, refs)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		p, err = db.purge(ctx, tx, ids, engine.PurgeRequest, orderID)
		return err
	})
	return p, err
}

// purge empties the raw requests of the events ids and records the purge:
// always for one on request, which says when the customer's data went
// even when there was none left; for retention, only when it purged some.
func (db *DB) purge(ctx context.Context, tx pgx.Tx, ids []int64, reason, orderID string) (engine.RawPurge, error) {
	var p engine.RawPurge
	now := db.now()
	if len(ids) > 0 {
		err := tx.QueryRow(ctx, `WITH old AS (
				SELECT event_id, octet_length(body) + octet_length(headers::text) AS n FROM raw_events
				WHERE event_id = ANY($1) AND purged_at IS NULL FOR UPDATE),
			done AS (UPDATE raw_events r SET body = ''::bytea, headers = '{}'::jsonb, purged_at = $2
				FROM old WHERE r.event_id = old.event_id RETURNING old.n)
			SELECT COUNT(*), COALESCE(SUM(n), 0)::bigint FROM done`, ids, now).Scan(&p.Requests, &p.Bytes)
		if err != nil {
			return p, err
		}
	}
	if p.Requests == 0 && reason == engine.PurgeRetention {
		return p, nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO purges (at, reason, order_id, requests, bytes) VALUES ($1, $2, $3, $4, $5)`,
		now, reason, nullString(orderID), p.Requests, p.Bytes)
	return p, err
}
