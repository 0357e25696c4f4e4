package engine

import (
	"fmt"

	sm "github.com/orderstate/orderstate/statemachine"
)

// RedirectContradiction explains how the outcome the customer's redirect
// claimed contradicts the order's state, or returns "" when it does not.
func RedirectContradiction(outcome string, state sm.State) string {
	switch {
	case outcome == RedirectSuccess && (state == sm.Failed || state == sm.Expired):
		return fmt.Sprintf("The customer came back with success, but the provider says the checkout %s. Check whether the customer was charged.", state)
	case outcome != RedirectSuccess && state.Captured():
		return fmt.Sprintf("The customer came back with %s, but the provider says the order is %s. The customer may think they were not charged.", outcome, state)
	}
	return ""
}
