package reconcile

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

func TestHuman(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                               "0s",
		47 * time.Second:                "47s",
		15 * time.Minute:                "15m",
		47*time.Minute + 30*time.Second: "47m 30s",
		time.Hour + 7*time.Minute:       "1h 7m",
		2*time.Hour + 5*time.Second:     "2h",
		24*time.Hour + 30*time.Minute:   "1d 30m",
		49 * time.Hour:                  "2d 1h",
		-90 * time.Second:               "-1m 30s",
		1500 * time.Millisecond:         "2s",
		3*24*time.Hour + 59*time.Second: "3d",
	} {
		require.Equal(t, want, human(d), d.String())
	}
}

func TestLagPercentiles(t *testing.T) {
	t.Parallel()
	var lags []time.Duration
	for i := 1; i <= 100; i++ {
		lags = append(lags, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, Lag{Samples: 100, P50Ms: 50, P95Ms: 95, MaxMs: 100}, lag(lags))
	require.Equal(t, Lag{Samples: 1, P50Ms: 7, P95Ms: 7, MaxMs: 7}, lag([]time.Duration{7 * time.Millisecond}))
	require.Equal(t, Lag{}, lag(nil))
}

func TestKinds_EveryKindIsDescribed(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, k := range kinds {
		seen[k.kind] = true
	}
	for _, k := range engine.AnomalyKinds {
		require.True(t, seen[k], "the report has no title or action for %s", k)
	}
}

func TestFileStamp(t *testing.T) {
	t.Parallel()
	require.Equal(t, "2026-03-02T0300Z", FileStamp(time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)))
	require.Equal(t, "2026-03-02T030010Z", FileStamp(time.Date(2026, 3, 2, 3, 0, 10, 0, time.UTC)))
}

func TestMoney(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		minor    int64
		currency string
		want     string
	}{
		{127390, "USD", "USD 1,273.90"},
		{5, "USD", "USD 0.05"},
		{0, "EUR", "EUR 0.00"},
		{100000000, "ZAR", "ZAR 1,000,000.00"},
		{127390, "JPY", "JPY 127,390"},
		{999, "KRW", "KRW 999"},
		{1500000, "VND", "VND 1,500,000"},
		{127390, "KWD", "KWD 127.390"},
		{7, "BHD", "BHD 0.007"},
		{-2500, "USD", "USD -25.00"},
		{4999, "usd", "USD 49.99"},
		{700, "", "700 (minor units, no currency)"},
	} {
		require.Equal(t, c.want, money(c.minor, c.currency), "%d %s", c.minor, c.currency)
	}
}

// A Tweed order that failed after settlement with no DONE before it has
// moved money the provider never put a figure on: "captured 0" would read
// as "nothing taken".
func TestAmounts(t *testing.T) {
	t.Parallel()
	fas := ActionOrder{OrderFacts: OrderFacts{Registered: true, Amount: 246110, Currency: "USD", Mode: "live", State: sm.NeedsReview},
		Timeline: []Evidence{{Seq: 4, Kind: sm.KindFailedAfterSettlement, Result: sm.Conflict}}}
	require.Equal(t, "Registered: USD 2,461.10 (live); captured: amount not reported; nothing refunded", amounts(fas))
	require.Equal(t, "USD 2,461.10", orderAmount(fas))

	refunded := ActionOrder{OrderFacts: OrderFacts{Registered: true, Amount: 5000, Currency: "JPY", Mode: "live", State: sm.Refunded, Captured: 5000},
		Timeline: []Evidence{{Seq: 1, Kind: sm.KindPaid, Amount: 5000, Currency: "JPY"}, {Seq: 2, Kind: sm.KindRefunded}}}
	require.Equal(t, "Registered: JPY 5,000 (live); captured JPY 5,000; refunded: amount not reported", amounts(refunded))

	// The captured figure is in the currency the provider used, not the
	// one the shop registered.
	currency := ActionOrder{OrderFacts: OrderFacts{Provider: "yoco", Registered: true, Amount: 2500, Currency: "ZAR", Mode: "live", State: sm.Paid,
		Captured: 2500}, Timeline: []Evidence{{Seq: 7, Kind: sm.KindPaid, Amount: 2500, Currency: "USD"}}}
	mismatch := OrderAnomaly{Kind: engine.AnomalyCurrencyMismatch, EventSeqs: []int64{7},
		Explanation: "yoco captured 2500 USD for an order registered as 2500 ZAR."}
	require.Equal(t, "Registered: ZAR 25.00 (live); captured USD 25.00; nothing refunded", amounts(currency))
	require.Equal(t, "yoco captured USD 25.00 for an order registered as ZAR 25.00.", explain(currency, mismatch))

	ghost := ActionOrder{OrderFacts: OrderFacts{State: sm.Paid, Captured: 700}, Timeline: []Evidence{{Seq: 1, Kind: sm.KindPaid, Amount: 700, Currency: "USD"}}}
	require.Equal(t, "Not registered by the shop; captured USD 7.00; nothing refunded", amounts(ghost))
	require.Equal(t, "USD 7.00 captured", orderAmount(ghost))
}

func TestKinds_EveryActionKindHasAShortAction(t *testing.T) {
	t.Parallel()
	for _, k := range kinds {
		require.Equal(t, engine.Severity(k.kind) == engine.SeverityAction, k.short != "", k.kind)
		require.NotContains(t, k.short, ".", "a table cell, not a sentence: %s", k.kind)
	}
}

// A few orders a provider retried all day must not push the report past
// what a mail client shows.
func TestDetailed_BoundsTimelineRows(t *testing.T) {
	t.Parallel()
	order := func(events int) ActionOrder { return ActionOrder{Timeline: make([]Evidence, events)} }
	require.Equal(t, 3, detailed([]ActionOrder{order(5), order(5), order(5), order(5)}, 3))
	require.Equal(t, 2, detailed([]ActionOrder{order(60), order(60), order(1)}, 15))
	require.Equal(t, 1, detailed([]ActionOrder{order(500), order(1)}, 15), "the first order is always detailed")
	require.Equal(t, 0, detailed(nil, 15))
}

func TestTimes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0 times", 1: "once", 2: "twice", 3: "3 times", 12: "12 times"} {
		require.Equal(t, want, times(n))
	}
}
