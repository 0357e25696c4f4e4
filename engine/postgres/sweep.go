package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Sweep runs fn in one write transaction with the primitives the
// time-based anomaly rules need; see engine.SweepTx. Another replica's
// webhooks go on meanwhile: raises and resolutions take the anomaly rows'
// own locks.
func (db *DB) Sweep(ctx context.Context, fn func(engine.SweepTx) error) error {
	return db.write(ctx, nil, func(tx pgx.Tx) error {
		now := db.now()
		return fn(&sweepTx{ctx: ctx, tx: tx, now: now})
	})
}

type sweepTx struct {
	ctx context.Context
	tx  pgx.Tx
	now time.Time
}

func (s *sweepTx) Now() time.Time { return s.now }

const sweepColumns = `o.id, ` + shopIDColumn + `, o.provider, o.checkout_id, o.state, o.state_since, o.redirect_outcome, o.redirect_at,
	(SELECT string_agg(a.kind, ',') FROM anomalies a WHERE a.order_ref = o.id AND a.status = 'open')`

// limitOf is limit as LIMIT takes it: NULL for none.
func limitOf(limit int) any {
	if limit <= 0 {
		return nil
	}
	return limit
}

func (s *sweepTx) InState(state sm.State, after engine.Key, to time.Time, limit int) ([]engine.SweepOrder, error) {
	return s.orders(`SELECT `+sweepColumns+` FROM orders o
		WHERE o.state = $1 AND (o.state_since, o.id) > ($2, $3) AND o.state_since < $4
		ORDER BY o.state_since, o.id LIMIT $5`, string(state), after.At.UTC(), after.Ref, to.UTC(), limitOf(limit))
}

func (s *sweepTx) Redirected(after engine.Key, to time.Time, limit int) ([]engine.SweepOrder, error) {
	return s.orders(`SELECT `+sweepColumns+` FROM orders o
		WHERE o.redirect_at IS NOT NULL AND (o.redirect_at, o.id) > ($1, $2) AND o.redirect_at < $3
		ORDER BY o.redirect_at, o.id LIMIT $4`, after.At.UTC(), after.Ref, to.UTC(), limitOf(limit))
}

func (s *sweepTx) ChangedRefs(from time.Time) ([]int64, error) {
	states := make([]string, len(sm.States))
	for i, st := range sm.States {
		states[i] = string(st)
	}
	return s.refs(`SELECT id FROM orders WHERE state = ANY($1) AND state_since >= $2
		UNION SELECT id FROM orders WHERE redirect_at >= $2 ORDER BY 1`, states, from.UTC())
}

func (s *sweepTx) OpenRefs(kinds ...string) ([]int64, error) {
	if len(kinds) == 0 {
		return nil, nil
	}
	return s.refs(`SELECT DISTINCT order_ref FROM anomalies WHERE status = 'open' AND kind = ANY($1) ORDER BY 1`, kinds)
}

func (s *sweepTx) refs(query string, args ...any) ([]int64, error) {
	rows, err := s.tx.Query(s.ctx, query, args...)
	if err != nil {
		return nil, storeError(err, "sweep candidates")
	}
	refs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return refs, storeError(err, "sweep candidates")
}

func (s *sweepTx) Orders(refs []int64) ([]engine.SweepOrder, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	return s.orders(`SELECT `+sweepColumns+` FROM orders o WHERE o.id = ANY($1) ORDER BY o.id`, refs)
}

func (s *sweepTx) orders(query string, args ...any) ([]engine.SweepOrder, error) {
	rows, err := s.tx.Query(s.ctx, query, args...)
	if err != nil {
		return nil, storeError(err, "sweep candidates")
	}
	return scanSweepOrders(rows)
}

// scanSweepOrders reads rows of sweepColumns, and closes them.
func scanSweepOrders(rows pgx.Rows) ([]engine.SweepOrder, error) {
	defer rows.Close()
	var out []engine.SweepOrder
	for rows.Next() {
		var o engine.SweepOrder
		var state string
		var outcome, open *string
		var since, redirectAt *time.Time
		if err := rows.Scan(&o.Ref, &o.OrderID, &o.Provider, &o.CheckoutID, &state, &since, &outcome, &redirectAt, &open); err != nil {
			return nil, storeError(err, "sweep candidates")
		}
		o.State, o.StateSince = sm.State(state), timeOf(since)
		if outcome != nil {
			o.Redirect = &engine.Redirect{Outcome: *outcome, At: timeOf(redirectAt)}
		}
		if open != nil && *open != "" {
			o.Open = strings.Split(*open, ",")
		}
		out = append(out, o)
	}
	return out, storeError(rows.Err(), "sweep candidates")
}

// Raise opens an anomaly of kind unless one of that kind was ever recorded
// for the order: a rule re-checked on every sweep is not a new occurrence,
// and a closed anomaly stays closed.
func (s *sweepTx) Raise(o engine.SweepOrder, kind, detail string) (bool, error) {
	tag, err := s.tx.Exec(s.ctx, `INSERT INTO anomalies (order_ref, kind, status, detail, opened_at, updated_at)
		VALUES ($1, $2, 'open', $3, $4, $4) ON CONFLICT (order_ref, kind) DO NOTHING`, o.Ref, kind, detail, s.now)
	if err != nil {
		return false, storeError(err, "record anomaly")
	}
	return tag.RowsAffected() > 0, nil
}

func (s *sweepTx) Resolve(o engine.SweepOrder, kind string, why func(openedAt time.Time) string) (bool, error) {
	var opened time.Time
	err := s.tx.QueryRow(s.ctx, `SELECT opened_at FROM anomalies WHERE order_ref = $1 AND kind = $2 AND status = 'open' FOR UPDATE`,
		o.Ref, kind).Scan(&opened)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, storeError(err, "sweep resolve")
	}
	_, err = s.tx.Exec(s.ctx, `UPDATE anomalies SET status = 'resolved', resolved_at = $1, updated_at = $1, resolution = $2
		WHERE order_ref = $3 AND kind = $4 AND status = 'open'`, s.now, why(opened.UTC()), o.Ref, kind)
	return err == nil, storeError(err, "sweep resolve")
}

func (s *sweepTx) Cursor(name string) (time.Time, error) {
	var at time.Time
	err := s.tx.QueryRow(s.ctx, `SELECT at FROM watermarks WHERE name = $1`, name).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	return at.UTC(), storeError(err, "read sweep cursor")
}

func (s *sweepTx) SetCursor(name string, at time.Time) error {
	_, err := s.tx.Exec(s.ctx, `INSERT INTO watermarks (name, at) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET at = excluded.at`,
		name, at.UTC())
	return storeError(err, "set sweep cursor")
}

// Lead takes the named job's lease: a session advisory lock on a
// connection of its own, so the lease ends with the process that holds it
// and another replica takes the job over at its next tick.
func (db *DB) Lead(ctx context.Context, job string) (func(), bool, error) {
	if err := db.closedError(); err != nil {
		return nil, false, err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, false, storeError(err, "take the job's lease")
	}
	key := lockIDs([]string{"job\x00" + job})[0]
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil || !ok {
		conn.Release()
		return nil, false, storeError(err, "take the job's lease")
	}
	return func() {
		if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, key); err != nil {
			// The lock goes with the connection, which is not reused.
			conn.Conn().Close(context.Background())
		}
		conn.Release()
	}, true, nil
}
