package reconcile

import "github.com/orderstate/orderstate/engine"

// kindText is how the report names a kind and what it asks the reader to
// do: action in full where an order is detailed, short in the one line the
// triage table has for it.
type kindText struct {
	kind   string
	title  string
	action string
	short  string
}

// kinds is every anomaly kind in the order the report shows them: money
// that moved wrongly first, then outcomes nobody confirmed, then what only
// needs a look, then what was absorbed.
var kinds = []kindText{
	{engine.AnomalyFailedAfterSettlement, "Failed after the money moved",
		"Funds reached the provider but the order failed. Refund the customer or deliver the order; do not leave both undone.",
		"Refund the customer or deliver the order"},
	{engine.AnomalyConflict, "Contradictory outcomes",
		"The provider said two final things that cannot both be true. Ask the provider which one stands before shipping or refunding.",
		"Ask the provider which outcome stands"},
	{engine.AnomalyLateAfterFinal, "Outcome changed after it was final",
		"The order was already settled one way when this event changed it. Check what the shop did on the first outcome (shipped, cancelled, emailed) and correct it.",
		"Correct what the shop did on the first outcome"},
	{engine.AnomalyMissingWebhook, "Customer came back paid, no webhook",
		"Look the checkout up in the provider's dashboard. If it was captured, fulfil the order and ask the provider why the webhook did not arrive; if not, contact the customer.",
		"Look the checkout up; fulfil if captured"},
	{engine.AnomalyRedirectMismatch, "Redirect and provider disagree",
		"Check in the provider's dashboard whether the customer was charged, and tell the customer what actually happened.",
		"Check whether the customer was charged; tell them"},
	{engine.AnomalyAmountMismatch, "Captured amount differs from the order",
		"Compare the captured amount with the order. Collect the difference or refund the excess before fulfilling.",
		"Collect the difference or refund before fulfilling"},
	{engine.AnomalyCurrencyMismatch, "Captured currency differs from the order",
		"Check the settlement at the provider and correct the order or refund; do not fulfil on a currency the shop did not price.",
		"Check the settlement; correct or refund before fulfilling"},
	{engine.AnomalyCheckoutMismatch, "Paid through a checkout not registered for the order",
		"Money moved on a checkout the shop did not register for this order; the payment found the order only by the shop's reference. Check at the provider that this payment belongs to this order (a second checkout the customer opened, or another order's payment) before fulfilling or refunding.",
		"Check the payment belongs to this order"},
	{engine.AnomalyModeMismatch, "Test and live mixed",
		"A test-mode event reached a live order or the reverse. Check which keys and webhook endpoint the provider uses; do not ship on a test payment.",
		"Check the provider keys; never ship on a test payment"},
	{engine.AnomalyStuck, "Stuck without an outcome",
		"Look the checkout up at the provider. If the customer abandoned it, cancel the order; if it was paid, the webhook was lost: fulfil and tell the provider.",
		"Look the checkout up; cancel if abandoned"},
	{engine.AnomalyOutOfOrder, "Arrived out of order", "", ""},
	{engine.AnomalyDuplicate, "Delivered more than once", "", ""},
}

func describe(kind string) kindText {
	for _, k := range kinds {
		if k.kind == kind {
			return k
		}
	}
	return kindText{kind: kind, title: kind, action: "Look the order up at the provider.", short: "Look the order up at the provider"}
}

func kindRank(kind string) int {
	for i, k := range kinds {
		if k.kind == kind {
			return i
		}
	}
	return len(kinds)
}
