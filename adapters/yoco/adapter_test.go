package yoco_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/yoco"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

const (
	// secret is the Standard Webhooks specification's example secret.
	secret   = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	msgID    = "msg_2kQ9xLmP0aZbQ1"
	fixtures = "../../testdata/yoco"
)

// now is the time every test request is signed and verified at.
var now = time.Date(2024, 8, 2, 10, 15, 4, 0, time.UTC)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	require.NoError(t, err)
	return b
}

func signed(id string, body []byte, at time.Time) *engine.Request {
	return &engine.Request{Header: yoco.Sign(secret, id, body, at), Body: body}
}

func ts(s string) time.Time {
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return v
}

func TestAdapter_Provider(t *testing.T) {
	t.Parallel()
	var a engine.Adapter = yoco.MustNew(secret)
	require.Equal(t, "yoco", a.Provider())
}

func TestNew_Secrets(t *testing.T) {
	t.Parallel()
	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		a, err := yoco.New(secret, yoco.NewSecret())
		require.NoError(t, err)
		require.NotNil(t, a)
	})
	t.Run("NewSecretIsUsable", func(t *testing.T) {
		t.Parallel()
		s1, s2 := yoco.NewSecret(), yoco.NewSecret()
		require.True(t, strings.HasPrefix(s1, "whsec_"), s1)
		require.NotEqual(t, s1, s2)
		body := fixture(t, "payment_succeeded_test.json")
		req := &engine.Request{Header: yoco.Sign(s1, msgID, body, now), Body: body}
		require.NoError(t, yoco.MustNew(s1).Verify(req, now))
	})
	for name, bad := range map[string]string{
		"NoPrefix":         "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"APIKeyNotSecret":  "sk_test_960bfde0VBrLlpK098e4ffeb53e1",
		"NotBase64":        "whsec_not base64!",
		"EmptyAfterPrefix": "whsec_",
		"Empty":            "",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, err := yoco.New(secret, bad)
			require.Error(t, err)
			require.Nil(t, a)
			require.Contains(t, err.Error(), "secret 2 of 2")
			if bad != "" && bad != "whsec_" {
				require.NotContains(t, err.Error(), bad)
			}
			require.Panics(t, func() { yoco.MustNew(bad) })
		})
	}
	t.Run("NoSecret", func(t *testing.T) {
		t.Parallel()
		_, err := yoco.New()
		require.ErrorContains(t, err, "no webhook secret")
	})
}

func TestParse_Fixtures(t *testing.T) {
	t.Parallel()
	cases := map[string]engine.Event{
		"payment_succeeded_test.json": {
			EventID: "evt_2kQ9xLmP0aZ", Type: "payment.succeeded", Kind: sm.KindPaid,
			CheckoutID: "ch_Q1w2E3r4", Refs: []string{"p_8MnV2c"},
			OccurredAt: ts("2024-08-02T10:15:03.512Z"), Amount: 12500, Currency: "ZAR", Mode: engine.ModeTest,
		},
		// The event's createdDate is two hours before the payment's, as in
		// Yoco's own sample: the event's is the one recorded.
		"payment_succeeded_live.json": {
			EventID: "evt_7Rt5yUiO3pA", Type: "payment.succeeded", Kind: sm.KindPaid,
			CheckoutID: "ch_Z9x8C7v6", Refs: []string{"p_3XkL9q"},
			OccurredAt: ts("2024-08-05T15:51:20.031Z"), Amount: 45000, Currency: "ZAR", Mode: engine.ModeLive,
		},
		"refund_succeeded.json": {
			EventID: "evt_4Hj8kLzX1cV", Type: "refund.succeeded", Kind: sm.KindRefunded,
			CheckoutID: "ch_Q1w2E3r4", Refs: []string{"p_8MnV2c"},
			OccurredAt: ts("2024-08-03T08:02:45.210Z"), Amount: 12500, Currency: "ZAR", Mode: engine.ModeTest,
		},
		"refund_succeeded_partial.json": {
			EventID: "evt_9Bn3mQwE5rT", Type: "refund.succeeded", Kind: sm.KindRefunded,
			CheckoutID: "ch_Z9x8C7v6", Refs: []string{"p_3XkL9q"},
			OccurredAt: ts("2024-08-06T09:30:12.400Z"), Amount: 15000, Currency: "ZAR", Mode: engine.ModeLive,
		},
		"refund_failed.json": {
			EventID: "evt_5Cv1bNmA8sD", Type: "refund.failed", Kind: sm.KindInformational,
			CheckoutID: "ch_Z9x8C7v6", Refs: []string{"p_3XkL9q"},
			OccurredAt: ts("2024-08-06T09:41:57.118Z"), Amount: 30000, Currency: "ZAR", Mode: engine.ModeLive,
		},
		"unknown_type.json": {
			EventID: "evt_0Lk2jHgF6dS", Type: "payment.failed", Kind: sm.KindUnknown,
			CheckoutID: "ch_P0o9I8u7", OccurredAt: ts("2024-08-07T12:00:05.000Z"), Mode: engine.ModeTest,
		},
	}
	entries, err := os.ReadDir(fixtures)
	require.NoError(t, err)
	for _, e := range entries {
		_, ok := cases[e.Name()]
		require.True(t, ok, "fixture %s has no expectation here", e.Name())
	}
	a := yoco.MustNew(secret)
	for name, want := range cases {
		t.Run(camel(name), func(t *testing.T) {
			t.Parallel()
			body := fixture(t, name)
			// Sign at the event's own time, as Yoco would on first delivery.
			id := "msg_" + strings.TrimSuffix(name, ".json")
			req := signed(id, body, want.OccurredAt)
			require.NoError(t, a.Verify(req, want.OccurredAt.Add(time.Second)))
			got, err := a.Parse(req)
			require.NoError(t, err)
			want.Provider = yoco.Name
			want.DedupeKey = id
			require.Equal(t, want, got)
			require.Equal(t, time.UTC, got.OccurredAt.Location())
		})
	}
}

// camel turns "refund_succeeded.json" into "RefundSucceeded" for a subtest name.
func camel(file string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(strings.TrimSuffix(file, ".json"), "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func TestParse_Dedupe(t *testing.T) {
	t.Parallel()
	a := yoco.MustNew(secret)
	body := fixture(t, "payment_succeeded_test.json")
	t.Run("RetryKeepsWebhookID", func(t *testing.T) {
		t.Parallel()
		// A retry carries a new timestamp and signature but the same id.
		first, err := a.Parse(signed(msgID, body, now))
		require.NoError(t, err)
		retry, err := a.Parse(signed(msgID, body, now.Add(5*time.Minute)))
		require.NoError(t, err)
		require.Equal(t, msgID, first.DedupeKey)
		require.Equal(t, first.DedupeKey, retry.DedupeKey)
		require.Equal(t, "evt_2kQ9xLmP0aZ", retry.EventID)
	})
	t.Run("NoHeaderFallsBackToBodyID", func(t *testing.T) {
		t.Parallel()
		ev, err := a.Parse(&engine.Request{Header: http.Header{}, Body: body})
		require.NoError(t, err)
		require.Equal(t, "evt_2kQ9xLmP0aZ", ev.DedupeKey)
	})
}

func TestParse_Shapes(t *testing.T) {
	t.Parallel()
	a := yoco.MustNew(secret)
	parse := func(body string) (engine.Event, error) {
		return a.Parse(&engine.Request{Body: []byte(body)})
	}
	t.Run("NoEventTimeUsesPayloadTime", func(t *testing.T) {
		t.Parallel()
		ev, err := parse(`{"id":"evt_1","type":"payment.succeeded","payload":{"id":"p_1","createdDate":"2024-08-02T12:15:02.901+02:00",
			"amount":900,"currency":"ZAR","mode":"live","metadata":{"checkoutId":"ch_1"}}}`)
		require.NoError(t, err)
		require.Equal(t, ts("2024-08-02T10:15:02.901Z"), ev.OccurredAt)
		require.Equal(t, time.UTC, ev.OccurredAt.Location())
	})
	t.Run("NoTimeAtAll", func(t *testing.T) {
		t.Parallel()
		ev, err := parse(`{"id":"evt_1","type":"payment.succeeded","payload":{"id":"p_1","amount":900,"currency":"ZAR","metadata":{"checkoutId":"ch_1"}}}`)
		require.NoError(t, err)
		require.True(t, ev.OccurredAt.IsZero())
		require.Empty(t, ev.Mode)
	})
	t.Run("RefundWithoutAmountIsZero", func(t *testing.T) {
		t.Parallel()
		// The state machine reads a refund with no amount as a full refund.
		ev, err := parse(`{"id":"evt_1","type":"refund.succeeded","payload":{"id":"rfd_1","paymentId":"p_1","metadata":{"checkoutId":"ch_1"}}}`)
		require.NoError(t, err)
		require.Zero(t, ev.Amount)
		require.Equal(t, []string{"p_1"}, ev.Refs)
	})
	t.Run("RefundWithoutCheckoutFindsThePayment", func(t *testing.T) {
		t.Parallel()
		ev, err := parse(`{"id":"evt_1","type":"refund.succeeded","payload":{"id":"rfd_1","paymentId":"p_1","amount":500,"currency":"ZAR"}}`)
		require.NoError(t, err)
		require.Equal(t, "p_1", ev.CheckoutID)
		require.Empty(t, ev.Refs)
	})
	t.Run("UpperCaseMode", func(t *testing.T) {
		t.Parallel()
		ev, err := parse(`{"id":"evt_1","type":"payment.succeeded","payload":{"id":"p_1","mode":"LIVE","metadata":{"checkoutId":"ch_1"}}}`)
		require.NoError(t, err)
		require.Equal(t, engine.ModeLive, ev.Mode)
	})
	t.Run("UnknownTypeToleratesAnyPayload", func(t *testing.T) {
		t.Parallel()
		for _, payload := range []string{`"x"`, `[1]`, `null`, `{"metadata":{"checkoutId":7},"mode":"sandbox","amount":"lots"}`} {
			ev, err := parse(`{"id":"evt_9","type":"checkout.expired","payload":` + payload + `}`)
			require.NoError(t, err, payload)
			require.Equal(t, sm.KindUnknown, ev.Kind, payload)
			require.Equal(t, "evt_9", ev.DedupeKey, payload)
			require.Empty(t, ev.CheckoutID, payload)
			require.Empty(t, ev.Mode, payload)
		}
		ev, err := parse(`{"id":"evt_9","type":"checkout.expired"}`)
		require.NoError(t, err)
		require.Equal(t, sm.KindUnknown, ev.Kind)
	})
}

func TestParse_Errors(t *testing.T) {
	t.Parallel()
	good := string(fixture(t, "refund_succeeded_partial.json"))
	pay := func(payload string) string {
		return `{"id":"evt_1","type":"payment.succeeded","createdDate":"2024-08-02T10:15:03.512Z","payload":` + payload + `}`
	}
	cases := []struct {
		name, body, says string
	}{
		{"Empty", ``, "malformed"},
		{"MalformedJSON", `{"id":"evt_1","type":}`, "malformed"},
		{"Truncated", good[:len(good)/2], "malformed"},
		{"NotAnObject", `"evt_1"`, "malformed"},
		{"Null", `null`, "no id"},
		{"MissingID", `{"type":"payment.succeeded","payload":{"metadata":{"checkoutId":"ch_1"}}}`, "no id"},
		{"IDNotAString", `{"id":1,"type":"payment.succeeded"}`, "id is a JSON number, want a string"},
		{"MissingType", `{"id":"evt_1","payload":{"metadata":{"checkoutId":"ch_1"}}}`, "no type"},
		{"BadCreatedDate", `{"id":"evt_1","type":"payment.succeeded","createdDate":"soon","payload":{"metadata":{"checkoutId":"ch_1"}}}`, "createdDate"},
		{"MissingPayload", `{"id":"evt_1","type":"payment.succeeded"}`, "checkoutId"},
		{"MissingCheckoutID", pay(`{"id":"p_1","amount":900,"currency":"ZAR","metadata":{}}`), "checkoutId"},
		{"MissingMetadata", pay(`{"id":"p_1","amount":900,"currency":"ZAR"}`), "checkoutId"},
		{"CheckoutIDNotAString", pay(`{"metadata":{"checkoutId":42}}`), "payload.metadata.checkoutId is a JSON number"},
		{"PayloadNotAnObject", pay(`"p_1"`), "payload is a JSON string"},
		{"StringAmountGarbage", pay(`{"amount":"nine hundred","currency":"ZAR","metadata":{"checkoutId":"ch_1"}}`), "amount"},
		{"FractionalAmount", pay(`{"amount":9.5,"currency":"ZAR","metadata":{"checkoutId":"ch_1"}}`), "whole number"},
		{"NegativeAmount", pay(`{"amount":-900,"currency":"ZAR","metadata":{"checkoutId":"ch_1"}}`), "negative"},
		{"BadCurrency", pay(`{"amount":900,"currency":"R","metadata":{"checkoutId":"ch_1"}}`), "currency"},
		{"BadMode", pay(`{"amount":900,"currency":"ZAR","mode":"sandbox","metadata":{"checkoutId":"ch_1"}}`), "neither live nor test"},
		{"BadPayloadDate", pay(`{"createdDate":"tomorrow","metadata":{"checkoutId":"ch_1"}}`), "timestamp"},
	}
	a := yoco.MustNew(secret)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, err := a.Parse(&engine.Request{Body: []byte(tc.body)})
			require.Error(t, err)
			require.Equal(t, engine.EINVALID, engine.ErrorCode(err), err.Error())
			require.Contains(t, engine.ErrorMessage(err), tc.says)
			require.Equal(t, engine.Event{}, ev)
		})
	}
}
