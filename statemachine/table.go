package statemachine

// byRefunds is the target of a rule whose destination depends on the amounts:
// partially_refunded or refunded, resolved from the order's Totals.
const byRefunds State = "<by refunds>"

// Rule is one row of the transition table: an event of Kind arriving while
// the order is in one of From moves it To, and is classified as Result.
// A (state, kind) pair no rule names is stale: the event is behind the
// current state and changes nothing.
type Rule struct {
	Kind   Kind
	From   []State
	To     State
	Result Result
}

var (
	notYetFinal   = []State{Pending, Processing}
	captured      = []State{Paid, PartiallyRefunded, Refunded}
	allButReview  = []State{Pending, Processing, Paid, PartiallyRefunded, Refunded, Failed, Expired}
	refundSources = []State{Pending, Processing, Paid, Expired, PartiallyRefunded, Refunded}
)

// Table is the canonical transition table. Precedence, from DESIGN: a
// contradiction (money captured and failed, or failed after settlement) wins
// over everything; refunds over paid; paid over expired; failed over expired;
// any outcome over processing; processing over pending.
var Table = []Rule{
	{KindCheckoutCreated, []State{Pending}, Pending, Applied},

	{KindPaymentProcessing, notYetFinal, Processing, Applied},
	{KindPaymentAttemptFailed, notYetFinal, Processing, Applied},

	{KindPaid, []State{Pending, Processing, Expired, Paid}, Paid, Applied},
	{KindPaid, []State{Failed}, NeedsReview, Conflict},
	// A paid event behind a refund changes nothing but may carry the captured
	// amount the refunds are measured against.
	{KindPaid, []State{PartiallyRefunded, Refunded}, byRefunds, Stale},

	{KindFailed, []State{Pending, Processing, Expired, Failed}, Failed, Applied},
	{KindFailed, captured, NeedsReview, Conflict},

	{KindExpired, []State{Pending, Processing, Expired}, Expired, Applied},

	{KindRefunded, refundSources, byRefunds, Applied},
	{KindRefunded, []State{Failed}, NeedsReview, Conflict},

	{KindFailedAfterSettlement, allButReview, NeedsReview, Conflict},
	{KindFailedAfterSettlement, []State{NeedsReview}, NeedsReview, Conflict},
	{KindFailed, []State{NeedsReview}, NeedsReview, Conflict},
}

// lookup finds the rule for an event of kind k in state s.
func lookup(k Kind, s State) (Rule, bool) {
	for _, r := range Table {
		if r.Kind != k {
			continue
		}
		for _, f := range r.From {
			if f == s {
				return r, true
			}
		}
	}
	return Rule{}, false
}
