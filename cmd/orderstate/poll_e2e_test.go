package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/yoco"
	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/poll"
	"github.com/orderstate/orderstate/reconcile"
	sm "github.com/orderstate/orderstate/statemachine"
)

const (
	testTazapayAPIKey    = "tz_api_key_e2e"
	testTazapayAPISecret = "tz_api_secret_e2e_never_shown"
	testYocoAPIKey       = "sk_test_e2e_never_shown"
)

// pollingSidecar runs serve with polling on against fake provider APIs.
func pollingSidecar(t *testing.T, tz *tazapay.FakeAPI, yc *yoco.FakeAPI, mutate ...func(*serveFlags)) (*testSidecar, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	all := append([]func(*serveFlags){func(f *serveFlags) {
		f.poll.tazapayKey, f.poll.tazapaySecret, f.poll.tazapayURL = testTazapayAPIKey, testTazapayAPISecret, tz.URL()
		f.poll.yocoKey, f.poll.yocoURL = testYocoAPIKey, yc.URL()
		f.poll.interval, f.poll.grace, f.poll.timeout = 50*time.Millisecond, time.Millisecond, 300*time.Millisecond
		f.poll.rate = 100
	}}, mutate...)
	return startLoggedSidecar(t, filepath.Join(t.TempDir(), "orderstate.db"), log, all...), logs
}

func fakeAPIs(t *testing.T) (*tazapay.FakeAPI, *yoco.FakeAPI) {
	tz, yc := tazapay.NewFakeAPI(testTazapayAPIKey, testTazapayAPISecret), yoco.NewFakeAPI(testYocoAPIKey)
	t.Cleanup(tz.Close)
	t.Cleanup(yc.Close)
	return tz, yc
}

func (s *testSidecar) registerRedirected(id, provider, checkout, currency string) {
	s.t.Helper()
	status, body := s.do("PUT", "/v1/orders/"+id, []byte(`{"provider":"`+provider+`","checkout_id":"`+checkout+`","amount":4999,"currency":"`+currency+`","mode":"live"}`), nil)
	require.Equal(s.t, http.StatusOK, status, string(body))
	status, body = s.do("POST", "/v1/orders/"+id+"/redirect", []byte(`{"outcome":"success"}`), nil)
	require.Equal(s.t, http.StatusOK, status, string(body))
}

// TestEndToEnd_PollRecoversAMissingWebhook: the provider has the payment,
// the webhook never came; the background poll finds it, the timeline says
// "source": "poll", and the webhook that finally comes changes nothing.
func TestEndToEnd_PollRecoversAMissingWebhook(t *testing.T) {
	t.Parallel()
	tz, yc := fakeAPIs(t)
	s, logs := pollingSidecar(t, tz, yc)
	tz.SetCheckout("chk_P1", tazapay.FakeCheckout{PaymentStatus: "paid", Status: "active", Amount: 4999, AmountPaid: 4999, Currency: "USD", Payin: "pay_P1", Reference: "order_p1"})
	yc.SetCheckout("ch_P2", yoco.FakeCheckout{Status: "completed", Amount: 4999, Currency: "ZAR", PaymentID: "p_P2", Mode: "live"})
	s.registerRedirected("order_p1", "tazapay", "chk_P1", "USD")
	s.registerRedirected("order_p2", "yoco", "ch_P2", "ZAR")

	for _, id := range []string{"order_p1", "order_p2"} {
		require.Eventually(t, func() bool { _, o := s.order(id); return o.State == sm.Paid }, 10*time.Second, 20*time.Millisecond, id)
		_, o := s.order(id)
		last := o.Events[len(o.Events)-1]
		require.Equal(t, engine.SourcePoll, last.Source)
		// The API's JSON names the source of every event.
		_, raw := s.do("GET", "/v1/orders/"+id, nil, nil)
		require.Contains(t, string(raw), `"source": "poll"`)
	}

	// The webhook comes after all: a duplicate of the fact, state unchanged.
	body := tazapayEvent("evt_late", "checkout.paid", "2026-03-01T10:00:00Z", "chk_P1", "pay_P1", "order_p1", "paid", 4999)
	status, resp := s.do("POST", "/webhooks/tazapay", body, signedTazapay(body))
	require.Equal(t, http.StatusOK, status, string(resp))
	_, o := s.order("order_p1")
	require.Equal(t, sm.Paid, o.State)
	require.Equal(t, int64(4999), o.Captured)
	for _, a := range o.Anomalies {
		require.NotEqual(t, engine.AnomalyConflict, a.Kind)
	}
	require.Equal(t, engine.SourceWebhook, o.Events[len(o.Events)-1].Source)
	require.Equal(t, o.Events[len(o.Events)-1].FromState, o.Events[len(o.Events)-1].ToState)

	// /metrics: polls by provider and result, and who can be polled.
	_, metrics := s.do("GET", "/metrics", nil, nil)
	for _, want := range []string{`orderstate_polls_total{provider="tazapay",result="recovered"} 1`,
		`orderstate_polls_total{provider="yoco",result="recovered"} 1`,
		`orderstate_provider_pollable{provider="tokenz"} 0`, `orderstate_provider_pollable{provider="tweed"} 0`,
		`orderstate_provider_pollable{provider="tazapay"} 1`} {
		require.Contains(t, string(metrics), want)
	}
	require.NotContains(t, logs.String(), testTazapayAPISecret)
	require.NotContains(t, logs.String(), testYocoAPIKey)
}

// TestEndToEnd_PollNow: POST /v1/orders/{id}/poll asks now and answers
// what it did; a contradiction of the outcome is a conflict; a provider
// that cannot be polled, or gives no answer, says so.
func TestEndToEnd_PollNow(t *testing.T) {
	t.Parallel()
	tz, yc := fakeAPIs(t)
	s, _ := pollingSidecar(t, tz, yc, func(f *serveFlags) { f.poll.interval = time.Hour })

	status, body := s.do("PUT", "/v1/orders/order_c", []byte(`{"provider":"tazapay","checkout_id":"chk_C","amount":4999,"currency":"USD"}`), nil)
	require.Equal(t, http.StatusOK, status, string(body))
	hook := tazapayEvent("evt_c", "checkout.paid", "2026-03-01T10:00:00Z", "chk_C", "pay_C", "order_c", "paid", 4999)
	status, _ = s.do("POST", "/webhooks/tazapay", hook, signedTazapay(hook))
	require.Equal(t, http.StatusOK, status)

	tz.SetCheckout("chk_C", tazapay.FakeCheckout{PaymentStatus: "unpaid", Status: "expired", Amount: 4999, Currency: "USD"})
	status, body = s.do("POST", "/v1/orders/order_c/poll", nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	var ans struct {
		Poll  poll.Outcome `json:"poll"`
		Order engine.Order `json:"order"`
	}
	require.NoError(t, json.Unmarshal(body, &ans))
	require.Equal(t, poll.ResultConflict, ans.Poll.Result)
	require.Equal(t, sm.NeedsReview, ans.Order.State)
	var conflict *engine.Anomaly
	for _, a := range ans.Order.Anomalies {
		if a.Kind == engine.AnomalyConflict {
			conflict = &a
		}
	}
	require.NotNil(t, conflict)
	require.Len(t, conflict.EventSeqs, 2)

	// Not found at the provider: a 502 that says what was tried.
	s.registerRedirected("order_x", "tazapay", "chk_unknown", "USD")
	status, body = s.do("POST", "/v1/orders/order_x/poll", nil, nil)
	require.Equal(t, http.StatusBadGateway, status, string(body))
	require.Contains(t, string(body), `"result": "not_found"`)
	require.Contains(t, string(body), `"code": "provider_error"`)

	// Rate limited: the provider's Retry-After is passed on.
	tz.RateLimit(1, "30")
	status, body = s.do("POST", "/v1/orders/order_x/poll", nil, nil)
	require.Equal(t, http.StatusBadGateway, status, string(body))
	require.Contains(t, string(body), `"result": "rate_limited"`)

	// Tokenz documents no API.
	status, body = s.do("PUT", "/v1/orders/order_t", []byte(`{"provider":"tokenz","checkout_id":"order_T","amount":100,"currency":"TWD"}`), nil)
	require.Equal(t, http.StatusOK, status, string(body))
	status, body = s.do("POST", "/v1/orders/order_t/poll", nil, nil)
	require.Equal(t, http.StatusBadRequest, status, string(body))
	require.Contains(t, string(body), "cannot be polled")
	status, _ = s.do("POST", "/v1/orders/nobody/poll", nil, nil)
	require.Equal(t, http.StatusNotFound, status)
}

// TestEndToEnd_ProviderDownForTheWholeRun: ingest and the sweep go on at
// their pace while every poll hangs or fails; the anomaly stays open with
// the reason once polling gives up.
func TestEndToEnd_ProviderDownForTheWholeRun(t *testing.T) {
	t.Parallel()
	tz, yc := fakeAPIs(t)
	tz.Down(-1)
	tz.Slow(2 * time.Second)
	s, logs := pollingSidecar(t, tz, yc, func(f *serveFlags) {
		f.poll.maxAttempts, f.poll.backoff = 2, 10*time.Millisecond
		f.recon.redirectGrace = time.Millisecond
	})
	s.registerRedirected("order_d", "tazapay", "chk_D", "USD")
	// Sweep now: missing_webhook is raised whatever the polls do.
	start := time.Now()
	rec, err := reconcile.New(s.db, reconcile.Config{RedirectGrace: time.Millisecond}, time.Now, discardLogger())
	require.NoError(t, err)
	_, err = rec.Sweep(t.Context())
	require.NoError(t, err)
	require.Less(t, time.Since(start), time.Second, "the sweep waits on no poll")
	for i := range 20 {
		id := "chk_other_" + strings.Repeat("x", i)
		hook := tazapayEvent("evt_"+id, "checkout.paid", "2026-03-01T10:00:00Z", id, "", "", "paid", 100)
		start := time.Now()
		status, body := s.do("POST", "/webhooks/tazapay", hook, signedTazapay(hook))
		require.Equal(t, http.StatusOK, status, string(body))
		require.Less(t, time.Since(start), time.Second, "a webhook waits on no poll")
	}
	require.Eventually(t, func() bool {
		_, o := s.order("order_d")
		for _, a := range o.Anomalies {
			if a.Kind == engine.AnomalyMissingWebhook && strings.Contains(a.Note, "gave up after 2 attempts") {
				require.Equal(t, engine.StatusOpen, a.Status)
				require.Contains(t, a.Note, "did not answer")
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond)
	require.NotContains(t, logs.String(), testTazapayAPISecret)
}

func TestServe_PollFlagsAreChecked(t *testing.T) {
	t.Parallel()
	f := testFlags(filepath.Join(t.TempDir(), "o.db"))
	f.poll.tazapayKey = "only_the_key"
	_, err := startSidecar(t.Context(), &f, discardLogger(), time.Now)
	require.ErrorContains(t, err, "ORDERSTATE_TAZAPAY_API_SECRET")
}

// TestCLI_Poll: orderstate poll ORDER_ID asks now, against the store serve
// writes, and prints what it did.
func TestCLI_Poll(t *testing.T) {
	t.Parallel()
	tz, _ := fakeAPIs(t)
	dbPath := filepath.Join(t.TempDir(), "orderstate.db")
	s := startTestSidecar(t, dbPath)
	s.registerRedirected("order_cli", "tazapay", "chk_CLI", "USD")
	require.NoError(t, s.stop())
	tz.SetCheckout("chk_CLI", tazapay.FakeCheckout{PaymentStatus: "paid", Status: "active", Amount: 4999, AmountPaid: 4999, Currency: "USD"})

	env := map[string]string{"ORDERSTATE_DB": dbPath, "ORDERSTATE_TAZAPAY_API_KEY": testTazapayAPIKey,
		"ORDERSTATE_TAZAPAY_API_SECRET": testTazapayAPISecret, "ORDERSTATE_TAZAPAY_API_URL": tz.URL()}
	var stdout, stderr strings.Builder
	err := run(t.Context(), []string{"poll", "order_cli"}, func(k string) string { return env[k] }, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	require.Contains(t, stdout.String(), "Polled tazapay about order order_cli: recovered")
	require.Contains(t, stdout.String(), "payment_status=paid")
	require.NotContains(t, stdout.String()+stderr.String(), testTazapayAPISecret)

	stdout.Reset()
	err = run(t.Context(), []string{"poll", "--json", "order_cli"}, func(k string) string { return env[k] }, &stdout, &stderr)
	require.NoError(t, err)
	require.Contains(t, stdout.String(), `"result": "unchanged"`, "asked again, the same fact")

	delete(env, "ORDERSTATE_TAZAPAY_API_KEY")
	delete(env, "ORDERSTATE_TAZAPAY_API_SECRET")
	err = run(t.Context(), []string{"poll", "order_cli"}, func(k string) string { return env[k] }, &stdout, &stderr)
	require.ErrorContains(t, err, "ORDERSTATE_TAZAPAY_API_KEY")
}
