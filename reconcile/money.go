package reconcile

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// decimals is how many digits currency's minor unit has: amounts are
// stored in minor units, so 127390 is USD 1,273.90 but JPY 127,390 and KWD
// 127.390, and a person reading the report cannot know which without the
// exponent. The table is engine's, the one registrations and webhooks are
// checked against; a code from before that check that is not in it is
// taken to have cents, as most currencies do.
func decimals(currency string) int {
	if d, ok := engine.MinorDigits(currency); ok {
		return d
	}
	return 2
}

// money shows minor units as the currency's major units with its code
// first, "USD 1,273.90", the way a dashboard or a bank statement shows them.
// Without a currency the exponent is unknown, so the amount stays in minor
// units and says so.
func money(minor int64, currency string) string {
	if currency == "" {
		return strconv.FormatInt(minor, 10) + " (minor units, no currency)"
	}
	neg := minor < 0
	u := uint64(minor)
	if neg {
		u = -u
	}
	digits := strconv.FormatUint(u, 10)
	d := decimals(currency)
	if len(digits) <= d {
		digits = strings.Repeat("0", d-len(digits)+1) + digits
	}
	whole, frac := digits[:len(digits)-d], digits[len(digits)-d:]
	var b strings.Builder
	b.WriteString(strings.ToUpper(currency))
	b.WriteByte(' ')
	if neg {
		b.WriteByte('-')
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if d > 0 {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

// amounts is an order's money in words: what the shop registered, what
// the provider captured and what it refunded. A provider that moved money
// without saying how much (a Tweed FAILED_AFTER_TX_COMPLETED with no paid
// event before it, a refund event with no amount) is reported as such: a 0
// there would read as "nothing was taken".
func amounts(o ActionOrder) string {
	var b strings.Builder
	if o.Registered {
		b.WriteString("Registered: " + money(o.Amount, o.Currency) + " (" + o.Mode + ")")
	} else {
		b.WriteString("Not registered by the shop")
	}
	switch {
	case o.Captured > 0:
		b.WriteString("; captured " + money(o.Captured, currencyOf(o, sm.KindPaid, o.Captured)))
	case o.State.Captured() || o.State == sm.NeedsReview:
		b.WriteString("; captured: amount not reported")
	default:
		b.WriteString("; nothing captured")
	}
	refunded := false
	for _, e := range o.Timeline {
		refunded = refunded || (e.Kind == sm.KindRefunded && e.Result != sm.Duplicate)
	}
	switch {
	case o.Refunded > 0:
		b.WriteString("; refunded " + money(o.Refunded, currencyOf(o, sm.KindRefunded, 0)))
	case refunded:
		b.WriteString("; refunded: amount not reported")
	default:
		b.WriteString("; nothing refunded")
	}
	return b.String()
}

// orderAmount is the one figure the triage table shows for an order: what
// the shop registered, else what the provider captured.
func orderAmount(o ActionOrder) string {
	switch {
	case o.Registered:
		return money(o.Amount, o.Currency)
	case o.Captured > 0:
		return money(o.Captured, currencyOf(o, sm.KindPaid, o.Captured)) + " captured"
	}
	return "not registered"
}

// currencyOf is the currency the provider's events of kind carried (the
// one whose amount is amount, when given), else the order's: a currency
// mismatch means the captured amount is not in the registered currency.
func currencyOf(o ActionOrder, kind sm.Kind, amount int64) string {
	cur := ""
	for _, e := range o.Timeline {
		if e.Kind == kind && e.Currency != "" && e.Result != sm.Duplicate && (amount == 0 || e.Amount == amount) {
			cur = e.Currency
		}
	}
	if cur == "" {
		return o.Currency
	}
	return cur
}

// explain is an anomaly's explanation for a person. The store words a
// mismatch in minor units ("captured 2900 USD"), which the JSON keeps as it
// was; here the amounts are shown as money, from the event that raised it.
func explain(o ActionOrder, a OrderAnomaly) string {
	if a.Kind != engine.AnomalyAmountMismatch && a.Kind != engine.AnomalyCurrencyMismatch {
		return a.Explanation
	}
	raised := map[int64]bool{}
	for _, s := range a.EventSeqs {
		raised[s] = true
	}
	for i := len(o.Timeline) - 1; i >= 0; i-- {
		e := o.Timeline[i]
		if raised[e.Seq] && e.Kind == sm.KindPaid && e.Amount > 0 {
			cur := e.Currency
			if cur == "" {
				cur = o.Currency
			}
			return fmt.Sprintf("%s captured %s for an order registered as %s.", o.Provider, money(e.Amount, cur), money(o.Amount, o.Currency))
		}
	}
	return a.Explanation
}
