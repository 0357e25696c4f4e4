package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// The statements settle reads with, on the writer's connection: the
// order's anomalies with, when the rules need them, its events, in one
// query (lead column 0 an event, 1 an anomaly's kind and status), since
// the driver's cost is per statement as much as per row.
const (
	qFacts = `SELECT 0, id, provider, provider_type, kind, amount, COALESCE(currency, ''), COALESCE(mode, ''), ids, source, result
		FROM events WHERE order_ref = ? AND original_id IS NULL
		UNION ALL SELECT 1, 0, '', '', kind, 0, status, '', NULL, '', '' FROM anomalies WHERE order_ref = ?`
	qOrderAnomalies = `SELECT 1, 0, '', '', kind, 0, status, '', NULL, '', '' FROM anomalies WHERE order_ref = ?`
)

// facts loads what engine.Assess looks at for the order o, and the status
// of each kind of anomaly the order ever had.
func (r *raiser) facts(ctx context.Context, o *orderRow) (engine.Facts, map[string]string, error) {
	f := engine.Facts{State: o.state, Redirect: o.redirectView(), Registration: o.registration()}
	var rows rowIter
	var err error
	if f.Registration == nil && f.State != sm.NeedsReview {
		// Without a registration the rules read the events only for
		// the contradictions, and those mean needs_review.
		rows, err = r.tx.query(ctx, qOrderAnomalies, o.ref)
	} else {
		rows, err = r.tx.query(ctx, qFacts, o.ref, o.ref)
	}
	if err != nil {
		return f, nil, storeError(err, "load facts")
	}
	defer rows.Close()
	status := map[string]string{}
	for rows.Next() {
		var e engine.Fact
		var what int64
		var kind string
		var ids sql.NullString
		var result string
		if err := rows.Scan(&what, &e.Seq, &e.Provider, &e.Type, &kind, &e.Amount, &e.Currency, &e.Mode, &ids, &e.Source, &result); err != nil {
			return f, nil, storeError(err, "load facts")
		}
		if what == 1 {
			status[kind] = e.Currency
			continue
		}
		e.Kind, e.Result = sm.Kind(kind), sm.Result(result)
		if ids.Valid && f.Registration != nil {
			if err := json.Unmarshal([]byte(ids.String), &e.IDs); err != nil {
				return f, nil, engine.Wrap(engine.EINTERNAL, err, "event %d: stored ids", e.Seq)
			}
		}
		f.Events = append(f.Events, e)
	}
	return f, status, storeError2(rows.Err(), "load facts")
}

// settle brings the order's order-free anomalies in line with what
// engine.Assess finds in its facts now: it raises the ones found that were
// never raised, adds seq to the evidence of those it shows again, reopens
// those it resolved when they hold again (new facts can make a finding
// hold again: a second payment through a checkout the shop never
// registered, after an event tied the first to it), and resolves the open
// ones that no longer hold. One a person acknowledged stays acknowledged.
func (r *raiser) settle(ctx context.Context, o *orderRow, seq int64) {
	if r.err != nil {
		return
	}
	facts, status, err := r.facts(ctx, o)
	if err != nil {
		r.err = err
		return
	}
	found := engine.Assess(facts)
	for _, f := range found {
		st, had := status[f.Kind]
		switch {
		case !had:
			r.raiseFinding(ctx, o, f)
		case st == engine.StatusResolved:
			r.reopen(ctx, o, f)
		case seq > 0 && st == engine.StatusOpen && slices.Contains(f.Seqs, seq):
			r.raise(ctx, o, f.Kind, seq, f.Detail)
		}
	}
	for kind, st := range status {
		if st != engine.StatusOpen || !engine.IsOrderFree(kind) ||
			slices.ContainsFunc(found, func(f engine.Finding) bool { return f.Kind == kind }) {
			continue
		}
		r.resolve(ctx, o.ref, kind, engine.Resolution(kind, facts))
	}
}

// reopen opens again an anomaly the rules resolved, with what shows it now.
func (r *raiser) reopen(ctx context.Context, o *orderRow, f engine.Finding) {
	if r.err != nil {
		return
	}
	_, err := r.tx.ExecContext(ctx, `UPDATE anomalies SET status = 'open', resolved_at = NULL, resolution = NULL, detail = ?,
		event_seqs = ?, count = count + 1, updated_at = ? WHERE order_ref = ? AND kind = ? AND status = 'resolved'`,
		f.Detail, seqsJSON(f.Seqs), formatTime(r.now), o.ref, f.Kind)
	if err != nil {
		r.err = storeError(err, "reopen anomaly")
		return
	}
	r.kinds = append(r.kinds, f.Kind)
}

// raiseFinding opens an anomaly with all the events that show it.
func (r *raiser) raiseFinding(ctx context.Context, o *orderRow, f engine.Finding) {
	if r.err != nil {
		return
	}
	_, err := r.tx.ExecContext(ctx, qRaise, o.ref, f.Kind, f.Detail, seqsJSON(f.Seqs), formatTime(r.now), formatTime(r.now), 0, 0)
	if err != nil {
		r.err = storeError(err, "record anomaly")
		return
	}
	r.kinds = append(r.kinds, f.Kind)
}

func seqsJSON(seqs []int64) string {
	if len(seqs) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(seqs)
	return string(b)
}

// idsJSON is how an event's or a registration's ids are stored.
func idsJSON(ids []string) any {
	if len(ids) == 0 {
		return nil
	}
	b, err := json.Marshal(ids)
	if err != nil {
		panic(fmt.Sprintf("encode ids: %v", err)) // a []string always encodes
	}
	return string(b)
}

// registration is what the shop registered for the order, as the rules
// see it; nil for none.
func (o *orderRow) registration() *engine.Registration {
	if !o.registered {
		return nil
	}
	return &engine.Registration{OrderID: o.orderID.String, Provider: o.provider, CheckoutID: o.checkoutID,
		Amount: o.amount.Int64, Currency: o.currency.String, Mode: o.mode.String, OtherIDs: o.registeredIDs}
}

// redirectView is the order's redirect as the rules see it, nil for none.
func (o *orderRow) redirectView() *engine.Redirect {
	if !o.redirect.Valid {
		return nil
	}
	return &engine.Redirect{Outcome: o.redirect.String, At: o.redirectAt}
}
