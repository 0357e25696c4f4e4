package reconcile_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	"github.com/orderstate/orderstate/reconcile"
	sm "github.com/orderstate/orderstate/statemachine"
)

// clock is a settable clock shared by the store and the reconciler.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var start = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// env is a store on a real SQLite file with a reconciler over it.
type env struct {
	t     *testing.T
	ctx   context.Context
	clock *clock
	db    *sqlite.DB
	rec   *reconcile.Reconciler
	n     int
}

func setup(t *testing.T, cfg reconcile.Config) *env {
	t.Helper()
	c := newClock(start)
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "orderstate.db"), sqlite.Options{Now: c.Now, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	rec, err := reconcile.New(db, cfg, c.Now, quiet())
	require.NoError(t, err)
	return &env{t: t, ctx: context.Background(), clock: c, db: db, rec: rec}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (e *env) register(orderID, provider, checkout string, amount int64, currency string) {
	e.t.Helper()
	_, err := e.db.RegisterOrder(e.ctx, engine.Registration{OrderID: orderID, Provider: provider, CheckoutID: checkout,
		Amount: amount, Currency: currency, Mode: engine.ModeLive})
	require.NoError(e.t, err)
}

func (e *env) redirect(orderID, outcome string) {
	e.t.Helper()
	_, err := e.db.ReportRedirect(e.ctx, orderID, outcome)
	require.NoError(e.t, err)
}

// ev is a webhook about checkout on provider, its provider time lag before
// arrival.
func (e *env) ev(provider, checkout string, kind sm.Kind, amount int64, mods ...func(*engine.Event)) engine.Event {
	e.n++
	id := fmt.Sprintf("evt_%03d", e.n)
	ev := engine.Event{Provider: provider, EventID: id, DedupeKey: id, Type: provider + "." + string(kind), Kind: kind,
		CheckoutID: checkout, Amount: amount, Currency: "USD", Mode: engine.ModeLive,
		OccurredAt: e.clock.Now().Add(-2 * time.Second)}
	for _, m := range mods {
		m(&ev)
	}
	return ev
}

func (e *env) ingest(ev engine.Event) engine.IngestResult {
	e.t.Helper()
	res, err := e.db.Ingest(e.ctx, ev, &engine.Request{Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{}`)})
	require.NoError(e.t, err)
	return res
}

func (e *env) sweep() reconcile.SweepResult {
	e.t.Helper()
	res, err := e.rec.Sweep(e.ctx)
	require.NoError(e.t, err)
	return res
}

// anomalies returns the order's anomalies by kind.
func (e *env) anomalies(orderID string) map[string]engine.Anomaly {
	e.t.Helper()
	o, err := e.db.Order(e.ctx, orderID)
	require.NoError(e.t, err)
	out := map[string]engine.Anomaly{}
	for _, a := range o.Anomalies {
		out[a.Kind] = a
	}
	return out
}

func changes(res reconcile.SweepResult, action string) []string {
	out := []string{}
	for _, c := range res.Changes {
		if c.Action == action {
			out = append(out, c.OrderID+"/"+c.Kind)
		}
	}
	return out
}

func withCurrency(c string) func(*engine.Event) { return func(e *engine.Event) { e.Currency = c } }
func withMode(m string) func(*engine.Event)     { return func(e *engine.Event) { e.Mode = m } }
func withReference(ref string) func(*engine.Event) {
	return func(e *engine.Event) { e.Reference = ref }
}
func withID(id string) func(*engine.Event) {
	return func(e *engine.Event) { e.EventID, e.DedupeKey = id, id }
}
func at(t time.Time) func(*engine.Event) { return func(e *engine.Event) { e.OccurredAt = t } }
