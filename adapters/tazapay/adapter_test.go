package tazapay_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

const (
	secret   = "tzp_webhook_secret_8c1f2a"
	fixtures = "../../testdata/tazapay"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	require.NoError(t, err)
	return b
}

func signed(body []byte) *engine.Request {
	return &engine.Request{Header: tazapay.Sign(secret, body), Body: body}
}

func ts(s string) time.Time {
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return v
}

func TestParse_Fixtures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file string
		want engine.Event
	}{
		{"checkout_created.json", engine.Event{
			EventID: "evt_d0hq0c0p51c5jo1f5y10", Type: "checkout.created", Kind: sm.KindCheckoutCreated,
			CheckoutID: "chk_d0hq1m8p51c5jo1f5z90", Refs: []string{"pay_d0hq1m8p51c5jo1f5z9g"}, Reference: "order_10042",
			OccurredAt: ts("2025-05-14T06:30:01.204518Z"), Amount: 4999, Currency: "USD",
		}},
		{"checkout_paid.json", engine.Event{
			EventID: "evt_d0hq3k2p51c5jo1f6aa0", Type: "checkout.paid", Kind: sm.KindPaid,
			CheckoutID: "chk_d0hq1m8p51c5jo1f5z90", Refs: []string{"pay_d0hq1m8p51c5jo1f5z9g"}, Reference: "order_10042",
			OccurredAt: ts("2025-05-14T06:41:22.118402913Z"), Amount: 4999, Currency: "USD",
		}},
		// The older documentation: integer created_at, string amount,
		// lower-case currency, status expired beside payment_status paid.
		{"checkout_paid_legacy.json", engine.Event{
			EventID: "evt_auigfianfoangohuehg", Type: "checkout.paid", Kind: sm.KindPaid,
			CheckoutID: "chk_ahfafooi7ibakbfahoan", Refs: []string{"pay_bfiuafuiafianifnao"}, Reference: "55679-7657",
			OccurredAt: time.Unix(958793503, 0).UTC(), Amount: 6700, Currency: "USD",
		}},
		{"checkout_expired.json", engine.Event{
			EventID: "evt_d0hr9s8p51c5jo1f7bb0", Type: "checkout.expired", Kind: sm.KindExpired,
			CheckoutID: "chk_d0hq5b0p51c5jo1f60g0", Refs: []string{"pay_d0hq5b0p51c5jo1f60gg"}, Reference: "order_10043",
			OccurredAt: ts("2025-05-15T06:30:02.000731Z"), Amount: 12000, Currency: "SGD",
		}},
		// status and payment_status are independent: expired but paid is paid.
		{"checkout_expired_paid.json", engine.Event{
			EventID: "evt_cirt0bsl4ar024j0b3k0", Type: "checkout.expired", Kind: sm.KindPaid,
			CheckoutID: "chk_ahfafooi7ibakbfahoan", Refs: []string{"pay_bfiuafuiafianifnao"}, Reference: "55679-7657",
			OccurredAt: ts("2023-07-21T14:01:05.112093Z"), Amount: 6700, Currency: "USD",
		}},
		{"checkout_tax_invoice_generated.json", engine.Event{
			EventID: "evt_d0hq5ugp51c5jo1f6cc0", Type: "checkout.tax_invoice_generated", Kind: sm.KindInformational,
			CheckoutID: "chk_d0hq1m8p51c5jo1f5z90", Refs: []string{"pay_d0hq1m8p51c5jo1f5z9g"}, Reference: "order_10042",
			OccurredAt: ts("2025-05-14T06:45:10.53Z"), Amount: 4999, Currency: "USD",
		}},
		// Attempts carry no money (charge currency) and no shop reference.
		{"payment_attempt_created.json", engine.Event{
			EventID: "evt_d0hq1u0p51c5jo1f5zz0", Type: "payment_attempt.created", Kind: sm.KindPaymentProcessing,
			CheckoutID: "pay_d0hq1m8p51c5jo1f5z9g", Refs: []string{"pat_d0hq1u0p51c5jo1f5zy0"},
			OccurredAt: ts("2025-05-14T06:36:40.001Z"),
		}},
		// The documented payment_attempt.created sample's type drift.
		{"payment_attempt_created_requires_action.json", engine.Event{
			EventID: "evt_auigfianfoangohuehh", Type: "payment_attempt.requires_action", Kind: sm.KindPaymentProcessing,
			CheckoutID: "pay_bfiuafuiafianifnao", Refs: []string{"pat_ahfafooi7ibakbfahoan"},
			OccurredAt: time.Unix(958793503, 0).UTC(),
		}},
		// Some samples put the chk_ id in an attempt's payin field.
		{"payment_attempt_processing.json", engine.Event{
			EventID: "evt_d0hq26gp51c5jo1f6000", Type: "payment_attempt.processing", Kind: sm.KindPaymentProcessing,
			CheckoutID: "chk_d0hq1m8p51c5jo1f5z90", Refs: []string{"pat_d0hq1u0p51c5jo1f5zy0"},
			OccurredAt: ts("2025-05-14T06:37:02.45Z"),
		}},
		{"payment_attempt_failed.json", engine.Event{
			EventID: "evt_d0hq2a", Type: "payment_attempt.failed", Kind: sm.KindPaymentAttemptFailed,
			CheckoutID: "pay_d0hq1m8p51c5jo1f5z9g", Refs: []string{"pat_d0hq2a"},
			OccurredAt: ts("2025-05-14T06:38:09.5Z"),
		}},
		{"payment_attempt_succeeded.json", engine.Event{
			EventID: "evt_d0hq3k0p51c5jo1f6a90", Type: "payment_attempt.succeeded", Kind: sm.KindPaid,
			CheckoutID: "pay_d0hq1m8p51c5jo1f5z9g", Refs: []string{"pat_d0hq320p51c5jo1f6a00"},
			OccurredAt: ts("2025-05-14T06:41:21.9902Z"),
		}},
		{"payin_requires_payment_method.json", engine.Event{
			EventID: "evt_auigfiafaaaufaeoanfgohuehg", Type: "payin.requires_payment_method", Kind: sm.KindPaymentProcessing,
			CheckoutID: "pay_ahfafooi7fibakbfahoan", Reference: "order_20077",
			OccurredAt: ts("2023-12-25T21:59:59Z"), Amount: 100, Currency: "INR",
		}},
		{"payin_requires_action.json", engine.Event{
			EventID: "evt_auigfiafaaaufaeoanfgohuehh", Type: "payin.requires_action", Kind: sm.KindPaymentProcessing,
			CheckoutID: "pay_ahfafooi7fibakbfahoan", Refs: []string{"pat_ahfafooi7fibakbfahoap"}, Reference: "order_20077",
			OccurredAt: ts("2023-12-25T22:01:14Z"), Amount: 100, Currency: "INR",
		}},
		{"payin_processing.json", engine.Event{
			EventID: "evt_auigfiafaaaufaeoanfgohuehi", Type: "payin.processing", Kind: sm.KindPaymentProcessing,
			CheckoutID: "pay_ahfafooi7fibakbfahoan", Refs: []string{"pat_ahfafooi7fibakbfahoap"}, Reference: "order_20077",
			OccurredAt: ts("2023-12-25T22:02:40Z"), Amount: 100, Currency: "INR",
		}},
		{"payin_succeeded.json", engine.Event{
			EventID: "evt_auigfiafaaaufaeoanfgohuehj", Type: "payin.succeeded", Kind: sm.KindPaid,
			CheckoutID: "pay_ahfafooi7fibakbfahoan", Refs: []string{"pat_ahfafooi7fibakbfahoap"}, Reference: "order_20077",
			OccurredAt: ts("2023-12-25T22:03:05Z"), Amount: 100, Currency: "INR",
		}},
		{"payin_cancelled.json", engine.Event{
			EventID: "evt_cs1oj8q7a5ng2a3ng1a0", Type: "payin.cancelled", Kind: sm.KindFailed,
			CheckoutID: "pay_cs1oina7a5ng2a3ng12g", Reference: "order_20078",
			OccurredAt: ts("2023-12-26T09:15:00Z"), Amount: 2500, Currency: "SGD",
		}},
		{"refund_pending.json", engine.Event{
			EventID: "evt_auigfianfoangohuehg", Type: "refund.pending", Kind: sm.KindInformational,
			CheckoutID: "chk_cirsp2sl4ar024j0akj0", Refs: []string{"pat_ahbfiuahfiuaiofnioain"}, Reference: "order_12345",
			OccurredAt: ts("2023-07-23T23:59:56Z"), Amount: 90000, Currency: "USD",
		}},
		{"refund_succeeded.json", engine.Event{
			EventID: "evt_auigfianfoangohuehk", Type: "refund.succeeded", Kind: sm.KindRefunded,
			CheckoutID: "chk_cirsp2sl4ar024j0akj0", Refs: []string{"pat_ahbfiuahfiuaiofnioain"}, Reference: "order_12345",
			OccurredAt: ts("2023-07-24T00:05:12Z"), Amount: 90000, Currency: "USD",
		}},
		{"refund_failed.json", engine.Event{
			EventID: "evt_auigfianfoangohuehm", Type: "refund.failed", Kind: sm.KindInformational,
			CheckoutID: "chk_cirsp2sl4ar024j0akj0", Refs: []string{"pat_ahbfiuahfiuaiofnioain"}, Reference: "order_12345",
			OccurredAt: ts("2023-07-24T00:05:12Z"), Amount: 90000, Currency: "USD",
		}},
		// A payout's own id names no checkout.
		{"payout_created.json", engine.Event{
			EventID: "evt_d0ia0g0p51c5jo1f8000", Type: "payout.created", Kind: sm.KindUnknown,
			OccurredAt: ts("2025-05-16T02:00:00.5Z"),
		}},
		{"unknown_type.json", engine.Event{
			EventID: "evt_d0u1a00p51c5jo1f9000", Type: "dispute.created", Kind: sm.KindUnknown,
			CheckoutID: "pay_d0hq1m8p51c5jo1f5z9g", OccurredAt: ts("2025-06-01T10:00:00Z"),
		}},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.file] = true
		name := strings.TrimSuffix(tc.file, ".json")
		t.Run(camel(name), func(t *testing.T) {
			t.Parallel()
			a := tazapay.New(secret)
			req := signed(fixture(t, tc.file))
			require.NoError(t, a.Verify(req, time.Now()))
			got, err := a.Parse(req)
			require.NoError(t, err)
			want := tc.want
			want.Provider = tazapay.Name
			want.DedupeKey = want.EventID
			require.Equal(t, want, got)
			require.Equal(t, time.UTC, got.OccurredAt.Location())
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

func camel(s string) string {
	var b strings.Builder
	for _, part := range strings.Split(s, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func TestParse_ModeComesFromConfiguration(t *testing.T) {
	t.Parallel()
	body := fixture(t, "checkout_paid.json")
	for _, mode := range []string{"", engine.ModeLive, engine.ModeTest} {
		a := tazapay.New(secret)
		a.Mode = mode
		ev, err := a.Parse(signed(body))
		require.NoError(t, err)
		require.Equal(t, mode, ev.Mode)
	}
	a := tazapay.New(secret)
	a.Mode = "sandbox"
	_, err := a.Parse(signed(body))
	require.Equal(t, engine.EINTERNAL, engine.ErrorCode(err))
}

func TestParse_Ids(t *testing.T) {
	t.Parallel()
	a := tazapay.New(secret)
	t.Run("PayinWithCheckoutNamesTheCheckout", func(t *testing.T) {
		t.Parallel()
		body := []byte(`{"id":"evt_1","type":"payin.succeeded","created_at":"2025-01-01T00:00:00Z","data":{"id":"pay_1",
			"checkout":"chk_1","amount":500,"amount_paid":500,"invoice_currency":"usd","latest_payment_attempt":"pat_1"}}`)
		ev, err := a.Parse(signed(body))
		require.NoError(t, err)
		require.Equal(t, "chk_1", ev.CheckoutID)
		require.Equal(t, []string{"pay_1", "pat_1"}, ev.Refs)
		require.Equal(t, int64(500), ev.Amount)
		require.Equal(t, "USD", ev.Currency)
	})
	t.Run("CheckoutWhosePayinReusesItsIdHasNoRefs", func(t *testing.T) {
		t.Parallel()
		body := []byte(`{"id":"evt_2","type":"checkout.paid","created_at":"2025-01-01T00:00:00Z","data":{"id":"chk_2",
			"payin":"chk_2","amount":700,"invoice_currency":"USD","payment_status":"paid"}}`)
		ev, err := a.Parse(signed(body))
		require.NoError(t, err)
		require.Equal(t, "chk_2", ev.CheckoutID)
		require.Empty(t, ev.Refs)
		require.Equal(t, int64(700), ev.Amount, "amount stands in for a missing amount_paid")
	})
	t.Run("CreatedWithPaymentStatusPaidIsPaid", func(t *testing.T) {
		t.Parallel()
		body := []byte(`{"id":"evt_3","type":"checkout.created","created_at":"2025-01-01T00:00:00Z","data":{"id":"chk_3",
			"amount":700,"amount_paid":650,"invoice_currency":"USD","status":"active","payment_status":"paid"}}`)
		ev, err := a.Parse(signed(body))
		require.NoError(t, err)
		require.Equal(t, sm.KindPaid, ev.Kind)
		require.Equal(t, int64(650), ev.Amount)
	})
	t.Run("UnknownTypeWithoutDataStillParses", func(t *testing.T) {
		t.Parallel()
		ev, err := a.Parse(signed([]byte(`{"id":"evt_4","type":"escrow.released","created_at":"2025-01-01T00:00:00Z"}`)))
		require.NoError(t, err)
		require.Equal(t, sm.KindUnknown, ev.Kind)
		require.Equal(t, "evt_4", ev.DedupeKey)
		require.Empty(t, ev.CheckoutID)
	})
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := fixture(t, "checkout_paid.json")
	now := time.Now()
	refused := func(t *testing.T, err error, says string) {
		t.Helper()
		require.Error(t, err)
		require.Equal(t, engine.EUNAUTHORIZED, engine.ErrorCode(err))
		msg := engine.ErrorMessage(err)
		require.Contains(t, msg, says)
		require.NotContains(t, msg, secret)
		require.NotContains(t, err.Error(), secret)
	}

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, tazapay.New(secret).Verify(signed(body), now))
	})
	t.Run("SignatureIsTheDocumentedRecipe", func(t *testing.T) {
		t.Parallel()
		want := tazapay.Signature(secret, "evt_d0hq3k2p51c5jo1f6aa0", "2025-05-14T06:41:22.118402913Z", body)
		require.Equal(t, want, tazapay.Sign(secret, body).Get("signature"))
		legacy := fixture(t, "checkout_paid_legacy.json")
		want = tazapay.Signature(secret, "evt_auigfianfoangohuehg", "958793503", legacy)
		require.Equal(t, want, tazapay.Sign(secret, legacy).Get("signature"))
	})
	t.Run("WrongSecret", func(t *testing.T) {
		t.Parallel()
		req := &engine.Request{Header: tazapay.Sign("another_secret", body), Body: body}
		err := tazapay.New(secret).Verify(req, now)
		refused(t, err, "does not match")
		require.NotContains(t, err.Error(), req.Header.Get("signature"))
	})
	t.Run("BodyChangedByOneByte", func(t *testing.T) {
		t.Parallel()
		req := signed(body)
		req.Body = bytes.Replace(body, []byte("4999"), []byte("4998"), 1)
		refused(t, tazapay.New(secret).Verify(req, now), "does not match")
	})
	t.Run("CreatedAtChanged", func(t *testing.T) {
		t.Parallel()
		req := signed(body)
		req.Body = bytes.Replace(body, []byte("06:41:22.118402913Z"), []byte("06:41:22.118402914Z"), 1)
		refused(t, tazapay.New(secret).Verify(req, now), "does not match")
	})
	t.Run("HeaderMissing", func(t *testing.T) {
		t.Parallel()
		refused(t, tazapay.New(secret).Verify(&engine.Request{Header: http.Header{}, Body: body}, now), "header missing")
		refused(t, tazapay.New(secret).Verify(&engine.Request{Body: body}, now), "header missing")
		h := http.Header{}
		h.Set("Signature", "  ")
		refused(t, tazapay.New(secret).Verify(&engine.Request{Header: h, Body: body}, now), "header missing")
	})
	t.Run("HeaderGarbled", func(t *testing.T) {
		t.Parallel()
		for _, v := range []string{"not base64 !!", "c2hvcnQ=", "sha256=" + strings.Repeat("ab", 32)} {
			h := http.Header{}
			h.Set("Signature", v)
			err := tazapay.New(secret).Verify(&engine.Request{Header: h, Body: body}, now)
			refused(t, err, "not a base64 HMAC-SHA256")
			require.NotContains(t, err.Error(), v)
		}
	})
	t.Run("UnpaddedBase64Accepted", func(t *testing.T) {
		t.Parallel()
		req := signed(body)
		req.Header.Set("Signature", strings.TrimRight(req.Header.Get("Signature"), "="))
		require.NoError(t, tazapay.New(secret).Verify(req, now))
	})
	t.Run("BodyNotAnEvent", func(t *testing.T) {
		t.Parallel()
		bad := []byte(`{"id":"evt_1","created_at":true}`)
		refused(t, tazapay.New(secret).Verify(signed(bad), now), "cannot read the id and created_at")
		refused(t, tazapay.New(secret).Verify(signed([]byte(`{"id":`)), now), "cannot read the id and created_at")
	})
	t.Run("NoSecretConfigured", func(t *testing.T) {
		t.Parallel()
		refused(t, tazapay.New().Verify(signed(body), now), "no Tazapay webhook secret")
		refused(t, tazapay.New("").Verify(&engine.Request{Header: tazapay.Sign("", body), Body: body}, now), "no Tazapay webhook secret")
	})
	t.Run("RotationAcceptsEitherSecret", func(t *testing.T) {
		t.Parallel()
		a := tazapay.New("old_secret", "new_secret")
		for _, s := range []string{"old_secret", "new_secret"} {
			require.NoError(t, a.Verify(&engine.Request{Header: tazapay.Sign(s, body), Body: body}, now), s)
		}
		refused(t, a.Verify(&engine.Request{Header: tazapay.Sign("retired_secret", body), Body: body}, now), "does not match")
	})
	// Tazapay documents no tolerance window and signs no delivery time, so
	// an event signed long ago still verifies; dedupe on the id absorbs it.
	t.Run("NoToleranceWindowExists", func(t *testing.T) {
		t.Parallel()
		a := tazapay.New(secret)
		for _, at := range []time.Time{{}, now.Add(-365 * 24 * time.Hour), now.Add(365 * 24 * time.Hour)} {
			require.NoError(t, a.Verify(signed(body), at))
		}
	})
}

func TestParse_Errors(t *testing.T) {
	t.Parallel()
	a := tazapay.New(secret)
	full := fixture(t, "checkout_paid.json")
	cases := map[string][]byte{
		"Malformed":          []byte(`{"id":"evt_1","type":"checkout.paid",`),
		"Truncated":          full[:len(full)/2],
		"NotAnObject":        []byte(`["checkout.paid"]`),
		"Empty":              nil,
		"MissingID":          []byte(`{"type":"checkout.paid","created_at":"2025-01-01T00:00:00Z","data":{"id":"chk_1"}}`),
		"MissingType":        []byte(`{"id":"evt_1","created_at":"2025-01-01T00:00:00Z","data":{"id":"chk_1"}}`),
		"MissingData":        []byte(`{"id":"evt_1","type":"checkout.paid","created_at":"2025-01-01T00:00:00Z"}`),
		"DataNotAnObject":    []byte(`{"id":"evt_1","type":"checkout.paid","data":"chk_1"}`),
		"MissingCheckoutID":  []byte(`{"id":"evt_1","type":"checkout.paid","data":{"amount":100,"invoice_currency":"USD"}}`),
		"AttemptWithoutIds":  []byte(`{"id":"evt_1","type":"payment_attempt.failed","data":{"id":"","amount":100}}`),
		"RefundWithoutPayin": []byte(`{"id":"evt_1","type":"refund.succeeded","data":{"id":"rfd_1","amount":100,"currency":"USD"}}`),
		"RefundWithoutAmount": []byte(`{"id":"evt_1","type":"refund.succeeded","data":{"id":"rfd_1","payin":"pay_1",
			"currency":"USD"}}`),
		"BadAmountFraction": []byte(`{"id":"evt_1","type":"checkout.paid","data":{"id":"chk_1","amount":"67.5"}}`),
		"BadAmountText":     []byte(`{"id":"evt_1","type":"checkout.paid","data":{"id":"chk_1","amount_paid":"lots"}}`),
		"NegativeAmount":    []byte(`{"id":"evt_1","type":"refund.succeeded","data":{"payin":"pay_1","amount":-5}}`),
		"BadCurrency":       []byte(`{"id":"evt_1","type":"checkout.paid","data":{"id":"chk_1","amount":1,"invoice_currency":"dollars"}}`),
		"BadCreatedAt":      []byte(`{"id":"evt_1","type":"checkout.paid","created_at":"last tuesday","data":{"id":"chk_1"}}`),
		"IDNotAString":      []byte(`{"id":42,"type":"checkout.paid","data":{"id":"chk_1"}}`),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := a.Parse(&engine.Request{Body: body})
			require.Error(t, err)
			require.Equal(t, engine.EINVALID, engine.ErrorCode(err), engine.ErrorMessage(err))
		})
	}
}

func TestSign_HeaderIsBase64OfASHA256(t *testing.T) {
	t.Parallel()
	h := tazapay.Sign(secret, fixture(t, "refund_succeeded.json"))
	sig, err := base64.StdEncoding.DecodeString(h.Get("Signature"))
	require.NoError(t, err)
	require.Len(t, sig, 32)
	require.Equal(t, "application/json", h.Get("Content-Type"))
}

func BenchmarkVerifyParse(b *testing.B) {
	a := tazapay.New(secret)
	req := signed(fixture(b, "checkout_paid.json"))
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
