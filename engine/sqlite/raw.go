package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/orderstate/orderstate/engine"
)

var _ engine.RawStore = (*DB)(nil)

// watermarkRetention is how far the retention purge has got: the arrival
// time of the last raw request it purged, or the cutoff of the run that
// finished.
const watermarkRetention = "retention.raw"

// retentionOverlap re-reads a little before the watermark, for a request
// stamped by a clock a little behind the one that moved the watermark.
const retentionOverlap = time.Minute

// RawRequest returns the raw request of event seq, a duplicate's
// original's. Returns ENOTFOUND.
func (db *DB) RawRequest(ctx context.Context, seq int64) (*engine.RawRequest, error) {
	if err := db.closedError(); err != nil {
		return nil, err
	}
	var r engine.RawRequest
	var received, purged sql.NullString
	var headers []byte
	var hasRaw bool
	err := db.read.QueryRowContext(ctx, `SELECT o.id, o.provider, o.provider_event_id, o.received_at, r.event_id IS NOT NULL,
			COALESCE(r.headers, '{}'), COALESCE(r.body, X''), r.purged_at
		FROM events e JOIN events o ON o.id = COALESCE(e.original_id, e.id) LEFT JOIN raw_events r ON r.event_id = o.id
		WHERE e.id = ?`, seq).Scan(&r.Seq, &r.Provider, &r.EventID, &received, &hasRaw, &headers, &r.Body, &purged)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, engine.Errorf(engine.ENOTFOUND, "no event %d", seq)
	} else if err != nil {
		return nil, storeError(err, "read raw request")
	}
	if !hasRaw {
		return nil, engine.Errorf(engine.ENOTFOUND, "event %d has no raw request stored", seq)
	}
	r.ReceivedAt = parseTime(received)
	if purged.Valid {
		at := parseTime(purged)
		r.PurgedAt = &at
	}
	if err := json.Unmarshal(headers, &r.Header); err != nil {
		return nil, engine.Wrap(engine.EINTERNAL, err, "the headers of event %d cannot be read", r.Seq)
	}
	return &r, db.awaitDurable(ctx)
}

// PurgeRaw purges the raw requests of events received before cutoff, at
// most limit, oldest first. It reads from where the last run got to
// (through the arrival-time index), so a run costs what it purges, not
// the size of the store.
func (db *DB) PurgeRaw(ctx context.Context, cutoff time.Time, limit int) (engine.RawPurge, bool, error) {
	if limit <= 0 {
		limit = 1000
	}
	var p engine.RawPurge
	var more bool
	err := db.update(ctx, func(tx *sql.Tx) error {
		p, more = engine.RawPurge{}, false
		var mark sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT at FROM watermarks WHERE name = ?`, watermarkRetention).Scan(&mark)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return storeError(err, "read the retention watermark")
		}
		from := ""
		if t := parseTime(mark); !t.IsZero() {
			from = formatTime(t.Add(-retentionOverlap))
		}
		rows, err := tx.QueryContext(ctx, `SELECT e.id, e.received_at FROM events e INDEXED BY events_received
			JOIN raw_events r ON r.event_id = e.id
			WHERE e.received_at >= ? AND e.received_at < ? AND r.purged_at IS NULL
			ORDER BY e.received_at, e.id LIMIT ?`, from, formatTime(cutoff), limit+1)
		if err != nil {
			return storeError(err, "find raw requests to purge")
		}
		var ids []int64
		var last string
		for rows.Next() {
			var id int64
			var at string
			if err := rows.Scan(&id, &at); err != nil {
				rows.Close()
				return storeError(err, "find raw requests to purge")
			}
			if len(ids) == limit {
				more = true
				break
			}
			ids, last = append(ids, id), at
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return storeError(err, "find raw requests to purge")
		}
		if p, err = db.purge(ctx, tx, ids, engine.PurgeRetention, ""); err != nil {
			return err
		}
		next := formatTime(cutoff)
		if more {
			next = last
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO watermarks (name, at) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET at = excluded.at`, watermarkRetention, next)
		return storeError2(err, "move the retention watermark")
	}, true)
	return p, more, err
}

// PurgeOrderRaw purges every raw request of the order registered as
// orderID, and of the orders nobody registered whose webhooks named it.
func (db *DB) PurgeOrderRaw(ctx context.Context, orderID string) (engine.RawPurge, error) {
	var p engine.RawPurge
	err := db.update(ctx, func(tx *sql.Tx) error {
		p = engine.RawPurge{}
		rows, err := tx.QueryContext(ctx, `SELECT r.event_id FROM raw_events r JOIN events e ON e.id = r.event_id
			WHERE r.purged_at IS NULL AND e.order_ref IN (
				SELECT id FROM orders WHERE order_id = ?
				UNION SELECT id FROM orders INDEXED BY orders_reference WHERE order_id IS NULL AND reference = ?)`, orderID, orderID)
		if err != nil {
			return storeError(err, "find the order's raw requests")
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return storeError(err, "find the order's raw requests")
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return storeError(err, "find the order's raw requests")
		}
		if len(ids) == 0 {
			var n int
			err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM orders WHERE order_id = ?) +
				(SELECT COUNT(*) FROM orders INDEXED BY orders_reference WHERE order_id IS NULL AND reference = ?)`, orderID, orderID).Scan(&n)
			if err != nil {
				return storeError(err, "find the order")
			}
			if n == 0 {
				return engine.Errorf(engine.ENOTFOUND, "no order %s", orderID)
			}
		}
		p, err = db.purge(ctx, tx, ids, engine.PurgeRequest, orderID)
		return err
	}, true)
	return p, err
}

// purge empties the raw requests of the events ids and records the purge:
// always for one on request, which says when the customer's data went
// even when there was none left; for retention, only when it purged some.
func (db *DB) purge(ctx context.Context, tx *sql.Tx, ids []int64, reason, orderID string) (engine.RawPurge, error) {
	var p engine.RawPurge
	if len(ids) > 0 {
		list, _ := json.Marshal(ids)
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(length(body) + length(CAST(headers AS BLOB))), 0) FROM raw_events
			WHERE event_id IN (SELECT value FROM json_each(?)) AND purged_at IS NULL`, string(list)).Scan(&p.Requests, &p.Bytes)
		if err != nil {
			return p, storeError(err, "measure raw requests")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE raw_events SET body = X'', headers = '{}', purged_at = ?
			WHERE event_id IN (SELECT value FROM json_each(?)) AND purged_at IS NULL`, formatTime(db.now()), string(list)); err != nil {
			return p, storeError(err, "purge raw requests")
		}
	}
	if p.Requests == 0 && reason == engine.PurgeRetention {
		return p, nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO purges (at, reason, order_id, requests, bytes) VALUES (?, ?, ?, ?, ?)`,
		formatTime(db.now()), reason, nullString(orderID), p.Requests, p.Bytes)
	return p, storeError2(err, "record the purge")
}
