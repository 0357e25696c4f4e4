package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/tweed"
	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	sm "github.com/orderstate/orderstate/statemachine"
)

const (
	testTazapaySecret = "tzp_test_secret_0123456789"
	testTweedSecret   = "tweed-merchant-secret"
	testTokenzSecret  = "tokenz-endpoint-secret"
	testYocoSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// testSidecar runs the real server on 127.0.0.1:0 with a SQLite file.
type testSidecar struct {
	*sidecar
	t     testing.TB
	dbPth string
	flags serveFlags
}

func testFlags(dbPath string) serveFlags {
	var f serveFlags
	fs := newFlagSet("serve", "serve", io.Discard)
	f.register(fs)
	if err := parse(fs, []string{"--addr", "127.0.0.1:0", "--db", dbPath, "--sweep-schedule", "@every 1h", "--report-schedule", "@every 24h"}, func(string) string { return "" }); err != nil {
		panic(err)
	}
	f.providers = providerFlags{tazapay: testTazapaySecret, tweed: testTweedSecret, tokenz: testTokenzSecret, yoco: testYocoSecret}
	f.recon.reportsDir = filepath.Join(filepath.Dir(dbPath), "reports")
	return f
}

func startTestSidecar(t testing.TB, dbPath string, mutate ...func(*serveFlags)) *testSidecar {
	t.Helper()
	return startLoggedSidecar(t, dbPath, discardLogger(), mutate...)
}

// startLoggedSidecar is startTestSidecar logging to log.
func startLoggedSidecar(t testing.TB, dbPath string, log *slog.Logger, mutate ...func(*serveFlags)) *testSidecar {
	t.Helper()
	f := testFlags(dbPath)
	for _, m := range mutate {
		m(&f)
	}
	s, err := startSidecar(context.Background(), &f, log, time.Now)
	require.NoError(t, err)
	ts := &testSidecar{sidecar: s, t: t, dbPth: dbPath, flags: f}
	t.Cleanup(func() { _ = ts.stop() })
	return ts
}

func (s *testSidecar) stop() error {
	if s.sidecar == nil {
		return nil
	}
	err := s.close(5 * time.Second)
	s.sidecar = nil
	return err
}

func (s *testSidecar) do(method, path string, body []byte, header http.Header) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.server.URL()+path, bytes.NewReader(body))
	require.NoError(s.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	checkOpenAPI(s.t, method, req.URL.String(), req.Header, body, resp.StatusCode, resp.Header, b)
	return resp.StatusCode, b
}

func (s *testSidecar) order(id string) (int, engine.Order) {
	s.t.Helper()
	status, b := s.do("GET", "/v1/orders/"+id, nil, nil)
	var o engine.Order
	if status == http.StatusOK {
		require.NoError(s.t, json.Unmarshal(b, &o), string(b))
	}
	return status, o
}

// tazapayEvent is a Tazapay webhook body for a checkout.
func tazapayEvent(id, typ, created, checkout, payin, ref, paymentStatus string, amount int64) []byte {
	return []byte(fmt.Sprintf(`{"type":%q,"created_at":%q,"id":%q,"object":"event","data":{"id":%q,"object":"checkout","payin":%q,`+
		`"invoice_currency":"USD","amount":%d,"amount_paid":%d,"status":"active","payment_status":%q,"reference_id":%q,"metadata":{}}}`,
		typ, created, id, checkout, payin, amount, amount, paymentStatus, ref))
}

func signedTazapay(body []byte) http.Header { return tazapay.Sign(testTazapaySecret, body) }

func TestEndToEnd_RegisterWebhooksQueryRestart(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "orderstate.db")
	s := startTestSidecar(t, dbPath)

	status, body := s.do("PUT", "/v1/orders/order_10042", []byte(`{"provider":"tazapay","checkout_id":"chk_A","amount":4999,"currency":"USD","mode":"live"}`), nil)
	require.Equal(t, http.StatusOK, status, string(body))

	// Arrival order: paid first, then the attempt, then the creation.
	for _, b := range [][]byte{
		tazapayEvent("evt_3", "checkout.paid", "2025-05-14T06:41:22Z", "chk_A", "pay_A", "order_10042", "paid", 4999),
		tazapayEvent("evt_1", "checkout.created", "2025-05-14T06:30:00Z", "chk_A", "pay_A", "order_10042", "unpaid", 4999),
	} {
		status, body := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
		require.Equal(t, http.StatusOK, status, string(body))
	}
	status, o := s.order("order_10042")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, sm.Paid, o.State)
	require.Equal(t, int64(4999), o.Amount)
	require.Equal(t, "USD", o.Currency)
	require.Equal(t, "live", o.Mode)
	require.Len(t, o.Events, 2)
	require.Equal(t, "evt_3", o.Events[0].ProviderEventID)
	require.Equal(t, sm.Applied, o.Events[0].Result)
	require.Equal(t, sm.Stale, o.Events[1].Result, "a created after paid is stale")
	require.True(t, o.Events[1].OutOfOrder)
	require.NotNil(t, o.Events[1].OccurredAt)
	require.Equal(t, engine.AnomalyOutOfOrder, o.Anomalies[0].Kind)

	// The raw JSON carries the field names the shop codes against.
	_, raw := s.do("GET", "/v1/orders/order_10042", nil, nil)
	var shape map[string]any
	require.NoError(t, json.Unmarshal(raw, &shape))
	for _, k := range []string{"order_id", "provider", "checkout_id", "state", "amount", "currency", "mode", "anomalies", "events"} {
		require.Contains(t, shape, k)
	}
	ev0 := shape["events"].([]any)[0].(map[string]any)
	for _, k := range []string{"provider_event_id", "kind", "result", "occurred_at", "received_at"} {
		require.Contains(t, ev0, k)
	}
	an0 := shape["anomalies"].([]any)[0].(map[string]any)
	for _, k := range []string{"id", "kind", "status", "detail"} {
		require.Contains(t, an0, k)
	}

	status, byCheckout := func() (int, engine.Order) {
		st, b := s.do("GET", "/v1/checkouts/tazapay/chk_A", nil, nil)
		var o engine.Order
		require.NoError(t, json.Unmarshal(b, &o))
		return st, o
	}()
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "order_10042", byCheckout.OrderID)

	require.NoError(t, s.stop())
	s2 := startTestSidecar(t, dbPath)
	status, again := s2.order("order_10042")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, raw, func() []byte { _, b := s2.do("GET", "/v1/orders/order_10042", nil, nil); return b }(),
		"the same answer after a restart on the same file")
	require.Equal(t, o.State, again.State)
}

func TestEndToEnd_SameWebhookThreeTimes(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	b := tazapayEvent("evt_9", "checkout.paid", "2025-05-14T06:41:22Z", "chk_9", "pay_9", "order_9", "paid", 100)
	var results []string
	for range 3 {
		status, body := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
		require.Equal(t, http.StatusOK, status, string(body))
		var res engine.IngestResult
		require.NoError(t, json.Unmarshal(body, &res))
		results = append(results, string(res.Result))
	}
	require.Equal(t, []string{"applied", "duplicate", "duplicate"}, results)
	st, b2 := s.do("GET", "/v1/checkouts/tazapay/chk_9", nil, nil)
	require.Equal(t, http.StatusOK, st)
	var o engine.Order
	require.NoError(t, json.Unmarshal(b2, &o))
	applied, dups := 0, 0
	for _, e := range o.Events {
		switch e.Result {
		case sm.Applied:
			applied++
		case sm.Duplicate:
			dups++
		}
	}
	require.Equal(t, 1, applied)
	require.Equal(t, 2, dups)
	require.Equal(t, 2, o.Anomalies[0].Count, "the duplicate anomaly counts both redeliveries")
	_, metrics := s.do("GET", "/metrics", nil, nil)
	require.Contains(t, string(metrics), `orderstate_webhooks_total{provider="tazapay",result="duplicate"} 2`)
}

// TestEndToEnd_TweedReplayUnderAnotherDeliveryHeader: Tweed signs the body
// alone, so a signed webhook sent again with a new X-Tweed-Delivery is the
// same fact, answered as a duplicate, never applied or flagged again.
func TestEndToEnd_TweedReplayUnderAnotherDeliveryHeader(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	const checkout = "3f0c9a52-6c1e-4d7b-9a51-0b6f2e7d4c11"
	st, body := s.do("PUT", "/v1/orders/SO-884", []byte(`{"provider":"tweed","checkout_id":"`+checkout+`","amount":1080,"currency":"USD","mode":"live"}`), nil)
	require.Equal(t, http.StatusOK, st, string(body))
	tweedBody := func(status, payment string) []byte {
		return []byte(`{"type":"CHECKOUT_STATUS_UPDATED","data":{"checkoutData":{"checkoutId":"` + checkout +
			`","customParams":{"orderRef":"SO-884"}},"status":"` + status + `"` + payment + `}}`)
	}
	created := tweedBody("CREATED", "")
	done := tweedBody("DONE", `,"paymentData":{"status":"succeeded","amount":1080,"created":1738706000,"currency":"usd","livemode":true}`)
	for _, d := range []struct {
		body     []byte
		delivery string
		want     string
	}{
		{created, "dlv-1", "applied"},
		{done, "dlv-2", "applied"},
		{done, "dlv-2-again", "duplicate"},
		// Before the fix, the old creation under a new header was applied
		// again after the payment, and flagged out_of_order.
		{created, "dlv-3", "duplicate"},
		{created, "", "duplicate"},
		{created, "dlv-4 [x](javascript:y) \u009b" + strings.Repeat("z", 200), "duplicate"},
	} {
		h := tweed.Sign(testTweedSecret, d.body)
		if d.delivery != "" {
			h.Set(tweed.DeliveryHeader, d.delivery)
		}
		st, body := s.do("POST", "/webhooks/tweed", d.body, h)
		require.Equal(t, http.StatusOK, st, string(body))
		var res engine.IngestResult
		require.NoError(t, json.Unmarshal(body, &res))
		require.Equal(t, d.want, string(res.Result), "%s under %q", body, d.delivery)
	}

	st, o := s.order("SO-884")
	require.Equal(t, http.StatusOK, st)
	require.Equal(t, sm.Paid, o.State)
	require.Len(t, o.Events, 6, "every delivery is on the timeline")
	applied := map[sm.Kind]int{}
	var ids []string
	for _, e := range o.Events {
		if e.Result == sm.Applied {
			applied[e.Kind]++
		}
		require.False(t, e.OutOfOrder, "%+v", e)
		ids = append(ids, e.ProviderEventID)
	}
	require.Equal(t, map[sm.Kind]int{sm.KindCheckoutCreated: 1, sm.KindPaid: 1}, applied, "one applied event per signed body")
	require.Equal(t, "dlv-4xjavascript:y"+strings.Repeat("z", 82), ids[5], "the header is shown cleaned and cut at 100 characters")
	require.Regexp(t, `^CREATED:[0-9a-f]{12}$`, ids[4], "without a header the body's hash names the event")
	for _, a := range o.Anomalies {
		require.NotEqual(t, engine.AnomalyOutOfOrder, a.Kind, "a replay is not an event out of order: %+v", a)
	}
}

func TestEndToEnd_RejectedRequestsChangeNothing(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "o.db")
	s := startTestSidecar(t, dbPath)
	good := tazapayEvent("evt_1", "checkout.paid", "2025-05-14T06:41:22Z", "chk_1", "pay_1", "order_1", "paid", 100)
	before := countRows(t, dbPath)

	cases := []struct {
		name    string
		path    string
		body    []byte
		header  http.Header
		status  int
		message string
	}{
		{"BadSignature", "/webhooks/tazapay", good, tazapay.Sign("wrong-secret", good), 401, "signature"},
		{"MissingSignature", "/webhooks/tazapay", good, http.Header{"Content-Type": {"application/json"}}, 401, "signature"},
		{"BodyChangedAfterSigning", "/webhooks/tazapay", bytes.Replace(good, []byte("100"), []byte("900"), 1), signedTazapay(good), 401, "signature"},
		{"MalformedJSON", "/webhooks/tazapay", []byte(`{"id":"evt_x","created_at":"2025-05-14T06:41:22Z","type":`), signedTazapay([]byte(`{"id":"evt_x","created_at":"2025-05-14T06:41:22Z","type":`)), 0, ""},
		{"Oversize", "/webhooks/tazapay", bytes.Repeat([]byte(" "), 300<<10), signedTazapay(good), 413, "larger than"},
		{"UnknownProvider", "/webhooks/paypalish", good, signedTazapay(good), 404, "paypalish"},
		{"WrongContentType", "/webhooks/tazapay", good, http.Header{"Content-Type": {"text/html"}, "Signature": signedTazapay(good)["Signature"]}, 415, "not json"},
	}
	for _, tc := range cases {
		status, body := s.do("POST", tc.path, tc.body, tc.header)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(body, &e), "%s: %s", tc.name, body)
		if tc.status == 0 { // malformed JSON whose signature cannot even be checked is refused either way
			require.Contains(t, []int{400, 401}, status, tc.name)
		} else {
			require.Equal(t, tc.status, status, "%s: %s", tc.name, body)
			require.Contains(t, strings.ToLower(e.Error.Message), tc.message, tc.name)
		}
		require.NotEmpty(t, e.Error.Code, tc.name)
	}
	require.Equal(t, before, countRows(t, dbPath), "no table changed")
}

func TestAPI_ShopEndpoints(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"), func(f *serveFlags) { f.token = "s3cret" })
	auth := http.Header{"Authorization": {"Bearer s3cret"}}

	status, body := s.do("GET", "/v1/orders/x", nil, nil)
	require.Equal(t, 401, status, string(body))
	status, _ = s.do("GET", "/v1/orders/x", nil, http.Header{"Authorization": {"Bearer wrong"}})
	require.Equal(t, 401, status)
	status, body = s.do("GET", "/v1/orders/x", nil, auth)
	require.Equal(t, 404, status, string(body))

	status, body = s.do("PUT", "/v1/orders/o1", []byte(`{"provider":"nope","checkout_id":"c","amount":1,"currency":"USD"}`), auth)
	require.Equal(t, 400, status)
	require.Contains(t, string(body), "provider must be one of")
	status, _ = s.do("PUT", "/v1/orders/o1", []byte(`{"provider":"tazapay",`), auth)
	require.Equal(t, 400, status)
	status, _ = s.do("PUT", "/v1/orders/o1", []byte(`{"provider":"tazapay","checkout_id":"c","amount":1,"currency":"USD","colour":"red"}`), auth)
	require.Equal(t, 400, status, "unknown fields are refused so typos surface")
	status, body = s.do("PUT", "/v1/orders/o1", []byte(`{"provider":"tazapay","checkout_id":"c","amount":1,"currency":"usd"}`), auth)
	require.Equal(t, 200, status, string(body))
	status, _ = s.do("PUT", "/v1/orders/o1", []byte(`{"provider":"tazapay","checkout_id":"c","amount":2,"currency":"USD"}`), auth)
	require.Equal(t, 409, status)

	status, body = s.do("POST", "/v1/orders/o1/redirect", []byte(`{"outcome":"maybe"}`), auth)
	require.Equal(t, 400, status, string(body))
	status, body = s.do("POST", "/v1/orders/o1/redirect", []byte(`{"outcome":"success"}`), auth)
	require.Equal(t, 200, status, string(body))
	require.Contains(t, string(body), `"outcome": "success"`)

	status, body = s.do("GET", "/v1/anomalies?kind=bogus", nil, auth)
	require.Equal(t, 400, status, string(body))
	status, body = s.do("GET", "/v1/anomalies?status=open", nil, auth)
	require.Equal(t, 200, status, string(body))
	require.Contains(t, string(body), `"anomalies"`)

	status, _ = s.do("GET", "/healthz", nil, nil)
	require.Equal(t, 200, status, "health needs no token")
	status, _ = s.do("GET", "/readyz", nil, nil)
	require.Equal(t, 200, status)
	status, body = s.do("GET", "/metrics", nil, nil)
	require.Equal(t, 200, status)
	require.Contains(t, string(body), "orderstate_webhooks_in_flight")
	require.Contains(t, string(body), `orderstate_reconciler_runs_total{job="sweep",result="ok"} 1`, "the sweep run at start is counted")
	status, body = s.do("DELETE", "/v1/orders/o1", nil, auth)
	require.Equal(t, 405, status)
	require.JSONEq(t, `{"error":{"code":"method_not_allowed","message":"/v1/orders/o1 takes GET or PUT, not DELETE"}}`, string(body))
	for path, allow := range map[string]string{"/v1/orders/o1": "GET, PUT", "/webhooks/tazapay": "POST", "/healthz": "GET"} {
		req, err := http.NewRequest("PATCH", s.server.URL()+path, nil)
		require.NoError(t, err)
		req.Header = auth.Clone()
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 405, resp.StatusCode, path)
		require.Equal(t, allow, resp.Header.Get("Allow"), path)
	}
	status, body = s.do("GET", "/v1/nothing/here", nil, auth)
	require.Equal(t, 404, status)
	require.Contains(t, string(body), "no route GET /v1/nothing/here")
}

func TestEndToEnd_UnconfiguredProviderSaysWhatToSet(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"), func(f *serveFlags) { f.providers.tokenz = "" })
	status, body := s.do("POST", "/webhooks/tokenz", []byte(`{}`), http.Header{"Content-Type": {"application/json"}})
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, string(body), "provider tokenz is not configured: set ORDERSTATE_TOKENZ_SECRET")
	status, body = s.do("POST", "/webhooks/paypal", []byte(`{}`), nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, string(body), `no provider \"paypal\"`)
}

// countRows counts every table's rows of the store at path.
func countRows(t *testing.T, path string) map[string]int {
	t.Helper()
	counts, err := sqlite.CountRows(context.Background(), path)
	require.NoError(t, err)
	return counts
}
