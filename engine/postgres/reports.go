package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// ReportData reads what a report for q needs, in one snapshot.
func (db *DB) ReportData(ctx context.Context, q engine.ReportQuery) (*engine.ReportData, error) {
	if q.MaxPerKind <= 0 {
		q.MaxPerKind = 200
	}
	if q.MaxResolved <= 0 {
		q.MaxResolved = 1000
	}
	if !q.Since.Before(q.Until) {
		return nil, engine.Errorf(engine.EINVALID, "report period is empty: %s to %s", q.Since.UTC().Format(time.RFC3339), q.Until.UTC().Format(time.RFC3339))
	}
	since, until := q.Since.UTC(), q.Until.UTC()
	var d *engine.ReportData
	err := db.read(ctx, func(tx pgx.Tx) error {
		d = &engine.ReportData{Since: since, Until: until}
		r := &reportReader{ctx: ctx, tx: tx}
		d.Reached = r.stateCounts(`SELECT provider, state, COUNT(*) FROM orders WHERE state_since >= $1 AND state_since < $2
			GROUP BY provider, state`, since, until)
		d.InFlight = r.stateCounts(`SELECT provider, state, COUNT(*) FROM orders WHERE state IN ('pending', 'processing') GROUP BY provider, state`)
		var action, info []string
		for _, k := range engine.AnomalyKinds {
			if engine.Severity(k) == engine.SeverityAction {
				action = append(action, k)
			} else {
				info = append(info, k)
			}
		}
		orders := map[int64]*engine.Order{}
		for _, kind := range action {
			d.Open = append(d.Open, r.open(kind, q.MaxPerKind, orders)...)
		}
		d.OpenCounts = r.kindCounts(`SELECT a.kind, o.provider, COUNT(*), COUNT(*) FILTER (WHERE a.opened_at >= $1 AND a.opened_at < $2)
			FROM anomalies a JOIN orders o ON o.id = a.order_ref WHERE a.status = 'open' AND a.kind = ANY($3)
			GROUP BY a.kind, o.provider`, since, until, action)
		r.each(`SELECT COUNT(DISTINCT order_ref) FROM anomalies WHERE status = 'open' AND kind = ANY($1)`, []any{action},
			func(rows pgx.Rows) error { return rows.Scan(&d.OpenOrders) })
		d.Info = r.kindCounts(`SELECT a.kind, o.provider, COUNT(*), COUNT(*) FROM anomalies a JOIN orders o ON o.id = a.order_ref
			WHERE a.opened_at >= $1 AND a.opened_at < $2 AND a.kind = ANY($3) GROUP BY a.kind, o.provider`, since, until, info)
		d.Resolved, d.ResolvedTotal = r.resolved(since, until, q.MaxResolved)
		d.Activity = r.activity(since, until)
		d.Purged = []engine.PurgeCount{}
		r.each(`SELECT reason, COUNT(*), SUM(requests)::bigint, SUM(bytes)::bigint FROM purges WHERE at >= $1 AND at < $2 GROUP BY reason`,
			[]any{since, until}, func(rows pgx.Rows) error {
				var c engine.PurgeCount
				err := rows.Scan(&c.Reason, &c.Purges, &c.Requests, &c.Bytes)
				d.Purged = append(d.Purged, c)
				return err
			})
		return r.err
	})
	if err != nil {
		return nil, err
	}
	d.Sort()
	return d, nil
}

// reportReader runs the report's queries in one read transaction, keeping
// the first error.
type reportReader struct {
	ctx context.Context
	tx  pgx.Tx
	err error
}

func (r *reportReader) each(query string, args []any, scan func(pgx.Rows) error) {
	if r.err != nil {
		return
	}
	rows, err := r.tx.Query(r.ctx, query, args...)
	if err != nil {
		r.err = err
		return
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			r.err = err
			return
		}
	}
	r.err = rows.Err()
}

func (r *reportReader) stateCounts(query string, args ...any) []engine.StateCount {
	out := []engine.StateCount{}
	r.each(query, args, func(rows pgx.Rows) error {
		var c engine.StateCount
		var state string
		err := rows.Scan(&c.Provider, &state, &c.Count)
		c.State = sm.State(state)
		out = append(out, c)
		return err
	})
	return out
}

func (r *reportReader) kindCounts(query string, args ...any) []engine.KindCount {
	out := []engine.KindCount{}
	r.each(query, args, func(rows pgx.Rows) error {
		var c engine.KindCount
		err := rows.Scan(&c.Kind, &c.Provider, &c.Count, &c.New)
		out = append(out, c)
		return err
	})
	return out
}

// open lists the newest open anomalies of kind, each with its order.
func (r *reportReader) open(kind string, limit int, orders map[int64]*engine.Order) []engine.OpenAnomaly {
	type listed struct {
		a   engine.Anomaly
		ref int64
	}
	var found []listed
	r.each(`SELECT `+anomalyColumns+`, a.order_ref FROM anomalies a JOIN orders o ON o.id = a.order_ref
		WHERE a.status = 'open' AND a.kind = $1 ORDER BY a.opened_at DESC, a.id DESC LIMIT $2`, []any{kind, limit},
		func(rows pgx.Rows) error {
			var l listed
			a, err := scanAnomaly(rows, &l.ref)
			l.a = a
			found = append(found, l)
			return err
		})
	out := make([]engine.OpenAnomaly, 0, len(found))
	for _, l := range found {
		if r.err != nil {
			break
		}
		if view := r.order(l.ref, orders); view != nil {
			out = append(out, engine.OpenAnomaly{Anomaly: l.a, Order: view})
		}
	}
	return out
}

func (r *reportReader) order(ref int64, loaded map[int64]*engine.Order) *engine.Order {
	if view, ok := loaded[ref]; ok {
		return view
	}
	o, err := loadOrder(r.ctx, r.tx, false, `o.id = $1`, ref)
	if err != nil || o == nil {
		r.err = err
		return nil
	}
	view := o.view()
	if view.Events, r.err = timeline(r.ctx, r.tx, ref); r.err != nil {
		return nil
	}
	view.Anomalies, r.err = queryAnomalies(r.ctx, r.tx, engine.AnomalyFilter{OrderRef: ref, Status: engine.StatusOpen, Severity: engine.SeverityAction})
	loaded[ref] = view
	return view
}

func (r *reportReader) resolved(since, until time.Time, limit int) ([]engine.Anomaly, int) {
	out := []engine.Anomaly{}
	total := 0
	r.each(`SELECT `+anomalyColumns+` FROM anomalies a JOIN orders o ON o.id = a.order_ref
		WHERE a.resolved_at >= $1 AND a.resolved_at < $2 AND a.status IN ('resolved', 'acknowledged')
		ORDER BY a.resolved_at, a.id`, []any{since, until}, func(rows pgx.Rows) error {
		total++
		if len(out) >= limit {
			return nil
		}
		a, err := scanAnomaly(rows)
		out = append(out, a)
		return err
	})
	return out, total
}

func (r *reportReader) activity(since, until time.Time) []engine.ProviderActivity {
	by := map[string]*engine.ProviderActivity{}
	get := func(p string) *engine.ProviderActivity {
		if a, ok := by[p]; ok {
			return a
		}
		a := &engine.ProviderActivity{Provider: p, UnknownTypes: map[string]int{}, Rejected: map[string]int{}, Lags: []time.Duration{}}
		by[p] = a
		return a
	}
	r.each(`SELECT e.provider, COUNT(*), COUNT(*) FILTER (WHERE e.result = 'duplicate'), COUNT(*) FILTER (WHERE e.out_of_order),
		COUNT(*) FILTER (WHERE e.kind = 'unknown'), COUNT(*) FILTER (WHERE e.unsigned),
		COUNT(*) FILTER (WHERE o.id IS NOT NULL AND o.registered_at IS NULL)
		FROM events e LEFT JOIN orders o ON o.id = e.order_ref
		WHERE e.received_at >= $1 AND e.received_at < $2 GROUP BY e.provider`, []any{since, until}, func(rows pgx.Rows) error {
		var p string
		var n, dup, ooo, unk, uns, unreg int
		if err := rows.Scan(&p, &n, &dup, &ooo, &unk, &uns, &unreg); err != nil {
			return err
		}
		a := get(p)
		a.Events, a.Duplicates, a.OutOfOrder, a.Unknown, a.Unsigned, a.Unregistered = n, dup, ooo, unk, uns, unreg
		return nil
	})
	r.each(`SELECT provider, provider_type, COUNT(*) FROM events WHERE received_at >= $1 AND received_at < $2 AND kind = 'unknown'
		GROUP BY provider, provider_type`, []any{since, until}, func(rows pgx.Rows) error {
		var p, typ string
		var n int
		err := rows.Scan(&p, &typ, &n)
		get(p).UnknownTypes[typ] = n
		return err
	})
	// An hour of rejections belongs to the period its end falls in.
	r.each(`SELECT provider, reason, SUM(count) FROM rejections WHERE hour > $1 AND hour <= $2 GROUP BY provider, reason`,
		[]any{since.Add(-time.Hour), until.Add(-time.Hour)}, func(rows pgx.Rows) error {
			var p, reason string
			var n int
			err := rows.Scan(&p, &reason, &n)
			get(p).Rejected[reason] = n
			return err
		})
	r.each(`SELECT provider, occurred_at, received_at FROM events
		WHERE received_at >= $1 AND received_at < $2 AND occurred_at IS NOT NULL AND original_id IS NULL`,
		[]any{since, until}, func(rows pgx.Rows) error {
			var p string
			var occ, rec time.Time
			if err := rows.Scan(&p, &occ, &rec); err != nil {
				return err
			}
			a := get(p)
			a.Lags = append(a.Lags, rec.Sub(occ))
			return nil
		})
	out := make([]engine.ProviderActivity, 0, len(by))
	for _, a := range by {
		out = append(out, *a)
	}
	return out
}

// SaveReport stores a rendered report and returns its id.
func (db *DB) SaveReport(ctx context.Context, r engine.StoredReport) (int64, error) {
	var id int64
	err := db.write(ctx, nil, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO reports (created_at, period_start, period_end, json, markdown, html)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, r.CreatedAt.UTC(), r.PeriodStart.UTC(), r.PeriodEnd.UTC(),
			r.JSON, r.Markdown, r.HTML).Scan(&id)
	})
	return id, err
}

// Reports lists stored reports, newest first, without their bodies.
func (db *DB) Reports(ctx context.Context, limit int) ([]engine.StoredReport, error) {
	if limit <= 0 {
		limit = 100
	}
	out := []engine.StoredReport{}
	err := db.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, created_at, period_start, period_end FROM reports ORDER BY id DESC LIMIT $1`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r engine.StoredReport
			if err := rows.Scan(&r.ID, &r.CreatedAt, &r.PeriodStart, &r.PeriodEnd); err != nil {
				return err
			}
			r.CreatedAt, r.PeriodStart, r.PeriodEnd = r.CreatedAt.UTC(), r.PeriodStart.UTC(), r.PeriodEnd.UTC()
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

// Report returns one stored report with its renderings. Returns ENOTFOUND.
func (db *DB) Report(ctx context.Context, id int64) (*engine.StoredReport, error) {
	var r engine.StoredReport
	err := db.read(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT id, created_at, period_start, period_end, json, markdown, html FROM reports WHERE id = $1`, id).
			Scan(&r.ID, &r.CreatedAt, &r.PeriodStart, &r.PeriodEnd, &r.JSON, &r.Markdown, &r.HTML)
		if errors.Is(err, pgx.ErrNoRows) {
			return engine.Errorf(engine.ENOTFOUND, "no report %d", id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	r.CreatedAt, r.PeriodStart, r.PeriodEnd = r.CreatedAt.UTC(), r.PeriodStart.UTC(), r.PeriodEnd.UTC()
	return &r, nil
}

// Watermark returns when the named job last completed (zero if never).
func (db *DB) Watermark(ctx context.Context, name string) (time.Time, error) {
	var at time.Time
	err := db.read(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT at FROM watermarks WHERE name = $1`, name).Scan(&at)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	if at.IsZero() {
		return time.Time{}, err
	}
	return at.UTC(), err
}

// SetWatermark records that the named job completed up to at.
func (db *DB) SetWatermark(ctx context.Context, name string, at time.Time) error {
	return db.write(ctx, nil, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO watermarks (name, at) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET at = excluded.at`,
			name, at.UTC().Truncate(time.Microsecond))
		return err
	})
}
