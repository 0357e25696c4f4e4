package statemachine

// Fact is one event as the set rules see it.
type Fact struct {
	Kind   Kind
	Amount int64
}

// Decide is DESIGN's rule list stated over a whole set of events, with no
// notion of arrival order. Apply implements the same rules one event at a
// time; tests hold the two to agreement on every permutation.
func Decide(registered int64, facts []Fact) State {
	t := Totals{Registered: registered}
	has := map[Kind]bool{}
	for _, f := range facts {
		has[f.Kind] = true
		t.Add(f.Kind, f.Amount)
	}
	money := has[KindPaid] || has[KindRefunded]
	switch {
	case has[KindFailedAfterSettlement], money && has[KindFailed]:
		return NeedsReview
	case has[KindRefunded]:
		return t.RefundState()
	case has[KindPaid]:
		return Paid
	case has[KindFailed]:
		return Failed
	case has[KindExpired]:
		return Expired
	case has[KindPaymentProcessing], has[KindPaymentAttemptFailed]:
		return Processing
	}
	return Pending
}
