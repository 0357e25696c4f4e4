package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/tokenz"
	"github.com/orderstate/orderstate/adapters/tweed"
	"github.com/orderstate/orderstate/adapters/yoco"
	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
)

// testClock is the sidecar's clock, moved forward to replay a request
// after its provider's tolerance window.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) set(off time.Duration) {
	c.mu.Lock()
	c.off = off
	c.mu.Unlock()
}

// storeDigest is each table's row count and a hash of its rows. The
// rejections table is left out: it is a per-hour counter of refused
// requests that the sidecar flushes in the background, so a refusal may
// change it by design (and does so at some later minute, not per request).
func storeDigest(t *testing.T, in *sqlite.Inspector) map[string]string {
	t.Helper()
	digest, err := in.Digest(context.Background())
	require.NoError(t, err)
	delete(digest, "rejections")
	return digest
}

// badInputKit is how one provider's events are written and signed.
type badInputKit struct {
	name string
	// event is a valid event numbered n, whose ids are unique to n.
	event func(n int) string
	sign  func(body []byte, at time.Time, delivery string) http.Header
	// The messages the adapter answers with.
	malformed, wrongSecret, missingSig, garbled string
	// Bodies missing a required field, with the message each gets.
	missing map[string][2]string
	// The text of the body's amount and of a timestamp, which the cases
	// replace with bad values.
	amount, timestamp string
	// currency is the text of the body's currency code; currencyField is
	// the field a refusal of it names.
	currency, currencyField string
}

func badInputKits() []badInputKit {
	ct := func(h http.Header) http.Header { h.Set("Content-Type", "application/json"); return h }
	return []badInputKit{
		{
			name: "tazapay",
			event: func(n int) string {
				return string(tazapayEvent(fmt.Sprintf("evt_b%d", n), "checkout.paid", "2025-05-14T06:41:22Z", fmt.Sprintf("chk_b%d", n),
					fmt.Sprintf("pay_b%d", n), fmt.Sprintf("order_b%d", n), "paid", 4999))
			},
			sign: func(b []byte, _ time.Time, _ string) http.Header { return tazapay.Sign(testTazapaySecret, b) },
			// A body that is not JSON cannot be verified: the signature
			// covers fields read from it.
			malformed:   "cannot read the id and created_at",
			wrongSecret: "does not match",
			missingSig:  "signature header missing",
			garbled:     "is not a base64",
			missing: map[string][2]string{
				"NoID":       {`"id":"evt_b%d",`, "has no id"},
				"NoType":     {`"type":"checkout.paid",`, "has no type"},
				"NoCheckout": {`"id":"chk_b%d","object":"checkout","payin":"pay_b%d",`, "names no checkout or payin"},
			},
			amount:        `"amount":4999`,
			timestamp:     `"created_at":"2025-05-14T06:41:22Z"`,
			currency:      `"invoice_currency":"USD"`,
			currencyField: "data.invoice_currency",
		},
		{
			name: "tokenz",
			event: func(n int) string {
				return fmt.Sprintf(`{"id":"event_b%d","object":"event","createdAt":"2024-07-02T14:03:17.905Z","test":false,"eventData":{"type":"order.succeeded",`+
					`"version":"1.0.0","data":{"id":"order_b%d","object":"order","amount":{"amount":32800,"currency":"TWD"}}}}`, n, n)
			},
			sign:        func(b []byte, at time.Time, _ string) http.Header { return ct(tokenz.Sign(testTokenzSecret, b, at)) },
			malformed:   "not valid json",
			wrongSecret: "no tokenz-signature v1 signature matched",
			missingSig:  "tokenz-signature header missing",
			// The message reads with its angle brackets, not \u003c.
			garbled: "expected t:<unix ms>,v1:<base64 signature>",
			missing: map[string][2]string{
				"NoID":       {`"id":"event_b%d",`, "has no id"},
				"NoType":     {`"type":"order.succeeded",`, "has no eventdata.type"},
				"NoCheckout": {`"id":"order_b%d",`, "has no order id"},
			},
			amount:        `"amount":32800`,
			timestamp:     `"createdAt":"2024-07-02T14:03:17.905Z"`,
			currency:      `"currency":"TWD"`,
			currencyField: "eventdata.data.amount.currency",
		},
		{
			name: "tweed",
			event: func(n int) string {
				return fmt.Sprintf(`{"type":"CHECKOUT_STATUS_UPDATED","data":{"checkoutData":{"checkoutId":"c_b%d","customParams":{"orderRef":"SO-b%d"}},`+
					`"status":"DONE","paymentData":{"status":"succeeded","amount":1080,"created":1738706000,"currency":"usd","livemode":true}}}`, n, n)
			},
			sign: func(b []byte, _ time.Time, delivery string) http.Header {
				h := tweed.Sign(testTweedSecret, b)
				h.Set(tweed.DeliveryHeader, delivery)
				return h
			},
			malformed:   "not a tweed webhook",
			wrongSecret: "does not match",
			missingSig:  "x-hub-signature-256 header missing",
			garbled:     "is not sha256=",
			missing: map[string][2]string{
				// Tweed events have no id of their own: the body's hash
				// stands in.
				"NoStatus":   {`"status":"DONE",`, "has no status"},
				"NoType":     {`"type":"CHECKOUT_STATUS_UPDATED",`, "has no type"},
				"NoCheckout": {`"checkoutId":"c_b%d",`, "has no checkoutdata.checkoutid"},
			},
			amount:        `"amount":1080`,
			timestamp:     `"created":1738706000`,
			currency:      `"currency":"usd"`,
			currencyField: "data.paymentdata.currency",
		},
		{
			name: "yoco",
			event: func(n int) string {
				return fmt.Sprintf(`{"id":"evt_b%d","type":"payment.succeeded","createdDate":"2024-08-05T15:51:20.031Z","payload":{"id":"p_b%d","type":"payment",`+
					`"createdDate":"2024-08-05T17:51:19.744Z","amount":45000,"currency":"ZAR","status":"succeeded","mode":"live","metadata":{"checkoutId":"ch_b%d"}}}`, n, n, n)
			},
			sign: func(b []byte, at time.Time, delivery string) http.Header {
				return ct(yoco.Sign(testYocoSecret, delivery, b, at))
			},
			malformed:   "not valid json",
			wrongSecret: "no webhook-signature v1 signature matched",
			missingSig:  "webhook-id header missing",
			garbled:     "garbled",
			missing: map[string][2]string{
				"NoID":       {`"id":"evt_b%d",`, "has no id"},
				"NoType":     {`"type":"payment.succeeded",`, "has no type"},
				"NoCheckout": {`"metadata":{"checkoutId":"ch_b%d"}`, "has no payload.metadata.checkoutid"},
			},
			amount:        `"amount":45000`,
			timestamp:     `"createdDate":"2024-08-05T15:51:20.031Z"`,
			currency:      `"currency":"ZAR"`,
			currencyField: "payload.currency",
		},
	}
}

// badCase is one request the sidecar must refuse, or, for a replay, take
// as the duplicate it is.
type badCase struct {
	name    string
	path    string
	body    []byte
	header  http.Header
	status  int
	message string // in the error message, case-insensitive
	// replay delivers the request once first (it must be applied), moves
	// the clock by advance, then sends it again.
	replay  bool
	advance time.Duration
	// key is the dedupe key of a replayed event.
	key string
}

func TestBadInputMatrix(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "bad.db")
	clock := &testClock{}
	f := testFlags(dbPath)
	sc, err := startSidecar(context.Background(), &f, discardLogger(), clock.now)
	require.NoError(t, err)
	s := &testSidecar{sidecar: sc, t: t, dbPth: dbPath, flags: f}
	t.Cleanup(func() { _ = s.stop() })
	ro, err := sqlite.Inspect(context.Background(), dbPath)
	require.NoError(t, err)
	t.Cleanup(func() { ro.Close() })

	// Some orders first, so that "unchanged" covers rows that exist.
	n := 0
	for _, k := range badInputKits() {
		for range 2 {
			n++
			body := []byte(k.event(n))
			st, b := s.do("POST", "/webhooks/"+k.name, body, k.sign(body, clock.now(), fmt.Sprintf("dlv_b%d", n)))
			require.Equal(t, http.StatusOK, st, string(b))
		}
	}

	var cases []badCase
	for _, k := range badInputKits() {
		n++
		valid := []byte(k.event(n))
		delivery := fmt.Sprintf("dlv_b%d", n)
		now := clock.now()
		signed := func(b []byte) http.Header { return k.sign(b, now, delivery) }
		edit := func(old, new string) []byte {
			if strings.Contains(old, "%d") {
				old = strings.ReplaceAll(old, "%d", fmt.Sprint(n))
			}
			require.Contains(t, string(valid), old, "%s: %s", k.name, old)
			return []byte(strings.Replace(string(valid), old, new, 1))
		}
		add := func(name string, body []byte, h http.Header, status int, msg string) {
			cases = append(cases, badCase{name: k.name + "/" + name, path: "/webhooks/" + k.name, body: body, header: h, status: status, message: msg})
		}
		// Refusals of the body that an adapter makes after verifying the
		// signature; Tazapay's signature covers fields of the body, so a
		// body that is not a JSON object fails verification there.
		notJSON := func(name string, body []byte, msg string) {
			if k.name == "tazapay" {
				add(name, body, signed(body), 401, k.malformed)
				return
			}
			add(name, body, signed(body), 400, msg)
		}
		notJSON("MalformedJSON", []byte(`{"id": "evt_x", "type":`), k.malformed)
		notJSON("TruncatedJSON", valid[:len(valid)/2], k.malformed)
		notJSON("EmptyBody", nil, k.malformed)
		notJSON("NotAnObject", []byte(`[1, 2, 3]`), map[string]string{"tokenz": "the body is a json array", "yoco": "the body is a json array", "tweed": "not a tweed webhook"}[k.name])
		deep := append([]byte(`{"x":`+strings.Repeat("[", 20000)+strings.Repeat("]", 20000)+`,`), valid[1:]...)
		notJSON("DeeplyNested", deep, "exceeded max depth")
		huge := []byte("[" + strings.Repeat(`{"id":"evt_h","type":"x"},`, 9000) + `{}]`)
		notJSON("HugeArrayUnderTheLimit", huge, map[string]string{"tokenz": "the body is a json array", "yoco": "the body is a json array", "tweed": "not a tweed webhook"}[k.name])

		add("WrongContentType", valid, func() http.Header { h := signed(valid); h.Set("Content-Type", "text/plain"); return h }(), 415, "is not json")
		add("FormContentType", valid, func() http.Header {
			h := signed(valid)
			h.Set("Content-Type", "application/x-www-form-urlencoded")
			return h
		}(), 415, "is not json")
		add("GarbledContentType", valid, func() http.Header { h := signed(valid); h.Set("Content-Type", "application/json; =;"); return h }(), 415, "is not json")
		over := append(append([]byte{}, valid...), bytes.Repeat([]byte(" "), 300<<10)...)
		add("BodyOverTheLimit", over, signed(over), 413, "larger than")
		overJSON := edit(k.timestamp, k.timestamp+`,"pad":"`+strings.Repeat("a", 256<<10)+`"`)
		add("JSONStringOverTheLimit", overJSON, signed(overJSON), 413, "larger than")

		badUTF8 := edit(`"`, "\"\xff\xfe")
		add("InvalidUTF8", badUTF8, signed(badUTF8), 400, "not valid utf-8")
		for name, v := range map[string]string{"AmountOverflowsInt64": "99999999999999999999", "AmountPastMaxAmount": "9223372036854775807",
			"AmountExponent": "1e300", "AmountFraction": "12.5", "AmountNegative": "-5", "AmountAnObject": `{"v":1}`} {
			body := edit(k.amount, k.amount[:strings.Index(k.amount, ":")+1]+v)
			add(name, body, signed(body), 400, "amount")
		}
		// Three letters that are no ISO 4217 currency, and a code that
		// has been withdrawn (the Croatian kuna, replaced by the euro).
		curField := k.currency[:strings.Index(k.currency, ":")+1]
		for name, v := range map[string]string{"CurrencyNotISO": `"XYZ"`, "CurrencyWithdrawn": `"HRK"`} {
			body := edit(k.currency, curField+v)
			add(name, body, signed(body), 400, k.currencyField+` "`+strings.ToLower(strings.Trim(v, `"`))+`" is not an iso 4217 currency code`)
		}
		tsField := k.timestamp[:strings.Index(k.timestamp, ":")+1]
		for name, v := range map[string]string{"TimestampOverflows": "99999999999999999999", "TimestampGarbage": `"next tuesday"`} {
			body := edit(k.timestamp, tsField+v)
			add(name, body, signed(body), 400, "timestamp")
		}
		for name, m := range k.missing {
			body := edit(m[0], "")
			if name == "NoCheckout" && k.name == "yoco" {
				body = edit(m[0], `"metadata":{}`)
			}
			add(name, body, signed(body), 400, m[1])
		}

		// Signatures wrong in each way.
		noSig := http.Header{"Content-Type": {"application/json"}}
		if k.name == "tweed" {
			noSig.Set(tweed.DeliveryHeader, delivery)
		}
		add("SignatureMissing", valid, noSig, 401, k.missingSig)
		garbled := signed(valid)
		switch k.name {
		case "tokenz":
			garbled.Set(tokenz.SignatureHeader, "sha256=not-what-tokenz-sends")
		case "yoco":
			garbled.Set(yoco.SignatureHeader, "v1:Zm9v")
		case "tazapay":
			garbled.Set(tazapay.SignatureHeader, "!!not base64!!")
		case "tweed":
			garbled.Set(tweed.SignatureHeader, "md5=d41d8cd98f00b204e9800998ecf8427e")
		}
		add("SignatureGarbled", valid, garbled, 401, k.garbled)
		var wrong http.Header
		switch k.name {
		case "tokenz":
			wrong = tokenz.Sign("not-the-secret", valid, now)
		case "yoco":
			wrong = yoco.Sign(yoco.NewSecret(), delivery, valid, now)
		case "tazapay":
			wrong = tazapay.Sign("not-the-secret", valid)
		case "tweed":
			wrong = tweed.Sign("not-the-secret", valid)
		}
		wrong.Set("Content-Type", "application/json")
		add("SignatureWrongSecret", valid, wrong, 401, k.wrongSecret)
		altered := edit(k.amount, k.amount+"0")
		add("BodyAlteredAfterSigning", altered, signed(valid), 401, k.wrongSecret)
		emptySecret := signed(valid)
		switch k.name {
		case "tokenz":
			emptySecret = tokenz.Sign("", valid, now)
		case "tazapay":
			emptySecret = tazapay.Sign("", valid)
		case "tweed":
			emptySecret = tweed.Sign("", valid)
		case "yoco":
			// yoco.Sign refuses an empty key; this is its recipe keyed with nothing.
			m := hmac.New(sha256.New, nil)
			fmt.Fprintf(m, "%s.%d.%s", delivery, now.Unix(), valid)
			emptySecret.Set(yoco.SignatureHeader, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
		}
		emptySecret.Set("Content-Type", "application/json")
		add("SignatureWithAnEmptyKey", valid, emptySecret, 401, k.wrongSecret)

		if k.name == "tokenz" || k.name == "yoco" {
			add("TimestampStale", valid, k.sign(valid, now.Add(-10*time.Minute), delivery), 401, "old")
			add("TimestampFuture", valid, k.sign(valid, now.Add(10*time.Minute), delivery), 401, "in the future")
			restamped := signed(valid)
			if k.name == "tokenz" {
				v := restamped.Get(tokenz.SignatureHeader)
				restamped.Set(tokenz.SignatureHeader, strings.Replace(v, fmt.Sprint(now.UnixMilli()), fmt.Sprint(now.UnixMilli()+1000), 1))
			} else {
				restamped.Set(yoco.TimestampHeader, fmt.Sprint(now.Unix()+1))
			}
			add("TimestampChangedAfterSigning", valid, restamped, 401, k.wrongSecret)
		}
		if k.name == "yoco" {
			// Signed for another delivery, sent with this one's id.
			other := yoco.Sign(testYocoSecret, "another-delivery", valid, now)
			other.Set(yoco.IDHeader, delivery)
			other.Set("Content-Type", "application/json")
			add("SignatureOfAnotherDelivery", valid, other, 401, k.wrongSecret)
		}

		big := signed(valid)
		big.Set("X-Padding", strings.Repeat("p", 100<<10))
		add("HeadersOverTheLimit", valid, big, 431, "request header fields too large")

		// A signed request captured and sent again.
		n++
		replayBody := []byte(k.event(n))
		replayDelivery := fmt.Sprintf("dlv_b%d", n)
		replayHeader := k.sign(replayBody, now, replayDelivery)
		key := map[string]string{"tazapay": fmt.Sprintf("evt_b%d", n), "tokenz": fmt.Sprintf("event_b%d", n), "tweed": tweed.DedupeKey(replayBody), "yoco": replayDelivery}[k.name]
		cases = append(cases, badCase{name: k.name + "/ReplayWithinWindow", path: "/webhooks/" + k.name, body: replayBody, header: replayHeader,
			status: 200, replay: true, key: key})
		if k.name == "tokenz" || k.name == "yoco" {
			n++
			body := []byte(k.event(n))
			d := fmt.Sprintf("dlv_b%d", n)
			key := map[string]string{"tokenz": fmt.Sprintf("event_b%d", n), "yoco": d}[k.name]
			cases = append(cases, badCase{name: k.name + "/ReplayAfterWindow", path: "/webhooks/" + k.name, body: body, header: k.sign(body, now, d),
				status: 401, message: "old", replay: true, advance: 6 * time.Minute, key: key})
		}
	}
	good := []byte(badInputKits()[0].event(9999))
	for _, path := range []string{"/webhooks/paypal", "/webhooks/TAZAPAY", "/webhooks/tazapay%2F..%2Ftokenz"} {
		cases = append(cases, badCase{name: "UnknownProvider" + path, path: path, body: good, header: signedTazapay(good), status: 404, message: "no provider"})
	}
	cases = append(cases, badCase{name: "NoProvider", path: "/webhooks/", body: good, header: signedTazapay(good), status: 404, message: "no route"})

	codes := map[int]string{400: engine.EINVALID, 401: engine.EUNAUTHORIZED, 404: engine.ENOTFOUND, 413: engine.ETOOLARGE, 415: engine.EUNSUPPORTED}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer clock.set(0)
			if tc.replay {
				st, b := s.do("POST", tc.path, tc.body, tc.header)
				require.Equal(t, http.StatusOK, st, string(b))
				require.Contains(t, string(b), `"result": "applied"`)
				clock.set(tc.advance)
			}
			before := storeDigest(t, ro)
			st, b := s.do("POST", tc.path, tc.body, tc.header)
			require.Equal(t, tc.status, st, string(b))
			after := storeDigest(t, ro)
			switch {
			case tc.status == http.StatusRequestHeaderFieldsTooLarge:
				// net/http answers this before any handler runs, in plain text.
				require.Contains(t, strings.ToLower(string(b)), tc.message)
				require.Equal(t, before, after, "the store changed")
			case tc.status == http.StatusOK:
				// A replay inside the window is a duplicate: recorded as
				// such, never applied again.
				var res engine.IngestResult
				require.NoError(t, json.Unmarshal(b, &res), string(b))
				require.Equal(t, "duplicate", string(res.Result))
				provider := strings.TrimPrefix(tc.path, "/webhooks/")
				originals, err := ro.Stored(context.Background(), provider, tc.key)
				require.NoError(t, err)
				require.Equal(t, 1, originals, "stored once")
				dups, err := ro.Redelivered(context.Background(), provider, tc.key)
				require.NoError(t, err)
				require.Equal(t, 1, dups, "the replay is kept as one duplicate")
				for _, tbl := range []string{"orders", "order_aliases", "raw_events"} {
					require.Equal(t, before[tbl], after[tbl], "a duplicate changed %s", tbl)
				}
			default:
				var e struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				require.NoError(t, json.Unmarshal(b, &e), "not a JSON error: %s", b)
				require.Equal(t, codes[tc.status], e.Error.Code, string(b))
				require.Contains(t, strings.ToLower(e.Error.Message), tc.message, string(b))
				require.Equal(t, before, after, "the store changed")
				if tc.replay {
					provider := strings.TrimPrefix(tc.path, "/webhooks/")
					originals, err := ro.Stored(context.Background(), provider, tc.key)
					require.NoError(t, err)
					dups, err := ro.Redelivered(context.Background(), provider, tc.key)
					require.NoError(t, err)
					require.Equal(t, 1, originals+dups, "a replay outside the window left a row")
				}
			}
			st, _ = s.do("GET", "/healthz", nil, nil)
			require.Equal(t, http.StatusOK, st, "the server stopped serving")
		})
	}
	// Still taking webhooks, and still the same orders.
	for _, k := range badInputKits() {
		n++
		body := []byte(k.event(n))
		st, b := s.do("POST", "/webhooks/"+k.name, body, k.sign(body, clock.now(), fmt.Sprintf("dlv_b%d", n)))
		require.Equal(t, http.StatusOK, st, string(b))
		require.Contains(t, string(b), `"result": "applied"`)
	}
	t.Logf("bad-input matrix: %d inputs, each refused with its status and message (or, replayed in the window, taken as a duplicate) and the store unchanged", len(cases))
}
