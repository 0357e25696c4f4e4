package tweed_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tweed"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

const (
	secret   = "tweed-merchant-secret-41b7"
	fixtures = "../../testdata/tweed"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	require.NoError(t, err)
	return b
}

func signed(body []byte) *engine.Request {
	return &engine.Request{Header: tweed.Sign(secret, body), Body: body}
}

func bodyHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestParse_Fixtures(t *testing.T) {
	t.Parallel()
	const (
		uuid1 = "3f0c9a52-6c1e-4d7b-9a51-0b6f2e7d4c11"
		uuid2 = "9b2d7e10-4a6f-4c3e-8d21-5e7f90a1b2c3"
		uuid3 = "c7e4a9d2-1b3f-4e5a-9c8d-7f6e5d4c3b2a"
	)
	cases := []struct {
		name     string
		file     string
		delivery string // X-Tweed-Delivery, when the case sends one
		want     engine.Event
	}{
		{"Created", "created.json", "", engine.Event{
			Type: "CREATED", Kind: sm.KindCheckoutCreated, CheckoutID: uuid1, Reference: "SO-884",
		}},
		{"PerformCheckoutSubmitted", "perform_checkout_submitted.json", "", engine.Event{
			Type: "PERFORM_CHECKOUT_SUBMITTED", Kind: sm.KindPaymentProcessing, CheckoutID: uuid1, Reference: "SO-884",
		}},
		{"TransactionBroadcast", "transaction_broadcast.json", "", engine.Event{
			Type: "TRANSACTION_BROADCAST", Kind: sm.KindPaymentProcessing, CheckoutID: uuid2, Reference: "SO-885",
			Amount: 2650, Currency: "EUR", Mode: engine.ModeLive, OccurredAt: time.Unix(1738706400, 0).UTC(),
		}},
		{"Done", "done.json", "", engine.Event{
			Type: "DONE", Kind: sm.KindPaid, CheckoutID: uuid1, Reference: "SO-884",
			Amount: 1080, Currency: "USD", Mode: engine.ModeTest, OccurredAt: time.Unix(1738706000, 0).UTC(),
		}},
		{"DoneWithDeliveryHeader", "done.json", "8d1c4f0e-2b7a-11f0-9c3e-0242ac120002", engine.Event{
			Type: "DONE", Kind: sm.KindPaid, CheckoutID: uuid1, Reference: "SO-884",
			Amount: 1080, Currency: "USD", Mode: engine.ModeTest, OccurredAt: time.Unix(1738706000, 0).UTC(),
		}},
		// Tweed's type definition spells paymentMethod "paymentMehod".
		{"DonePaymentMehod", "done_payment_mehod.json", "", engine.Event{
			Type: "DONE", Kind: sm.KindPaid, CheckoutID: uuid2, Reference: "SO-885",
			Amount: 2650, Currency: "EUR", Mode: engine.ModeLive, OccurredAt: time.Unix(1738706400, 0).UTC(),
		}},
		{"DoneWithoutPaymentData", "done_without_payment_data.json", "", engine.Event{
			Type: "DONE", Kind: sm.KindPaid, CheckoutID: uuid3, Reference: "SO-886",
		}},
		{"Failed", "failed.json", "", engine.Event{
			Type: "FAILED", Kind: sm.KindFailed, CheckoutID: uuid3, Reference: "SO-886",
			Amount: 1275, Currency: "USD", Mode: engine.ModeTest, OccurredAt: time.Unix(1738707000, 0).UTC(),
		}},
		{"FailedWithoutPaymentData", "failed_without_payment_data.json", "", engine.Event{
			Type: "FAILED", Kind: sm.KindFailed, CheckoutID: "0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a",
		}},
		// orderRef wins over orderId when both are present.
		{"FailedAfterTxCompleted", "failed_after_tx_completed.json", "", engine.Event{
			Type: "FAILED_AFTER_TX_COMPLETED", Kind: sm.KindFailedAfterSettlement,
			CheckoutID: "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b", Reference: "SO-887",
			Amount: 4200, Currency: "USD", Mode: engine.ModeLive, OccurredAt: time.Unix(1738708800, 0).UTC(),
		}},
		// An undocumented status keeps its checkout so the report can name it.
		{"UnknownStatus", "unknown_status.json", "", engine.Event{
			Type: "REFUND_REQUESTED", Kind: sm.KindUnknown, CheckoutID: uuid1,
		}},
		{"UnknownType", "unknown_type.json", "", engine.Event{
			Type: "WALLET_CREATED", Kind: sm.KindUnknown,
		}},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.file] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := tweed.New(secret)
			body := fixture(t, tc.file)
			req := signed(body)
			want := tc.want
			want.Provider = tweed.Name
			h := bodyHash(body)
			want.EventID, want.DedupeKey = want.Type+":"+h[:12], h
			if tc.delivery != "" {
				req.Header.Set(tweed.DeliveryHeader, tc.delivery)
				want.EventID = tc.delivery
			}
			require.NoError(t, a.Verify(req, time.Now()))
			got, err := a.Parse(req)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
	t.Run("EveryFixtureIsInTheTable", func(t *testing.T) {
		t.Parallel()
		files, err := filepath.Glob(filepath.Join(fixtures, "*.json"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		for _, f := range files {
			require.True(t, covered[filepath.Base(f)], "fixture %s has no expectation", f)
		}
	})
}

func TestParse_Dedupe(t *testing.T) {
	t.Parallel()
	a := tweed.New(secret)
	body := fixture(t, "done.json")
	first, err := a.Parse(signed(body))
	require.NoError(t, err)
	t.Run("ByteIdenticalRedeliveryIsTheSameEvent", func(t *testing.T) {
		t.Parallel()
		again, err := a.Parse(signed(bytes.Clone(body)))
		require.NoError(t, err)
		require.Equal(t, first.DedupeKey, again.DedupeKey)
	})
	t.Run("AnyOtherBodyIsAnotherEvent", func(t *testing.T) {
		t.Parallel()
		other, err := a.Parse(signed(bytes.TrimSpace(body)))
		require.NoError(t, err)
		require.NotEqual(t, first.DedupeKey, other.DedupeKey)
	})
	// The signature covers the body alone: a delivery header that made a
	// new event would let anyone holding one signed webhook replay it as
	// often as they like, each time applied and stored again.
	t.Run("DeliveryHeaderDoesNotMakeANewEvent", func(t *testing.T) {
		t.Parallel()
		r1, r2 := signed(body), signed(bytes.Clone(body))
		r1.Header.Set(tweed.DeliveryHeader, "d-1")
		r2.Header.Set(tweed.DeliveryHeader, "d-2")
		e1, err := a.Parse(r1)
		require.NoError(t, err)
		e2, err := a.Parse(r2)
		require.NoError(t, err)
		require.Equal(t, bodyHash(body), e1.DedupeKey)
		require.Equal(t, e1.DedupeKey, e2.DedupeKey)
		require.Equal(t, first.DedupeKey, e1.DedupeKey, "with a header or without, one body is one event")
		require.Equal(t, tweed.DedupeKey(body), e1.DedupeKey)
		require.Equal(t, "d-1", e1.EventID, "the header is still shown")
		require.Equal(t, "d-2", e2.EventID)
	})
	t.Run("OneDeliveryHeaderOnTwoBodiesIsTwoEvents", func(t *testing.T) {
		t.Parallel()
		r1, r2 := signed(body), signed(bytes.TrimSpace(body))
		r1.Header.Set(tweed.DeliveryHeader, "d-1")
		r2.Header.Set(tweed.DeliveryHeader, "d-1")
		e1, err := a.Parse(r1)
		require.NoError(t, err)
		e2, err := a.Parse(r2)
		require.NoError(t, err)
		require.NotEqual(t, e1.DedupeKey, e2.DedupeKey)
	})
}

// The delivery header is unsigned text that reaches timelines, terminals
// and reports: only a bounded run of plain characters is kept from it.
func TestParse_DeliveryHeaderIsCleaned(t *testing.T) {
	t.Parallel()
	a := tweed.New(secret)
	body := fixture(t, "done.json")
	h := bodyHash(body)
	for _, tc := range []struct{ name, header, want string }{
		{"UUID", "8d1c4f0e-2b7a-11f0-9c3e-0242ac120002", "8d1c4f0e-2b7a-11f0-9c3e-0242ac120002"},
		{"Spaces", "  dlv_1  ", "dlv_1"},
		{"TerminalEscapes", "dlv\x1b[2J\x1b]8;;http://x\x07y\x1b]8;;\x07", "dlv2J8http:xy8"},
		{"Markdown", "[click](javascript:alert(1))|`x`<b>", "clickjavascript:alert1xb"},
		{"C1AndDEL", "a\u009b31m\x7fb\u202ec", "a31mbc"},
		{"Long", strings.Repeat("a1", 300), strings.Repeat("a1", 50)},
		{"NothingUsable", "\x1b\x07 <>", "DONE:" + h[:12]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := signed(body)
			req.Header.Set(tweed.DeliveryHeader, tc.header)
			ev, err := a.Parse(req)
			require.NoError(t, err)
			require.Equal(t, tc.want, ev.EventID)
			require.LessOrEqual(t, len(ev.EventID), 100)
			require.Equal(t, h, ev.DedupeKey)
		})
	}
}

func TestParse_Reference(t *testing.T) {
	t.Parallel()
	a := tweed.New(secret)
	for name, tc := range map[string]struct{ params, want string }{
		"OrderRef":          {`{"orderRef":"A-1","orderId":"B","order_id":"C"}`, "A-1"},
		"OrderID":           {`{"orderId":"B-2","order_id":"C"}`, "B-2"},
		"OrderUnderscoreID": {`{"order_id":"C-3"}`, "C-3"},
		"Number":            {`{"orderId":10042}`, "10042"},
		"EmptySkipped":      {`{"orderRef":"","order_id":"C-4"}`, "C-4"},
		"ObjectSkipped":     {`{"orderRef":{"id":"x"},"orderId":"B-5"}`, "B-5"},
		"None":              {`{"sku":"tee"}`, ""},
		"Null":              {`null`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body := []byte(`{"type":"CHECKOUT_STATUS_UPDATED","data":{"checkoutData":{"checkoutId":"c-1","customParams":` +
				tc.params + `},"status":"CREATED"}}`)
			ev, err := a.Parse(signed(body))
			require.NoError(t, err)
			require.Equal(t, tc.want, ev.Reference)
		})
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := fixture(t, "done.json")
	now := time.Now()
	refused := func(t *testing.T, err error, says string) {
		t.Helper()
		require.Error(t, err)
		require.Equal(t, engine.EUNAUTHORIZED, engine.ErrorCode(err))
		require.Contains(t, engine.ErrorMessage(err), says)
		require.NotContains(t, err.Error(), secret)
	}
	withSig := func(v string) *engine.Request {
		h := http.Header{}
		h.Set(tweed.SignatureHeader, v)
		return &engine.Request{Header: h, Body: body}
	}

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, tweed.New(secret).Verify(signed(body), now))
	})
	t.Run("SignatureIsTheDocumentedRecipe", func(t *testing.T) {
		t.Parallel()
		// GitHub's documented test vector for X-Hub-Signature-256.
		got := tweed.Signature("It's a Secret to Everybody", []byte("Hello, World!"))
		require.Equal(t, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", got)
	})
	t.Run("UpperCaseHexAccepted", func(t *testing.T) {
		t.Parallel()
		sig := tweed.Signature(secret, body)
		require.NoError(t, tweed.New(secret).Verify(withSig("sha256="+strings.ToUpper(sig[7:])), now))
	})
	t.Run("WrongSecret", func(t *testing.T) {
		t.Parallel()
		req := &engine.Request{Header: tweed.Sign("another-secret", body), Body: body}
		err := tweed.New(secret).Verify(req, now)
		refused(t, err, "does not match")
		require.NotContains(t, err.Error(), req.Header.Get(tweed.SignatureHeader)[7:])
	})
	t.Run("BodyChangedByOneByte", func(t *testing.T) {
		t.Parallel()
		req := signed(body)
		req.Body = bytes.Replace(body, []byte("1080"), []byte("1081"), 1)
		refused(t, tweed.New(secret).Verify(req, now), "does not match")
	})
	t.Run("HeaderMissing", func(t *testing.T) {
		t.Parallel()
		refused(t, tweed.New(secret).Verify(&engine.Request{Body: body}, now), "header missing")
		refused(t, tweed.New(secret).Verify(withSig(" "), now), "header missing")
	})
	t.Run("HeaderGarbled", func(t *testing.T) {
		t.Parallel()
		good := tweed.Signature(secret, body)
		for _, v := range []string{good[7:], "sha1=" + good[7:], "sha256=zz" + good[9:], "sha256=" + good[7:70], "v1,abc"} {
			err := tweed.New(secret).Verify(withSig(v), now)
			refused(t, err, "not sha256=<64 hex digits>")
			require.NotContains(t, err.Error(), v)
		}
	})
	t.Run("RotationAcceptsEitherSecret", func(t *testing.T) {
		t.Parallel()
		a := tweed.New("old-secret", "new-secret")
		for _, s := range []string{"old-secret", "new-secret"} {
			require.NoError(t, a.Verify(&engine.Request{Header: tweed.Sign(s, body), Body: body}, now), s)
		}
		refused(t, a.Verify(&engine.Request{Header: tweed.Sign("retired-secret", body), Body: body}, now), "does not match")
	})
	// Tweed signs no timestamp, so no tolerance window exists: the same
	// signed request verifies at any time; dedupe absorbs a replay.
	t.Run("NoToleranceWindowExists", func(t *testing.T) {
		t.Parallel()
		for _, at := range []time.Time{{}, now.Add(-365 * 24 * time.Hour), now.Add(365 * 24 * time.Hour)} {
			require.NoError(t, tweed.New(secret).Verify(signed(body), at))
		}
	})
	t.Run("UnsignedRefusedWithoutAllowUnsigned", func(t *testing.T) {
		t.Parallel()
		refused(t, tweed.New().Verify(&engine.Request{Body: body}, now), "unsigned Tweed webhooks are not allowed")
		// A signature cannot stand in for configuration.
		refused(t, tweed.New().Verify(signed(body), now), "no Tweed webhook secret is configured")
		refused(t, tweed.New("").Verify(&engine.Request{Body: body}, now), "no Tweed webhook secret is configured")
	})
	t.Run("UnsignedAcceptedAndMarkedWithAllowUnsigned", func(t *testing.T) {
		t.Parallel()
		a := tweed.New()
		a.AllowUnsigned = true
		req := &engine.Request{Header: http.Header{}, Body: body}
		require.NoError(t, a.Verify(req, now))
		ev, err := a.Parse(req)
		require.NoError(t, err)
		require.True(t, ev.Unsigned)
		require.Equal(t, sm.KindPaid, ev.Kind)
	})
	t.Run("ConfiguredSecretStillRequiredWithAllowUnsigned", func(t *testing.T) {
		t.Parallel()
		a := tweed.New(secret)
		a.AllowUnsigned = true
		refused(t, a.Verify(&engine.Request{Body: body}, now), "header missing")
		refused(t, a.Verify(&engine.Request{Header: tweed.Sign("forged", body), Body: body}, now), "does not match")
		req := signed(body)
		require.NoError(t, a.Verify(req, now))
		ev, err := a.Parse(req)
		require.NoError(t, err)
		require.False(t, ev.Unsigned)
	})
}

func TestParse_Errors(t *testing.T) {
	t.Parallel()
	a := tweed.New(secret)
	full := fixture(t, "done.json")
	const pre = `{"type":"CHECKOUT_STATUS_UPDATED","data":{"checkoutData":{"checkoutId":"c-1"},"status":"DONE"`
	cases := map[string][]byte{
		"Malformed":         []byte(`{"type":"CHECKOUT_STATUS_UPDATED","data":{`),
		"Truncated":         full[:len(full)/2],
		"NotAnObject":       []byte(`"DONE"`),
		"Empty":             nil,
		"MissingType":       []byte(`{"data":{"checkoutData":{"checkoutId":"c-1"},"status":"DONE"}}`),
		"LegacyV1":          []byte(`{"nftId":"17","status":"success","price":1080,"currency":"usd","transactionHash":"0xab"}`),
		"MissingData":       []byte(`{"type":"CHECKOUT_STATUS_UPDATED"}`),
		"MissingStatus":     []byte(`{"type":"CHECKOUT_STATUS_UPDATED","data":{"checkoutData":{"checkoutId":"c-1"}}}`),
		"MissingCheckoutID": []byte(`{"type":"CHECKOUT_STATUS_UPDATED","data":{"checkoutData":{"quantity":1},"status":"DONE"}}`),
		"CheckoutIDNumber":  []byte(`{"type":"CHECKOUT_STATUS_UPDATED","data":{"checkoutData":{"checkoutId":7},"status":"DONE"}}`),
		"BadAmount":         []byte(pre + `,"paymentData":{"amount":10.55,"currency":"usd"}}}`),
		"NegativeAmount":    []byte(pre + `,"paymentData":{"amount":-1080,"currency":"usd"}}}`),
		"StringAmountText":  []byte(pre + `,"paymentData":{"amount":"ten","currency":"usd"}}}`),
		"BadCurrency":       []byte(pre + `,"paymentData":{"amount":1080,"currency":"usdollar"}}}`),
		"BadCreated":        []byte(pre + `,"paymentData":{"amount":1080,"created":"soon"}}}`),
		"LivemodeNotBool":   []byte(pre + `,"paymentData":{"amount":1080,"livemode":"yes"}}}`),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := a.Parse(&engine.Request{Body: body})
			require.Error(t, err)
			require.Equal(t, engine.EINVALID, engine.ErrorCode(err), engine.ErrorMessage(err))
		})
	}
	t.Run("UnknownStatusWithOddPaymentIsUnknownNotInvalid", func(t *testing.T) {
		t.Parallel()
		body := []byte(`{"type":"CHECKOUT_STATUS_UPDATED","data":{"checkoutData":{"checkoutId":"c-1"},"status":"PARTIALLY_DONE",
			"paymentData":{"amount":{"value":10.55}}}}`)
		ev, err := a.Parse(&engine.Request{Body: body})
		require.NoError(t, err)
		require.Equal(t, sm.KindUnknown, ev.Kind)
		require.Equal(t, "PARTIALLY_DONE", ev.Type)
		require.Equal(t, "c-1", ev.CheckoutID)
	})
}

func BenchmarkVerifyParse(b *testing.B) {
	a := tweed.New(secret)
	req := signed(fixture(b, "done.json"))
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Verify(req, now); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Parse(req); err != nil {
			b.Fatal(err)
		}
	}
}
