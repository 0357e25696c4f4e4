package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/orderstate/orderstate/engine"

	sm "github.com/orderstate/orderstate/statemachine"
)

// anomalyColumns are scanAnomaly's columns followed by the order's row id.
const anomalyColumns = `a.id, a.kind, a.status, a.detail, a.event_seqs, a.count, a.opened_at, a.updated_at,
	a.resolved_at, COALESCE(a.resolution, ''), COALESCE(a.note, ''), COALESCE(o.order_id, ''), o.provider, o.checkout_id,
	o.state, a.order_ref`

// ReportData reads what a report for q needs. Every query is bounded by an
// index range (the period, or the open anomalies), so its cost follows the
// period's traffic and the open backlog, not the size of the store.
func (db *DB) ReportData(ctx context.Context, q engine.ReportQuery) (*engine.ReportData, error) {
	if err := db.closedError(); err != nil {
		return nil, err
	}
	if q.MaxPerKind <= 0 {
		q.MaxPerKind = 200
	}
	if q.MaxResolved <= 0 {
		q.MaxResolved = 1000
	}
	if !q.Since.Before(q.Until) {
		return nil, engine.Errorf(engine.EINVALID, "report period is empty: %s to %s", formatTime(q.Since), formatTime(q.Until))
	}
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, storeError(err, "read report data")
	}
	defer tx.Rollback()
	r := &reportReader{ctx: ctx, tx: tx, since: formatTime(q.Since), until: formatTime(q.Until),
		hoursAfter: formatTime(q.Since.Add(-time.Hour)), hoursUpTo: formatTime(q.Until.Add(-time.Hour))}
	d := &engine.ReportData{Since: q.Since.UTC(), Until: q.Until.UTC()}
	d.Reached = r.stateCounts(`SELECT provider, state, COUNT(*) FROM orders INDEXED BY orders_state_since
		WHERE state IN (`+stateList(sm.States)+`) AND state_since >= ? AND state_since < ? GROUP BY provider, state`, r.since, r.until)
	d.InFlight = r.stateCounts(`SELECT provider, state, COUNT(*) FROM orders INDEXED BY orders_state_since
		WHERE state IN ('pending', 'processing') GROUP BY provider, state`)
	action, info := kindsBySeverity()
	orders := map[int64]*engine.Order{}
	for _, kind := range action {
		d.Open = append(d.Open, r.open(kind, q.MaxPerKind, orders)...)
	}
	d.OpenCounts = r.kindCounts(`SELECT a.kind, o.provider, COUNT(*), COALESCE(SUM(a.opened_at >= ? AND a.opened_at < ?), 0)
		FROM anomalies a INDEXED BY anomalies_status JOIN orders o ON o.id = a.order_ref
		WHERE a.status = 'open' AND a.kind IN (`+action.list()+`) GROUP BY a.kind, o.provider`, r.since, r.until)
	r.each(`SELECT COUNT(DISTINCT order_ref) FROM anomalies INDEXED BY anomalies_status
		WHERE status = 'open' AND kind IN (`+action.list()+`)`, nil, func(rows *sql.Rows) error {
		return rows.Scan(&d.OpenOrders)
	})
	d.Info = r.kindCounts(`SELECT a.kind, o.provider, COUNT(*), COUNT(*) FROM anomalies a INDEXED BY anomalies_opened
		JOIN orders o ON o.id = a.order_ref WHERE a.opened_at >= ? AND a.opened_at < ? AND a.kind IN (`+info.list()+`)
		GROUP BY a.kind, o.provider`, r.since, r.until)
	d.Resolved, d.ResolvedTotal = r.resolved(q.MaxResolved)
	d.Activity = r.activity()
	d.Purged = []engine.PurgeCount{}
	r.each(`SELECT reason, COUNT(*), SUM(requests), SUM(bytes) FROM purges INDEXED BY purges_at WHERE at >= ? AND at < ?
		GROUP BY reason`, []any{r.since, r.until}, func(rows *sql.Rows) error {
		var c engine.PurgeCount
		err := rows.Scan(&c.Reason, &c.Purges, &c.Requests, &c.Bytes)
		d.Purged = append(d.Purged, c)
		return err
	})
	if r.err != nil {
		return nil, r.err
	}
	d.Sort()
	return d, db.readDone(ctx, tx)
}

// reportReader runs the report's queries in one read transaction, keeping
// the first error.
type reportReader struct {
	ctx          context.Context
	tx           *sql.Tx
	since, until string
	// hoursAfter and hoursUpTo bound the starts of the hours that end in
	// the period.
	hoursAfter, hoursUpTo string
	err                   error
}

func (r *reportReader) fail(err error) {
	if r.err == nil && err != nil {
		r.err = storeError(err, "read report data")
	}
}

// each runs query and calls scan for every row, stopping at the first error.
func (r *reportReader) each(query string, args []any, scan func(*sql.Rows) error) {
	if r.err != nil {
		return
	}
	rows, err := r.tx.QueryContext(r.ctx, query, args...)
	if err != nil {
		r.fail(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			r.fail(err)
			return
		}
	}
	r.fail(rows.Err())
}

func (r *reportReader) stateCounts(query string, args ...any) []engine.StateCount {
	out := []engine.StateCount{}
	r.each(query, args, func(rows *sql.Rows) error {
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
	r.each(query, args, func(rows *sql.Rows) error {
		var c engine.KindCount
		err := rows.Scan(&c.Kind, &c.Provider, &c.Count, &c.New)
		out = append(out, c)
		return err
	})
	return out
}

// open lists the newest open anomalies of kind. Newest first, because a
// backlog nobody closes (abandoned checkouts stay stuck) would otherwise
// fill the list within days and push what went wrong today off it.
func (r *reportReader) open(kind string, limit int, orders map[int64]*engine.Order) []engine.OpenAnomaly {
	type listed struct {
		a   engine.Anomaly
		ref int64
	}
	var found []listed
	r.each(`SELECT `+anomalyColumns+` FROM anomalies a INDEXED BY anomalies_status JOIN orders o ON o.id = a.order_ref
		WHERE a.status = 'open' AND a.kind = ? ORDER BY a.opened_at DESC, a.id DESC LIMIT ?`, []any{kind, limit}, func(rows *sql.Rows) error {
		var l listed
		a, err := scanAnomaly(withRef{rows, &l.ref})
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

// order loads an order with its timeline and open action anomalies, once
// per report however many of its anomalies are listed.
func (r *reportReader) order(ref int64, loaded map[int64]*engine.Order) *engine.Order {
	if view, ok := loaded[ref]; ok {
		return view
	}
	o, err := loadOrder(r.ctx, r.tx, `id = ?`, ref)
	if err != nil || o == nil {
		r.fail(err)
		return nil
	}
	view := o.view()
	view.Events, err = timeline(r.ctx, r.tx, ref)
	r.fail(err)
	view.Anomalies, err = queryAnomalies(r.ctx, r.tx, engine.AnomalyFilter{OrderRef: ref, Status: engine.StatusOpen, Severity: engine.SeverityAction})
	r.fail(err)
	loaded[ref] = view
	return view
}

func (r *reportReader) resolved(limit int) ([]engine.Anomaly, int) {
	out := []engine.Anomaly{}
	total := 0
	r.each(`SELECT `+anomalyColumns+` FROM anomalies a INDEXED BY anomalies_resolved JOIN orders o ON o.id = a.order_ref
		WHERE a.resolved_at >= ? AND a.resolved_at < ? AND a.status IN ('resolved', 'acknowledged')
		ORDER BY a.resolved_at, a.id`, []any{r.since, r.until}, func(rows *sql.Rows) error {
		total++
		if len(out) >= limit {
			return nil
		}
		var ref int64
		a, err := scanAnomaly(withRef{rows, &ref})
		out = append(out, a)
		return err
	})
	return out, total
}

func (r *reportReader) activity() []engine.ProviderActivity {
	by := map[string]*engine.ProviderActivity{}
	get := func(p string) *engine.ProviderActivity {
		if a, ok := by[p]; ok {
			return a
		}
		a := &engine.ProviderActivity{Provider: p, UnknownTypes: map[string]int{}, Rejected: map[string]int{}, Lags: []time.Duration{}}
		by[p] = a
		return a
	}
	r.each(`SELECT e.provider, COUNT(*), COALESCE(SUM(e.result = 'duplicate'), 0), COALESCE(SUM(e.out_of_order), 0),
		COALESCE(SUM(e.kind = 'unknown'), 0), COALESCE(SUM(e.unsigned), 0),
		COALESCE(SUM(o.id IS NOT NULL AND o.registered_at IS NULL), 0)
		FROM events e INDEXED BY events_received LEFT JOIN orders o ON o.id = e.order_ref
		WHERE e.received_at >= ? AND e.received_at < ? GROUP BY e.provider`, []any{r.since, r.until}, func(rows *sql.Rows) error {
		var p string
		var n, dup, ooo, unk, uns, unreg int
		if err := rows.Scan(&p, &n, &dup, &ooo, &unk, &uns, &unreg); err != nil {
			return err
		}
		a := get(p)
		a.Events, a.Duplicates, a.OutOfOrder, a.Unknown, a.Unsigned, a.Unregistered = n, dup, ooo, unk, uns, unreg
		return nil
	})
	r.each(`SELECT provider, provider_type, COUNT(*) FROM events INDEXED BY events_received
		WHERE received_at >= ? AND received_at < ? AND kind = 'unknown' GROUP BY provider, provider_type`,
		[]any{r.since, r.until}, func(rows *sql.Rows) error {
			var p, typ string
			var n int
			err := rows.Scan(&p, &typ, &n)
			get(p).UnknownTypes[typ] = n
			return err
		})
	// Rejections are counted per hour, and an hour belongs to the period
	// its end falls in: the hour a report runs in is still being counted
	// into, so it waits for the next report rather than be split.
	r.each(`SELECT provider, reason, SUM(count) FROM rejections WHERE hour > ? AND hour <= ? GROUP BY provider, reason`,
		[]any{r.hoursAfter, r.hoursUpTo}, func(rows *sql.Rows) error {
			var p, reason string
			var n int
			err := rows.Scan(&p, &reason, &n)
			get(p).Rejected[reason] = n
			return err
		})
	// Redeliveries are left out of the lag: their provider time is the
	// original's, so they would measure the provider's retry schedule.
	r.each(`SELECT provider, occurred_at, received_at FROM events INDEXED BY events_received
		WHERE received_at >= ? AND received_at < ? AND occurred_at IS NOT NULL AND original_id IS NULL`,
		[]any{r.since, r.until}, func(rows *sql.Rows) error {
			var p string
			var occ, rec sql.NullString
			if err := rows.Scan(&p, &occ, &rec); err != nil {
				return err
			}
			a := get(p)
			a.Lags = append(a.Lags, parseTime(rec).Sub(parseTime(occ)))
			return nil
		})
	out := make([]engine.ProviderActivity, 0, len(by))
	for _, a := range by {
		out = append(out, *a)
	}
	return out
}

// withRef scans scanAnomaly's columns plus a trailing order row id.
type withRef struct {
	row interface{ Scan(...any) error }
	ref *int64
}

func (w withRef) Scan(dest ...any) error { return w.row.Scan(append(dest, w.ref)...) }

type kindList []string

// list renders constant kind names as SQL literals; they come from
// AnomalyKinds, never from input.
func (k kindList) list() string {
	q := make([]string, len(k))
	for i, s := range k {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ", ")
}

func kindsBySeverity() (action, info kindList) {
	for _, k := range engine.AnomalyKinds {
		if engine.Severity(k) == engine.SeverityAction {
			action = append(action, k)
		} else {
			info = append(info, k)
		}
	}
	return action, info
}

func stateList(states []sm.State) string {
	q := make([]string, len(states))
	for i, s := range states {
		q[i] = "'" + string(s) + "'"
	}
	return strings.Join(q, ", ")
}
