package poll_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/yoco"
	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	"github.com/orderstate/orderstate/poll"
	"github.com/orderstate/orderstate/reconcile"
	sm "github.com/orderstate/orderstate/statemachine"
)

const (
	apiKey     = "tz_key_visible_only_in_tests"
	apiSecret  = "tz_secret_never_logged"
	yocoKey    = "sk_test_never_logged"
	hookSecret = "tazapay_webhook_secret"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock               { return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }
func fixed(v float64) func() float64 { return func() float64 { return v } }
func openStore(t *testing.T, now func() time.Time) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "o.db"), sqlite.Options{Now: now})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

type bundle struct {
	clock *clock
	db    *sqlite.DB
	tz    *tazapay.FakeAPI
	yc    *yoco.FakeAPI
	svc   *poll.Service
	logs  *bytes.Buffer
	rec   *reconcile.Reconciler
}

func setup(t *testing.T, cfg poll.Config) *bundle {
	t.Helper()
	b := &bundle{clock: newClock(), tz: tazapay.NewFakeAPI(apiKey, apiSecret), yc: yoco.NewFakeAPI(yocoKey), logs: &bytes.Buffer{}}
	t.Cleanup(b.tz.Close)
	t.Cleanup(b.yc.Close)
	b.db = openStore(t, b.clock.Now)
	if cfg.Rate == 0 {
		cfg.Rate = 1000
	}
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: b.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b.svc = poll.New(b.db, cfg, b.clock.Now, log,
		tazapay.NewPoller(apiKey, apiSecret, b.tz.URL(), 300*time.Millisecond),
		yoco.NewPoller(yocoKey, b.yc.URL(), 300*time.Millisecond))
	b.svc.Jitter = fixed(0.5)
	var err error
	b.rec, err = reconcile.New(b.db, reconcile.Config{RedirectGrace: 15 * time.Minute}, b.clock.Now, log)
	require.NoError(t, err)
	return b
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// order registers an order and reports the customer's successful return.
func (b *bundle) order(t *testing.T, id, provider, checkout string) {
	t.Helper()
	ctx := context.Background()
	cur := "USD"
	if provider == "yoco" {
		cur = "ZAR"
	}
	_, err := b.db.RegisterOrder(ctx, engine.Registration{OrderID: id, Provider: provider, CheckoutID: checkout, Amount: 4999, Currency: cur, Mode: engine.ModeLive})
	require.NoError(t, err)
	_, err = b.db.ReportRedirect(ctx, id, engine.RedirectSuccess)
	require.NoError(t, err)
}

func (b *bundle) get(t *testing.T, id string) *engine.Order {
	t.Helper()
	o, err := b.db.Order(context.Background(), id)
	require.NoError(t, err)
	return o
}

func anomaly(o *engine.Order, kind string) *engine.Anomaly {
	for _, a := range o.Anomalies {
		if a.Kind == kind {
			return &a
		}
	}
	return nil
}

// sweepFlags runs the reconciler's sweep, which raises missing_webhook.
func (b *bundle) sweep(t *testing.T) {
	t.Helper()
	_, err := b.rec.Sweep(context.Background())
	require.NoError(t, err)
}

// tazapayWebhook is checkout.paid for checkout as Tazapay signs it.
func tazapayWebhook(checkout string) *engine.Request {
	body := fmt.Appendf(nil, `{"type":"checkout.paid","created_at":"2026-03-01T09:30:00.5Z","id":"evt_%s","object":"event",
		"data":{"id":"%s","object":"checkout","invoice_currency":"USD","amount":4999,"amount_paid":4999,"status":"active",
		"payment_status":"paid","metadata":{}}}`, checkout, checkout)
	return &engine.Request{Header: tazapay.Sign(hookSecret, body), Body: body}
}

func TestRecoversAMissingWebhook(t *testing.T) {
	b := setup(t, poll.Config{})
	ctx := context.Background()
	b.order(t, "order_tz", "tazapay", "chk_1")
	b.order(t, "order_yc", "yoco", "ch_1")
	b.tz.SetCheckout("chk_1", tazapay.FakeCheckout{PaymentStatus: "paid", Status: "active", Amount: 4999, AmountPaid: 4999, Currency: "USD", Payin: "pay_1"})
	b.yc.SetCheckout("ch_1", yoco.FakeCheckout{Status: "completed", Amount: 4999, Currency: "ZAR", PaymentID: "p_1", Mode: "live"})
	b.clock.Add(20 * time.Minute)
	b.sweep(t)
	require.NotNil(t, anomaly(b.get(t, "order_tz"), engine.AnomalyMissingWebhook))

	b.clock.Add(time.Minute)
	b.svc.Tick(ctx)
	for _, id := range []string{"order_tz", "order_yc"} {
		o := b.get(t, id)
		require.Equal(t, sm.Paid, o.State, id)
		mw := anomaly(o, engine.AnomalyMissingWebhook)
		require.Equal(t, engine.StatusResolved, mw.Status, id)
		require.True(t, strings.HasPrefix(mw.Resolution, engine.RecoveredByPoll), mw.Resolution)
		require.Contains(t, mw.Resolution, "21m0s")
		require.Equal(t, engine.SourcePoll, o.Events[len(o.Events)-1].Source)
	}
	require.Equal(t, 1, b.tz.Calls("chk_1"))
	require.Equal(t, 1, b.yc.Calls("ch_1"))

	// The webhook arrives after all: the same fact, nothing changes.
	b.clock.Add(time.Minute)
	p := engine.NewPipeline(b.db, b.clock.Now, tazapay.New(hookSecret))
	res, err := p.Handle(ctx, "tazapay", tazapayWebhook("chk_1"))
	require.NoError(t, err)
	require.Equal(t, sm.Paid, res.State)
	require.NotEqual(t, sm.Conflict, res.Result)
	o := b.get(t, "order_tz")
	require.Equal(t, sm.Paid, o.State)
	require.Equal(t, int64(4999), o.Captured)
	require.Nil(t, anomaly(o, engine.AnomalyConflict))
	require.Equal(t, engine.SourceWebhook, o.Events[len(o.Events)-1].Source)

	// A paid order is no longer a candidate.
	b.clock.Add(time.Hour)
	b.svc.Tick(ctx)
	require.Equal(t, 1, b.tz.Calls("chk_1"))

	st := b.svc.Stats()
	require.Contains(t, st.Polls, engine.PollCount{Provider: "tazapay", Result: poll.ResultRecovered, Count: 1})
	require.Contains(t, st.Polls, engine.PollCount{Provider: "yoco", Result: poll.ResultRecovered, Count: 1})
	require.NotContains(t, b.logs.String(), apiSecret)
	require.NotContains(t, b.logs.String(), yocoKey)
}

func TestUnpaidChangesNothingAndBacksOff(t *testing.T) {
	b := setup(t, poll.Config{MaxAttempts: 3, BaseBackoff: time.Minute, MaxBackoff: time.Hour})
	ctx := context.Background()
	b.order(t, "order_1", "tazapay", "chk_1")
	b.tz.SetCheckout("chk_1", tazapay.FakeCheckout{PaymentStatus: "unpaid", Status: "active", Amount: 4999, Currency: "USD"})
	b.clock.Add(20 * time.Minute)
	b.sweep(t)

	b.svc.Tick(ctx)
	require.Equal(t, 1, b.tz.Calls("chk_1"))
	o := b.get(t, "order_1")
	require.Equal(t, sm.Pending, o.State, "an unpaid answer changes nothing")
	require.Equal(t, engine.StatusOpen, anomaly(o, engine.AnomalyMissingWebhook).Status, "and the flag stays")
	for _, e := range o.Events {
		require.NotEqual(t, engine.SourcePoll, e.Source, "nothing was stored")
	}

	// The backoff: 1m (jitter fixed at 1x), then 2m, then given up.
	b.svc.Tick(ctx)
	b.clock.Add(59 * time.Second)
	b.svc.Tick(ctx)
	require.Equal(t, 1, b.tz.Calls("chk_1"), "not before the backoff")
	b.clock.Add(time.Second)
	b.svc.Tick(ctx)
	require.Equal(t, 2, b.tz.Calls("chk_1"))
	b.clock.Add(119 * time.Second)
	b.svc.Tick(ctx)
	require.Equal(t, 2, b.tz.Calls("chk_1"), "the second wait is twice the first")
	b.clock.Add(time.Second)
	b.svc.Tick(ctx)
	require.Equal(t, 3, b.tz.Calls("chk_1"))
	for range 5 {
		b.clock.Add(time.Hour)
		b.svc.Tick(ctx)
	}
	require.Equal(t, 3, b.tz.Calls("chk_1"), "MaxAttempts bounds the calls")

	mw := anomaly(b.get(t, "order_1"), engine.AnomalyMissingWebhook)
	require.Equal(t, engine.StatusOpen, mw.Status, "the anomaly stays open")
	require.Contains(t, mw.Note, "gave up after 3 attempts")
	require.Contains(t, mw.Note, "payment_status=unpaid")
	require.Equal(t, 1, b.svc.Stats().GaveUp)

	// Someone may still ask.
	out, err := b.svc.PollOrder(ctx, "order_1")
	require.NoError(t, err)
	require.Equal(t, poll.ResultUnchanged, out.Result)
	require.Equal(t, 4, b.tz.Calls("chk_1"))
}

func TestBackoffJitter(t *testing.T) {
	s := poll.New(nil, poll.Config{BaseBackoff: time.Minute, MaxBackoff: 10 * time.Minute}, nil, nil)
	s.Jitter = fixed(0)
	require.Equal(t, 30*time.Second, s.Backoff(1))
	require.Equal(t, 2*time.Minute, s.Backoff(3))
	require.Equal(t, 5*time.Minute, s.Backoff(20), "capped, then jittered")
	s.Jitter = fixed(0.999)
	require.Less(t, s.Backoff(1), 90*time.Second)
	require.Greater(t, s.Backoff(1), 89*time.Second)
}

func TestContradictionOfAFinalStateIsAConflict(t *testing.T) {
	b := setup(t, poll.Config{})
	ctx := context.Background()
	b.order(t, "order_1", "tazapay", "chk_1")
	p := engine.NewPipeline(b.db, b.clock.Now, tazapay.New(hookSecret))
	_, err := p.Handle(ctx, "tazapay", tazapayWebhook("chk_1"))
	require.NoError(t, err)
	require.Equal(t, sm.Paid, b.get(t, "order_1").State)

	b.tz.SetCheckout("chk_1", tazapay.FakeCheckout{PaymentStatus: "unpaid", Status: "expired", Amount: 4999, Currency: "USD"})
	out, err := b.svc.PollOrder(ctx, "order_1")
	require.NoError(t, err)
	require.Equal(t, poll.ResultConflict, out.Result)
	o := b.get(t, "order_1")
	require.Equal(t, sm.NeedsReview, o.State, "not flipped to expired: a person decides")
	c := anomaly(o, engine.AnomalyConflict)
	require.NotNil(t, c)
	require.Len(t, c.EventSeqs, 2, "both facts: %s", c.Detail)
	require.Contains(t, c.Detail, "checkout.paid")
	require.Contains(t, c.Detail, "payment_status=unpaid status=expired")
}

func TestRateLimitSpacesTheCalls(t *testing.T) {
	b := setup(t, poll.Config{Rate: 10, Limit: 4}) // two pages
	ctx := context.Background()
	for i := range 6 {
		id := fmt.Sprintf("chk_%d", i)
		b.order(t, fmt.Sprintf("order_%d", i), "tazapay", id)
		b.tz.SetCheckout(id, tazapay.FakeCheckout{PaymentStatus: "unpaid", Status: "active", Amount: 4999, Currency: "USD"})
	}
	b.clock.Add(20 * time.Minute)
	start := time.Now()
	b.svc.Tick(ctx)
	took := time.Since(start)
	require.Equal(t, 6, b.tz.Total())
	require.GreaterOrEqual(t, took, 450*time.Millisecond, "6 calls at 10/s with a burst of 1 take at least 0.5s")
}

func TestRetryAfterHoldsTheWholeProvider(t *testing.T) {
	b := setup(t, poll.Config{BaseBackoff: time.Second})
	ctx := context.Background()
	for i := range 3 {
		id := fmt.Sprintf("chk_%d", i)
		b.order(t, fmt.Sprintf("order_%d", i), "tazapay", id)
		b.tz.SetCheckout(id, tazapay.FakeCheckout{PaymentStatus: "paid", Status: "active", Amount: 4999, AmountPaid: 4999, Currency: "USD"})
	}
	b.clock.Add(20 * time.Minute)
	b.tz.RateLimit(1, "120")
	b.svc.Tick(ctx)
	require.Equal(t, 1, b.tz.Total(), "after a 429 the pass stops")
	b.clock.Add(119 * time.Second)
	b.svc.Tick(ctx)
	require.Equal(t, 1, b.tz.Total(), "Retry-After: 120 is honoured for every order of the provider")
	out, err := b.svc.PollOrder(ctx, "order_0")
	require.Equal(t, engine.EPROVIDER, engine.ErrorCode(err))
	require.Equal(t, "rate_limited", out.Result)
	require.Equal(t, 1, b.tz.Total(), "even an asked-for poll waits")
	b.clock.Add(time.Second)
	b.svc.Tick(ctx)
	require.Equal(t, 4, b.tz.Total())
	for i := range 3 {
		require.Equal(t, sm.Paid, b.get(t, fmt.Sprintf("order_%d", i)).State)
	}
	require.Contains(t, b.svc.Stats().Polls, engine.PollCount{Provider: "tazapay", Result: "rate_limited", Count: 1})
}

func TestProviderDownForTheWholeRun(t *testing.T) {
	b := setup(t, poll.Config{MaxAttempts: 2, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 5 {
		id := fmt.Sprintf("chk_%d", i)
		b.order(t, fmt.Sprintf("order_%d", i), "tazapay", id)
	}
	b.clock.Add(20 * time.Minute)
	b.sweep(t)
	// Down: half the calls hang past the poller's timeout, the rest 503.
	b.tz.Down(-1)
	b.tz.Slow(time.Second)
	done := make(chan struct{})
	go func() { b.svc.Run(ctx); close(done) }()

	// Ingest and the sweep go on at their own pace meanwhile.
	p := engine.NewPipeline(b.db, b.clock.Now, tazapay.New(hookSecret))
	for i := range 20 {
		id := fmt.Sprintf("chk_other_%d", i)
		start := time.Now()
		_, err := p.Handle(ctx, "tazapay", tazapayWebhook(id))
		require.NoError(t, err)
		require.Less(t, time.Since(start), 250*time.Millisecond, "a webhook waits on no poll")
	}
	start := time.Now()
	b.sweep(t)
	require.Less(t, time.Since(start), 250*time.Millisecond, "the sweep waits on no poll")

	require.Eventually(t, func() bool {
		b.clock.Add(time.Second) // past each order's backoff
		return b.svc.Stats().GaveUp == 5
	}, 30*time.Second, 20*time.Millisecond)
	cancel()
	<-done
	for i := range 5 {
		o := b.get(t, fmt.Sprintf("order_%d", i))
		require.Equal(t, sm.Pending, o.State)
		mw := anomaly(o, engine.AnomalyMissingWebhook)
		require.Equal(t, engine.StatusOpen, mw.Status)
		require.Contains(t, mw.Note, "gave up after 2 attempts")
		require.Regexp(t, `did not answer|HTTP 503`, mw.Note, "the reason")
	}
	require.Equal(t, 10, b.tz.Total(), "two attempts per order, no more")
	require.NotContains(t, b.logs.String(), apiSecret)
	require.NotContains(t, b.logs.String(), apiKey)
}

func TestPollOrderRefusals(t *testing.T) {
	b := setup(t, poll.Config{Unpollable: []string{"tokenz"}})
	ctx := context.Background()
	_, err := b.svc.PollOrder(ctx, "nobody")
	require.Equal(t, engine.ENOTFOUND, engine.ErrorCode(err))
	_, err = b.db.RegisterOrder(ctx, engine.Registration{OrderID: "tk", Provider: "tokenz", CheckoutID: "order_x", Amount: 1, Currency: "TWD"})
	require.NoError(t, err)
	_, err = b.svc.PollOrder(ctx, "tk")
	require.Equal(t, engine.EINVALID, engine.ErrorCode(err))
	require.Contains(t, err.Error(), "cannot be polled")
	b.order(t, "o404", "tazapay", "chk_unknown")
	out, err := b.svc.PollOrder(ctx, "o404")
	require.Equal(t, engine.EPROVIDER, engine.ErrorCode(err))
	require.Equal(t, "not_found", out.Result)
}
