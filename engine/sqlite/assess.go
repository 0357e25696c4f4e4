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

// The statements settle reads with, on the writer's connection.
const (
	qFacts = `SELECT id, provider, provider_type, kind, amount, COALESCE(currency, ''), COALESCE(mode, ''), ids
		FROM events WHERE order_ref = ? AND original_id IS NULL ORDER BY id`
	qOrderAnomalies = `SELECT kind, status FROM anomalies WHERE order_ref = ?`
)

// facts loads what engine.Assess looks at for the order o.
func (r *raiser) facts(ctx context.Context, o *orderRow) (engine.Facts, error) {
	f := engine.Facts{State: o.state, Redirect: o.redirectView()}
	if o.registered {
		f.Registration = &engine.Registration{OrderID: o.orderID.String, Provider: o.provider, CheckoutID: o.checkoutID,
			Amount: o.amount.Int64, Currency: o.currency.String, Mode: o.mode.String, OtherIDs: o.registeredIDs}
	}
	rows, err := r.tx.query(ctx, qFacts, o.ref)
	if err != nil {
		return f, storeError(err, "load facts")
	}
	defer rows.Close()
	for rows.Next() {
		var e engine.Fact
		var kind string
		var ids sql.NullString
		if err := rows.Scan(&e.Seq, &e.Provider, &e.Type, &kind, &e.Amount, &e.Currency, &e.Mode, &ids); err != nil {
			return f, storeError(err, "load facts")
		}
		e.Kind = sm.Kind(kind)
		if ids.Valid {
			if err := json.Unmarshal([]byte(ids.String), &e.IDs); err != nil {
				return f, engine.Wrap(engine.EINTERNAL, err, "event %d: stored ids", e.Seq)
			}
		}
		f.Events = append(f.Events, e)
	}
	return f, storeError2(rows.Err(), "load facts")
}

// settle brings the order's order-free anomalies in line with what
// engine.Assess finds in its facts now: it raises the ones found that were
// never raised, adds seq to the evidence of those it shows again, and
// resolves the open ones that no longer hold. An anomaly resolved or
// acknowledged before stays so: one of a kind per order, ever.
func (r *raiser) settle(ctx context.Context, o *orderRow, seq int64) {
	if r.err != nil {
		return
	}
	facts, err := r.facts(ctx, o)
	if err != nil {
		r.err = err
		return
	}
	status, err := r.statuses(ctx, o.ref)
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

// statuses maps each kind of anomaly the order ever had to its status.
func (r *raiser) statuses(ctx context.Context, ref int64) (map[string]string, error) {
	rows, err := r.tx.query(ctx, qOrderAnomalies, ref)
	if err != nil {
		return nil, storeError(err, "load anomalies")
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var kind, st string
		if err := rows.Scan(&kind, &st); err != nil {
			return nil, storeError(err, "load anomalies")
		}
		out[kind] = st
	}
	return out, storeError2(rows.Err(), "load anomalies")
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

// redirectView is the order's redirect as the rules see it, nil for none.
func (o *orderRow) redirectView() *engine.Redirect {
	if !o.redirect.Valid {
		return nil
	}
	return &engine.Redirect{Outcome: o.redirect.String, At: o.redirectAt}
}
