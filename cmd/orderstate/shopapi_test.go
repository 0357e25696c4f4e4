package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tokenz"
	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/reconcile"
)

// apiError decodes an error answer, failing the test if body is not one.
func apiError(t *testing.T, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	require.NotEmpty(t, e.Error.Code, string(body))
	return e.Error.Code, e.Error.Message
}

// A filter value nobody can match would answer an empty list, which reads
// as "nothing to act on"; a typo must be told apart from that.
func TestAPI_AnomalyFiltersRefuseUnknownValues(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	// One duplicate delivery gives an open info anomaly to find.
	b := tazapayEvent("evt_f1", "checkout.paid", "2025-05-14T06:41:22Z", "chk_f1", "pay_f1", "order_f1", "paid", 100)
	for range 2 {
		st, body := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
		require.Equal(t, http.StatusOK, st, string(body))
	}

	refused := []struct{ query, message string }{
		{"kind=bogus", `unknown anomaly kind "bogus"; kinds: out_of_order, duplicate,`},
		{"status=Open", `unknown anomaly status "Open"; statuses: open, resolved, acknowledged`},
		{"status=bogus", `unknown anomaly status "bogus"; statuses: open, resolved, acknowledged`},
		{"severity=bogus", `unknown severity "bogus"; severities: action, info`},
		{"severity=Info", `unknown severity "Info"; severities: action, info`},
		{"provider=bogus", `unknown provider "bogus"; providers: tazapay, tokenz, tweed, yoco`},
		{"provider=Tazapay", `unknown provider "Tazapay"; providers: tazapay, tokenz, tweed, yoco`},
		{"stauts=open", `unknown query parameter "stauts"; parameters: kind, provider, status,`},
		{"kind=stuck&kind=duplicate", `query parameter "kind" given 2 times; give it once`},
	}
	for _, tc := range refused {
		st, body := s.do("GET", "/v1/anomalies?"+tc.query, nil, nil)
		require.Equal(t, http.StatusBadRequest, st, "%s: %s", tc.query, body)
		code, msg := apiError(t, body)
		require.Equal(t, engine.EINVALID, code, tc.query)
		require.Contains(t, msg, tc.message, tc.query)
	}

	found := func(query string) int {
		t.Helper()
		st, body := s.do("GET", "/v1/anomalies?"+query, nil, nil)
		require.Equal(t, http.StatusOK, st, "%s: %s", query, body)
		var list struct{ Anomalies []engine.Anomaly }
		require.NoError(t, json.Unmarshal(body, &list))
		return len(list.Anomalies)
	}
	for query, want := range map[string]int{
		"":                    1,
		"status=open":         1,
		"status=resolved":     0,
		"status=acknowledged": 0,
		"severity=info":       1,
		"severity=action":     0,
		"provider=tazapay":    1,
		"provider=yoco":       0,
		"kind=duplicate&status=open&provider=tazapay&severity=info&limit=5": 1,
		"status=&severity=&provider=&kind=":                                 1,
	} {
		require.Equal(t, want, found(query), query)
	}
}

// A body is one JSON object: whatever follows it was not read, so taking
// the request would store something other than what the shop sent.
func TestAPI_JSONBodiesRefuseTrailingData(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	b := tazapayEvent("evt_t1", "checkout.paid", "2025-05-14T06:41:22Z", "chk_t1", "pay_t1", "order_t1", "paid", 100)
	for range 2 { // the duplicate is an anomaly to acknowledge
		st, body := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
		require.Equal(t, http.StatusOK, st, string(body))
	}
	const reg = `{"provider":"tazapay","checkout_id":"chk_t2","amount":100,"currency":"USD","mode":"live"}`
	st, body := s.do("PUT", "/v1/orders/order_t2", []byte(reg), nil)
	require.Equal(t, http.StatusOK, st, string(body))
	st, body = s.do("GET", "/v1/anomalies?kind=duplicate", nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
	var list struct{ Anomalies []engine.Anomaly }
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Anomalies, 1)
	ack := fmt.Sprintf("/v1/anomalies/%d/ack", list.Anomalies[0].ID)

	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/v1/orders/order_t2", reg + ` trailing`},
		{"PUT", "/v1/orders/order_t2", reg + `{}`},
		{"PUT", "/v1/orders/order_t2", reg + `}`},
		{"PUT", "/v1/orders/order_t3", `{"provider":"tazapay","checkout_id":"chk_t3","amount":100,"currency":"USD","mode":"live"} x`},
		{"POST", "/v1/orders/order_t2/redirect", `{"outcome":"success"} trailing`},
		{"POST", "/v1/orders/order_t2/redirect", `{"outcome":"success"}{"outcome":"failure"}`},
		{"POST", ack, `{"note":"seen"} trailing`},
		{"POST", ack, `{"note":"seen"}null`},
	} {
		st, body := s.do(tc.method, tc.path, []byte(tc.body), nil)
		require.Equal(t, http.StatusBadRequest, st, "%s %s %s: %s", tc.method, tc.path, tc.body, body)
		code, msg := apiError(t, body)
		require.Equal(t, engine.EINVALID, code)
		require.Contains(t, msg, "data after the JSON object", "%s %s %s", tc.method, tc.path, tc.body)
	}
	st, _ = s.do("GET", "/v1/orders/order_t3", nil, nil)
	require.Equal(t, http.StatusNotFound, st, "a refused registration stores nothing")
	st, body = s.do("GET", "/v1/orders/order_t2", nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
	require.NotContains(t, string(body), `"redirect"`, "a refused redirect stores nothing")
	st, body = s.do("GET", "/v1/anomalies?kind=duplicate&status=open", nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
	require.Contains(t, string(body), `"status": "open"`, "a refused acknowledgement stores nothing")

	// The bytes after the object count towards --max-body too.
	st, body = s.do("PUT", "/v1/orders/order_t2", []byte(reg+strings.Repeat(" ", 300<<10)), nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, st, string(body))

	// Whitespace after the object is not data.
	st, body = s.do("PUT", "/v1/orders/order_t2", []byte(reg+" \r\n\t"), nil)
	require.Equal(t, http.StatusOK, st, string(body))
	st, body = s.do("POST", "/v1/orders/order_t2/redirect", []byte(`{"outcome":"success"}`+"\n"), nil)
	require.Equal(t, http.StatusOK, st, string(body))
	st, body = s.do("POST", ack, []byte(`{"note":"seen"}`+"\n"), nil)
	require.Equal(t, http.StatusOK, st, string(body))
}

// The note is optional, so a body with nothing in it is an acknowledgement
// without one.
func TestAPI_AckWithoutABody(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	for i := range 3 {
		b := tazapayEvent(fmt.Sprintf("evt_a%d", i), "checkout.paid", "2025-05-14T06:41:22Z", fmt.Sprintf("chk_a%d", i),
			fmt.Sprintf("pay_a%d", i), fmt.Sprintf("order_a%d", i), "paid", 100)
		for range 2 {
			st, body := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
			require.Equal(t, http.StatusOK, st, string(body))
		}
	}
	st, body := s.do("GET", "/v1/anomalies?kind=duplicate", nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
	var list struct{ Anomalies []engine.Anomaly }
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Anomalies, 3)

	for i, empty := range []string{"", " \n", `{}`} {
		st, body := s.do("POST", fmt.Sprintf("/v1/anomalies/%d/ack", list.Anomalies[i].ID), []byte(empty), nil)
		require.Equal(t, http.StatusOK, st, "%q: %s", empty, body)
		var a engine.Anomaly
		require.NoError(t, json.Unmarshal(body, &a))
		require.Equal(t, engine.StatusAcknowledged, a.Status, "%q", empty)
		require.Empty(t, a.Note, "%q", empty)
	}
	st, body = s.do("POST", "/v1/anomalies/999999/ack", nil, nil)
	require.Equal(t, http.StatusNotFound, st, string(body))

	// The other bodies still need their fields.
	st, body = s.do("PUT", "/v1/orders/o1", nil, nil)
	require.Equal(t, http.StatusBadRequest, st, string(body))
	st, body = s.do("POST", "/v1/orders/o1/redirect", nil, nil)
	require.Equal(t, http.StatusBadRequest, st, string(body))
}

// A registration without an amount was stored as 0, and every capture of
// the order then raised a false amount_mismatch.
func TestAPI_RegistrationNeedsAnAmountAndAValidMode(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	refused := []struct{ name, body, message string }{
		{"NoAmount", `{"provider":"tazapay","checkout_id":"chk_r1","currency":"USD","mode":"live"}`, "amount is required"},
		{"NullAmount", `{"provider":"tazapay","checkout_id":"chk_r1","amount":null,"currency":"USD","mode":"live"}`, "amount is required"},
		{"NegativeAmount", `{"provider":"tazapay","checkout_id":"chk_r1","amount":-1,"currency":"USD","mode":"live"}`, "amount must be in minor units"},
		{"FractionalAmount", `{"provider":"tazapay","checkout_id":"chk_r1","amount":49.99,"currency":"USD","mode":"live"}`, `field "amount" must be a whole number, not number 49.99`},
		{"AmountAsText", `{"provider":"tazapay","checkout_id":"chk_r1","amount":"4999","currency":"USD","mode":"live"}`, `field "amount" must be a whole number, not string`},
		{"CheckoutAsNumber", `{"provider":"tazapay","checkout_id":7,"amount":100,"currency":"USD","mode":"live"}`, `field "checkout_id" must be a string, not number`},
		{"NotAnObject", `[{"provider":"tazapay"}]`, `the body must be a JSON object, not array`},
		{"EmptyMode", `{"provider":"tazapay","checkout_id":"chk_r1","amount":100,"currency":"USD","mode":""}`, `mode must be live or test; got ""`},
		{"OtherMode", `{"provider":"tazapay","checkout_id":"chk_r1","amount":100,"currency":"USD","mode":"sandbox"}`, `mode must be live or test; got "sandbox"`},
		{"UpperCaseMode", `{"provider":"tazapay","checkout_id":"chk_r1","amount":100,"currency":"USD","mode":"LIVE"}`, `mode must be live or test; got "LIVE"`},
		// Three letters are not enough: the code must be ISO 4217's.
		{"CurrencyNotISO", `{"provider":"tazapay","checkout_id":"chk_r1","amount":100,"currency":"ABC","mode":"live"}`, `currency "ABC" is not an ISO 4217 currency code`},
		{"CurrencyWord", `{"provider":"tazapay","checkout_id":"chk_r1","amount":100,"currency":"dollars","mode":"live"}`, `currency "DOLLARS" is not an ISO 4217 currency code`},
		{"NoCurrency", `{"provider":"tazapay","checkout_id":"chk_r1","amount":100,"mode":"live"}`, `currency "" is not an ISO 4217 currency code`},
	}
	for _, tc := range refused {
		st, body := s.do("PUT", "/v1/orders/order_r1", []byte(tc.body), nil)
		require.Equal(t, http.StatusBadRequest, st, "%s: %s", tc.name, body)
		code, msg := apiError(t, body)
		require.Equal(t, engine.EINVALID, code, tc.name)
		require.Contains(t, msg, tc.message, tc.name)
	}
	st, body := s.do("GET", "/v1/orders/order_r1", nil, nil)
	require.Equal(t, http.StatusNotFound, st, "nothing refused was stored: %s", body)

	accepted := []struct{ name, id, body, mode string }{
		// A free order is a price the shop chose.
		{"ZeroAmount", "order_r2", `{"provider":"tazapay","checkout_id":"chk_r2","amount":0,"currency":"USD","mode":"test"}`, "test"},
		// README: the mode defaults to live.
		{"NoMode", "order_r3", `{"provider":"tazapay","checkout_id":"chk_r3","amount":100,"currency":"USD"}`, "live"},
		{"Live", "order_r4", `{"provider":"tazapay","checkout_id":"chk_r4","amount":100,"currency":"USD","mode":"live"}`, "live"},
		// Any case, and any minor unit: the yen has none, the dinar three.
		{"LowerCaseCurrency", "order_r5", `{"provider":"tazapay","checkout_id":"chk_r5","amount":100,"currency":"jpy","mode":"live"}`, "live"},
		{"ThreeDecimals", "order_r6", `{"provider":"tazapay","checkout_id":"chk_r6","amount":100,"currency":"KWD","mode":"live"}`, "live"},
	}
	for _, tc := range accepted {
		st, body := s.do("PUT", "/v1/orders/"+tc.id, []byte(tc.body), nil)
		require.Equal(t, http.StatusOK, st, "%s: %s", tc.name, body)
		var o engine.Order
		require.NoError(t, json.Unmarshal(body, &o))
		require.Equal(t, tc.mode, o.Mode, tc.name)
		// Registering the same details again is still idempotent.
		st, body = s.do("PUT", "/v1/orders/"+tc.id, []byte(tc.body), nil)
		require.Equal(t, http.StatusOK, st, "%s again: %s", tc.name, body)
	}
}

func TestAPI_RegistrationRefusesControlCharactersInIDs(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	const good = `{"provider":"tazapay","checkout_id":"chk_c1","amount":100,"currency":"USD","mode":"live"}`
	refused := []struct{ name, path, body, field string }{
		{"NULInPath", "/v1/orders/%00x", good, "order_id"},
		{"NULAtEndOfPath", "/v1/orders/x%00", good, "order_id"},
		{"NewlineInPath", "/v1/orders/a%0Ab", good, "order_id"},
		{"EscapeInPath", "/v1/orders/%1B%5B31m", good, "order_id"},
		{"DELInPath", "/v1/orders/a%7Fb", good, "order_id"},
		{"NotUTF8InPath", "/v1/orders/a%FFb", good, "order_id"},
		{"NULInCheckout", "/v1/orders/order_c1", `{"provider":"tazapay","checkout_id":"\u0000chk","amount":100,"currency":"USD","mode":"live"}`, "checkout_id"},
		{"NewlineInCheckout", "/v1/orders/order_c1", `{"provider":"tazapay","checkout_id":"chk\n","amount":100,"currency":"USD","mode":"live"}`, "checkout_id"},
		{"NULInOtherIDs", "/v1/orders/order_c1", `{"provider":"tazapay","checkout_id":"chk_c1","amount":100,"currency":"USD","mode":"live","other_ids":["pay\u0000"]}`, "other_ids"},
	}
	for _, tc := range refused {
		st, body := s.do("PUT", tc.path, []byte(tc.body), nil)
		require.Equal(t, http.StatusBadRequest, st, "%s: %s", tc.name, body)
		code, msg := apiError(t, body)
		require.Equal(t, engine.EINVALID, code, tc.name)
		require.Contains(t, msg, tc.field+" must be", tc.name)
	}
	st, body := s.do("GET", "/v1/checkouts/tazapay/chk_c1", nil, nil)
	require.Equal(t, http.StatusNotFound, st, "nothing refused was stored: %s", body)
	st, body = s.do("PUT", "/v1/orders/order_c1", []byte(good), nil)
	require.Equal(t, http.StatusOK, st, string(body))
}

func TestAPI_NotFoundSaysWhatWasLookedFor(t *testing.T) {
	t.Parallel()
	// tokenz has no secret: its webhooks are refused, but an order can
	// still be registered with it and looked up.
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"), func(f *serveFlags) { f.providers.tokenz = "" })
	st, body := s.do("PUT", "/v1/orders/order_n1", []byte(`{"provider":"tokenz","checkout_id":"ord_n1","amount":100,"currency":"TWD"}`), nil)
	require.Equal(t, http.StatusOK, st, string(body))

	for _, tc := range []struct{ path, message string }{
		{"/v1/orders/x", "no order x"},
		{"/v1/checkouts/tazapay/nope", "no order for tazapay checkout nope"},
		{"/v1/checkouts/tokenz/nope", "no order for tokenz checkout nope"},
		{"/v1/checkouts/paypal/x", `unknown provider "paypal"; providers: tazapay, tokenz, tweed, yoco`},
	} {
		st, body := s.do("GET", tc.path, nil, nil)
		require.Equal(t, http.StatusNotFound, st, "%s: %s", tc.path, body)
		code, msg := apiError(t, body)
		require.Equal(t, engine.ENOTFOUND, code, tc.path)
		require.Equal(t, tc.message, msg, tc.path)
	}
	st, body = s.do("GET", "/v1/checkouts/tokenz/ord_n1", nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
	require.Contains(t, string(body), `"order_id": "order_n1"`)
}

// A stored report is served by its id in each format, and its JSON names
// the id, as the list does.
func TestAPI_ReportsByID(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	b := tazapayEvent("evt_r1", "checkout.paid", "2025-05-14T06:41:22Z", "chk_r1", "pay_r1", "order_r1", "paid", 100)
	st, body := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
	require.Equal(t, http.StatusOK, st, string(body))
	// serve marks its start as where its first report begins; a report
	// now needs a period of a second at least.
	later := func() time.Time { return time.Now().Add(2 * time.Second) }
	rec, err := reconcile.New(s.db, reconcile.Config{}, later, discardLogger())
	require.NoError(t, err)
	written, err := rec.RunReport(context.Background())
	require.NoError(t, err)
	require.NotNil(t, written)

	st, body = s.do("GET", "/v1/reports", nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
	var list struct {
		Reports []struct {
			ID int64 `json:"id"`
		} `json:"reports"`
	}
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Reports, 1)
	require.Equal(t, written.ID, list.Reports[0].ID)
	// A second report, and a page of one: the list says there is more.
	rec2, err := reconcile.New(s.db, reconcile.Config{}, func() time.Time { return time.Now().Add(5 * time.Second) }, discardLogger())
	require.NoError(t, err)
	second, err := rec2.RunReport(context.Background())
	require.NoError(t, err)
	require.NotNil(t, second)
	st, body = s.do("GET", "/v1/reports?limit=1", nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
	var paged struct {
		Reports []struct{ ID int64 }
		Limit   int
		More    bool
	}
	require.NoError(t, json.Unmarshal(body, &paged))
	require.Len(t, paged.Reports, 1)
	require.Equal(t, 1, paged.Limit)
	require.True(t, paged.More)
	require.Greater(t, paged.Reports[0].ID, written.ID, "newest first")

	path := fmt.Sprintf("/v1/reports/%d", written.ID)
	st, body = s.do("GET", path, nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
	var rep struct {
		ID      int64 `json:"id"`
		Summary struct {
			Webhooks int `json:"webhooks"`
		} `json:"summary"`
		Orders []json.RawMessage `json:"orders"`
	}
	require.NoError(t, json.Unmarshal(body, &rep), string(body))
	require.Equal(t, written.ID, rep.ID)
	require.NotEmpty(t, rep.Orders, "the rest of the report follows the id")
	require.True(t, json.Valid(body))

	for format, want := range map[string]string{"md": "# Order anomaly report", "html": "<!DOCTYPE html>"} {
		st, body = s.do("GET", path+"?format="+format, nil, nil)
		require.Equal(t, http.StatusOK, st, format)
		require.True(t, strings.HasPrefix(string(body), want), "%s: %.80s", format, body)
	}
	st, body = s.do("GET", path+"?format=pdf", nil, nil)
	require.Equal(t, http.StatusBadRequest, st)
	_, msg := apiError(t, body)
	require.Contains(t, msg, "json, md or html")
	st, _ = s.do("GET", fmt.Sprintf("/v1/reports/%d", second.ID+1), nil, nil)
	require.Equal(t, http.StatusNotFound, st)
}

// TestAPI_AnomaliesComeInPages: a list cut short by its limit says so and
// where the rest is; following next gives every anomaly once, newest first.
func TestAPI_AnomaliesComeInPages(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	for i := range 5 {
		b := tazapayEvent(fmt.Sprintf("evt_p%d", i), "checkout.paid", "2025-05-14T06:41:22Z", fmt.Sprintf("chk_p%d", i),
			fmt.Sprintf("pay_p%d", i), fmt.Sprintf("order_p%d", i), "paid", 100)
		for range 2 {
			st, body := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
			require.Equal(t, http.StatusOK, st, string(body))
		}
	}
	type page struct {
		Anomalies []engine.Anomaly
		Limit     int
		More      bool
		Next      string
	}
	var ids []int64
	path := "/v1/anomalies?kind=duplicate&limit=2"
	for pages := 0; path != ""; pages++ {
		require.Less(t, pages, 3, "5 anomalies, 2 a page")
		st, body := s.do("GET", path, nil, nil)
		require.Equal(t, http.StatusOK, st, string(body))
		var p page
		require.NoError(t, json.Unmarshal(body, &p))
		require.Equal(t, 2, p.Limit)
		require.Equal(t, p.Next != "", p.More)
		for _, a := range p.Anomalies {
			require.Equal(t, engine.AnomalyDuplicate, a.Kind)
			ids = append(ids, a.ID)
		}
		path = p.Next
	}
	require.Len(t, ids, 5)
	for i := 1; i < len(ids); i++ {
		require.Less(t, ids[i], ids[i-1], "newest first, none twice")
	}

	st, body := s.do("GET", "/v1/anomalies?kind=duplicate&limit=5", nil, nil)
	require.Equal(t, http.StatusOK, st)
	var all map[string]any
	require.NoError(t, json.Unmarshal(body, &all))
	require.Equal(t, false, all["more"])
	require.NotContains(t, all, "next")
	st, body = s.do("GET", "/v1/anomalies?before=x", nil, nil)
	require.Equal(t, http.StatusBadRequest, st)
	_, msg := apiError(t, body)
	require.Contains(t, msg, `before must be an anomaly id`)
	st, body = s.do("GET", "/v1/reports?limt=5", nil, nil)
	require.Equal(t, http.StatusBadRequest, st)
	_, msg = apiError(t, body)
	require.Contains(t, msg, `unknown query parameter "limt"; parameters: limit`)
	for _, path := range []string{"/v1/anomalies?limit=9223372036854775807", "/v1/anomalies?limit=0", "/v1/reports?limit=100001"} {
		st, body = s.do("GET", path, nil, nil)
		require.Equal(t, http.StatusBadRequest, st, path)
		_, msg = apiError(t, body)
		require.Contains(t, msg, "limit must be a whole number from 1 to 100000", path)
	}

	// A window given as a duration is pinned in next, so it does not move
	// between pages.
	st, body = s.do("GET", "/v1/anomalies?kind=duplicate&limit=2&since=24h", nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
	var p page
	require.NoError(t, json.Unmarshal(body, &p))
	require.True(t, p.More)
	next, err := url.Parse(p.Next)
	require.NoError(t, err)
	since, err := time.Parse(time.RFC3339Nano, next.Query().Get("since"))
	require.NoError(t, err, p.Next)
	require.WithinDuration(t, time.Now().Add(-24*time.Hour), since, time.Minute)
	st, body = s.do("GET", p.Next, nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
}

// TestAPI_OrderAWebhookNamed: GET /v1/orders/{order_id} finds an order no
// shop registered but whose webhook named the shop's id.
func TestAPI_OrderAWebhookNamed(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	b := tazapayEvent("evt_n1", "checkout.paid", "2025-05-14T06:41:22Z", "chk_n1", "pay_n1", "order_n1", "paid", 4999)
	st, body := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
	require.Equal(t, http.StatusOK, st, string(body))
	var res engine.IngestResult
	require.NoError(t, json.Unmarshal(body, &res))
	require.Equal(t, "order_n1", res.OrderID, "the webhook's answer names the shop's order")

	st, body = s.do("GET", "/v1/orders/order_n1", nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
	var o engine.Order
	require.NoError(t, json.Unmarshal(body, &o))
	require.Equal(t, "order_n1", o.OrderID)
	require.False(t, o.Registered)
	require.Equal(t, "paid", string(o.State))
	require.Equal(t, "chk_n1", o.CheckoutID)

	st, _ = s.do("GET", "/v1/orders/order_n2", nil, nil)
	require.Equal(t, http.StatusNotFound, st)
}

// TestAPI_ErrorsReadPlainly: an answer's text keeps its angle brackets, so
// a person reading it with curl sees "<unix ms>", not "\u003cunix ms\u003e".
func TestAPI_ErrorsReadPlainly(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	h := http.Header{"Content-Type": {"application/json"}, tokenz.SignatureHeader: {"sha256=garbled"}}
	st, body := s.do("POST", "/webhooks/tokenz", []byte(`{"id":"e"}`), h)
	require.Equal(t, http.StatusUnauthorized, st, string(body))
	require.Contains(t, string(body), "t:<unix ms>,v1:<base64 signature>")
}
