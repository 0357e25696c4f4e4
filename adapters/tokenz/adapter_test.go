package tokenz_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tokenz"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

const (
	secret   = "tz_whk_2f9c4b7e1a8d4c0b9e6f3a5d7c1b8e2f"
	fixtures = "../../testdata/tokenz"
)

// now is the time every test request is signed and verified at.
var now = time.Date(2024, 7, 1, 9, 12, 45, 0, time.UTC)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	require.NoError(t, err)
	return b
}

func signed(body []byte, at time.Time) *engine.Request {
	return &engine.Request{Header: tokenz.Sign(secret, body, at), Body: body}
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
	var a engine.Adapter = tokenz.New(secret)
	require.Equal(t, "tokenz", a.Provider())
}

func TestParse_Fixtures(t *testing.T) {
	t.Parallel()
	cases := map[string]engine.Event{
		"order_created.json": {
			EventID: "event_01J1ZK5N8R", DedupeKey: "event_01J1ZK5N8R", Type: "order.created",
			Kind: sm.KindCheckoutCreated, CheckoutID: "order_7Hq2",
			OccurredAt: ts("2024-07-01T09:10:02.480Z"), Amount: 1500, Currency: "TWD", Mode: engine.ModeTest,
		},
		"order_succeeded.json": {
			EventID: "event_01J1ZM2D4F", DedupeKey: "event_01J1ZM2D4F", Type: "order.succeeded",
			Kind: sm.KindPaid, CheckoutID: "order_9Kx4",
			OccurredAt: ts("2024-07-02T14:03:17.905Z"), Amount: 32800, Currency: "TWD", Mode: engine.ModeLive,
		},
		"order_succeeded_dashboard_spelling.json": {
			EventID: "event_01J1ZK8Q3V", DedupeKey: "event_01J1ZK8Q3V", Type: "order_succeeded",
			Kind: sm.KindPaid, CheckoutID: "order_7Hq2",
			OccurredAt: ts("2024-07-01T09:12:44.120Z"), Amount: 1500, Currency: "TWD", Mode: engine.ModeTest,
		},
		"order_succeeded_nested_order.json": {
			EventID: "event_01J20A7C1M", DedupeKey: "event_01J20A7C1M", Type: "order.succeeded",
			Kind: sm.KindPaid, CheckoutID: "order_B5m8", Reference: "SO-20240703-0042",
			OccurredAt: ts("2024-07-03T02:45:09.064Z"), Amount: 99000, Currency: "TWD", Mode: "",
		},
		"unknown_type.json": {
			EventID: "event_01J21F0T6Z", DedupeKey: "event_01J21F0T6Z", Type: "order.refunded",
			Kind: sm.KindUnknown, CheckoutID: "order_9Kx4",
			OccurredAt: ts("2024-07-04T11:20:30.500Z"), Mode: engine.ModeLive,
		},
	}
	entries, err := os.ReadDir(fixtures)
	require.NoError(t, err)
	for _, e := range entries {
		_, ok := cases[e.Name()]
		require.True(t, ok, "fixture %s has no expectation here", e.Name())
	}
	a := tokenz.New(secret)
	for name, want := range cases {
		t.Run(camel(name), func(t *testing.T) {
			t.Parallel()
			req := signed(fixture(t, name), now)
			require.NoError(t, a.Verify(req, now))
			got, err := a.Parse(req)
			require.NoError(t, err)
			want.Provider = tokenz.Name
			require.Equal(t, want, got)
			require.Equal(t, time.UTC, got.OccurredAt.Location())
		})
	}
}

// camel turns "order_created.json" into "OrderCreated" for a subtest name.
func camel(file string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(strings.TrimSuffix(file, ".json"), "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func TestParse_AmountIsMinorUnits(t *testing.T) {
	t.Parallel()
	a := tokenz.New(secret)
	// The unit is an assumption (see the package comment): the integer is
	// stored as it comes, never scaled.
	ev, err := a.Parse(&engine.Request{Body: []byte(`{"id":"event_1","eventData":{"type":"order.succeeded",
		"data":{"id":"order_1","amount":{"amount":1500,"currency":"TWD"}}}}`)})
	require.NoError(t, err)
	require.Equal(t, int64(1500), ev.Amount)
	require.Equal(t, "TWD", ev.Currency)

	// A whole number written as a numeric string or 1500.0 is still 1500.
	for _, amount := range []string{`"1500"`, `1500.0`} {
		ev, err = a.Parse(&engine.Request{Body: []byte(`{"id":"event_1","eventData":{"type":"order.succeeded",
			"data":{"id":"order_1","amount":{"amount":` + amount + `,"currency":"twd"}}}}`)})
		require.NoError(t, err, amount)
		require.Equal(t, int64(1500), ev.Amount, amount)
	}

	// A fraction would mean the unit is major; that is refused, not guessed.
	_, err = a.Parse(&engine.Request{Body: []byte(`{"id":"event_1","eventData":{"type":"order.succeeded",
		"data":{"id":"order_1","amount":{"amount":1500.5,"currency":"TWD"}}}}`)})
	require.Equal(t, engine.EINVALID, engine.ErrorCode(err))
}

func TestParse_Shapes(t *testing.T) {
	t.Parallel()
	a := tokenz.New(secret)
	t.Run("BothDataIDAndOrderIDAreKept", func(t *testing.T) {
		t.Parallel()
		ev, err := a.Parse(&engine.Request{Body: []byte(`{"id":"event_2","eventData":{"type":"order.succeeded",
			"data":{"id":"order_A","order":{"id":"order_B","amount":{"amount":10,"currency":"TWD"}}}}}`)})
		require.NoError(t, err)
		require.Equal(t, "order_A", ev.CheckoutID)
		require.Equal(t, []string{"order_B"}, ev.Refs)
		require.Equal(t, int64(10), ev.Amount)
	})
	t.Run("NoAmountIsZero", func(t *testing.T) {
		t.Parallel()
		ev, err := a.Parse(&engine.Request{Body: []byte(`{"id":"event_3","eventData":{"type":"order.created","data":{"id":"order_C"}}}`)})
		require.NoError(t, err)
		require.Zero(t, ev.Amount)
		require.Empty(t, ev.Currency)
		require.True(t, ev.OccurredAt.IsZero())
		require.Empty(t, ev.Mode)
	})
	t.Run("MerchantReference", func(t *testing.T) {
		t.Parallel()
		ev, err := a.Parse(&engine.Request{Body: []byte(`{"id":"event_4","eventData":{"type":"order.created",
			"data":{"id":"order_D","merchantReference":"SO-7"}}}`)})
		require.NoError(t, err)
		require.Equal(t, "SO-7", ev.Reference)
	})
	t.Run("UnknownTypeToleratesAnyData", func(t *testing.T) {
		t.Parallel()
		for _, data := range []string{`"order_E"`, `[1,2]`, `{"id":7}`, `{"order":"x"}`, `null`} {
			ev, err := a.Parse(&engine.Request{Body: []byte(`{"id":"event_5","eventData":{"type":"order.mystery","data":` + data + `}}`)})
			require.NoError(t, err, data)
			require.Equal(t, sm.KindUnknown, ev.Kind, data)
			require.Equal(t, "event_5", ev.DedupeKey, data)
			require.Empty(t, ev.CheckoutID, data)
		}
		ev, err := a.Parse(&engine.Request{Body: []byte(`{"id":"event_6","eventData":{"type":"order.mystery",
			"data":{"order":{"id":"order_F"},"amount":"garbage"}}}`)})
		require.NoError(t, err)
		require.Equal(t, "order_F", ev.CheckoutID)
	})
}

func TestParse_Errors(t *testing.T) {
	t.Parallel()
	good := string(fixture(t, "order_succeeded.json"))
	cases := []struct {
		name, body, says string
	}{
		{"Empty", ``, "malformed"},
		{"MalformedJSON", `{"id":"event_1",}`, "malformed"},
		{"Truncated", good[:len(good)/2], "malformed"},
		{"NotAnObject", `["event_1"]`, "malformed"},
		{"Null", `null`, "no id"},
		{"MissingID", `{"eventData":{"type":"order.succeeded","data":{"id":"order_1"}}}`, "no id"},
		{"IDNotAString", `{"id":17,"eventData":{"type":"order.succeeded","data":{"id":"order_1"}}}`, "malformed"},
		{"MissingEventData", `{"id":"event_1"}`, "eventData.type"},
		{"MissingType", `{"id":"event_1","eventData":{"data":{"id":"order_1"}}}`, "eventData.type"},
		{"MissingOrderID", `{"id":"event_1","eventData":{"type":"order.succeeded","data":{"amount":{"amount":1,"currency":"TWD"}}}}`, "no order id"},
		{"MissingData", `{"id":"event_1","eventData":{"type":"order.created"}}`, "no order id"},
		{"DataNotAnObject", `{"id":"event_1","eventData":{"type":"order.succeeded","data":"order_1"}}`, "eventData.data"},
		{"StringAmountGarbage", `{"id":"event_1","eventData":{"type":"order.succeeded","data":{"id":"order_1","amount":{"amount":"12abc","currency":"TWD"}}}}`, "amount"},
		{"NegativeAmount", `{"id":"event_1","eventData":{"type":"order.succeeded","data":{"id":"order_1","amount":{"amount":-5,"currency":"TWD"}}}}`, "negative"},
		{"HugeAmount", `{"id":"event_1","eventData":{"type":"order.succeeded","data":{"id":"order_1","amount":{"amount":1e30,"currency":"TWD"}}}}`, "amount"},
		{"BadCurrency", `{"id":"event_1","eventData":{"type":"order.succeeded","data":{"id":"order_1","amount":{"amount":5,"currency":"NT$"}}}}`, "currency"},
		{"BadCreatedAt", `{"id":"event_1","createdAt":"last tuesday","eventData":{"type":"order.succeeded","data":{"id":"order_1"}}}`, "createdAt"},
		{"TestFlagNotABool", `{"id":"event_1","test":"yes","eventData":{"type":"order.succeeded","data":{"id":"order_1"}}}`, "malformed"},
	}
	a := tokenz.New(secret)
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
