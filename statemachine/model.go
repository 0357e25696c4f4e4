package statemachine

import "time"

// State is where an order stands.
type State string

// The order states. Paid, PartiallyRefunded, Refunded, Failed and Expired are
// outcomes; NeedsReview means the provider said two contradictory final
// things and a person must decide.
const (
	Pending           State = "pending"
	Processing        State = "processing"
	Paid              State = "paid"
	PartiallyRefunded State = "partially_refunded"
	Refunded          State = "refunded"
	Failed            State = "failed"
	Expired           State = "expired"
	NeedsReview       State = "needs_review"
)

// States lists every state in lifecycle order.
var States = []State{Pending, Processing, Paid, PartiallyRefunded, Refunded, Failed, Expired, NeedsReview}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, v := range States {
		if v == s {
			return true
		}
	}
	return false
}

// Final reports whether s is an outcome rather than a step on the way.
func (s State) Final() bool {
	switch s {
	case Paid, PartiallyRefunded, Refunded, Failed, Expired, NeedsReview:
		return true
	}
	return false
}

// Captured reports whether money was taken in state s.
func (s State) Captured() bool {
	return s == Paid || s == PartiallyRefunded || s == Refunded
}

// Kind is a canonical event kind: what a provider event means for the order.
type Kind string

// The canonical event kinds an adapter emits.
const (
	KindCheckoutCreated       Kind = "checkout_created"
	KindPaymentProcessing     Kind = "payment_processing"
	KindPaymentAttemptFailed  Kind = "payment_attempt_failed"
	KindPaid                  Kind = "paid"
	KindFailed                Kind = "failed"
	KindExpired               Kind = "expired"
	KindRefunded              Kind = "refunded"
	KindFailedAfterSettlement Kind = "failed_after_settlement"
	KindInformational         Kind = "informational"
	// KindUnknown marks a provider event type nobody documented: stored and
	// counted, never applied.
	KindUnknown Kind = "unknown"
)

// Kinds lists every kind that can change or annotate an order.
var Kinds = []Kind{
	KindCheckoutCreated, KindPaymentProcessing, KindPaymentAttemptFailed, KindPaid, KindFailed,
	KindExpired, KindRefunded, KindFailedAfterSettlement, KindInformational,
}

// Valid reports whether k is a known kind (KindUnknown included).
func (k Kind) Valid() bool {
	if k == KindUnknown {
		return true
	}
	for _, v := range Kinds {
		if v == k {
			return true
		}
	}
	return false
}

// Rank is the position of a kind in an order's lifecycle: an event of a lower
// rank arriving after one of a higher rank arrived out of order. Kinds that
// carry no lifecycle meaning have rank -1.
func (k Kind) Rank() int {
	switch k {
	case KindCheckoutCreated:
		return 0
	case KindPaymentProcessing, KindPaymentAttemptFailed:
		return 1
	case KindPaid, KindFailed, KindExpired:
		return 2
	case KindRefunded, KindFailedAfterSettlement:
		return 3
	}
	return -1
}

// Result classifies what one event did to an order.
type Result string

// The results. Duplicate is decided by the engine (the same provider event
// seen before); Ignored marks an event type nobody documented.
const (
	Applied   Result = "applied"
	Stale     Result = "stale"
	Duplicate Result = "duplicate"
	Conflict  Result = "conflict"
	Ignored   Result = "ignored"
)

// Totals are the amounts folded over an order's events. Every field is
// combined commutatively, so the totals after a set of events do not depend
// on the order they were applied in.
type Totals struct {
	// Registered is the amount the shop registered, in minor units (0: unknown).
	Registered int64 `json:"registered"`
	// Captured is the largest amount any paid event carried (0: none did).
	Captured int64 `json:"captured"`
	// Refunded is the sum of refund amounts.
	Refunded int64 `json:"refunded"`
	// FullRefund is set when a refund event carried no amount, which
	// providers only do for a refund of the whole payment.
	FullRefund bool `json:"full_refund"`
}

// Add folds one event's amount into the totals.
func (t *Totals) Add(k Kind, amount int64) {
	switch k {
	case KindPaid:
		if amount > t.Captured {
			t.Captured = amount
		}
	case KindRefunded:
		if amount <= 0 {
			t.FullRefund = true
		}
		if amount > 0 {
			t.Refunded += amount
		}
	}
}

// CaptureBase is the amount refunds are measured against: what a paid event
// carried, else what the shop registered.
func (t Totals) CaptureBase() int64 {
	if t.Captured > 0 {
		return t.Captured
	}
	return t.Registered
}

// RefundState is partially_refunded or refunded, from the totals.
func (t Totals) RefundState() State {
	base := t.CaptureBase()
	if t.FullRefund || (base > 0 && t.Refunded >= base) {
		return Refunded
	}
	return PartiallyRefunded
}

// Progress tracks how far along its lifecycle an order's events have come,
// to tell when one arrives out of order.
type Progress struct {
	MaxRank     int       `json:"max_rank"`
	MaxOccurred time.Time `json:"max_occurred"`
}

// NewProgress is the progress of an order with no events.
func NewProgress() Progress { return Progress{MaxRank: -1} }

// Observe records an event and reports whether it arrived out of order: after
// an event later in the lifecycle, or with a provider time earlier than an
// event already seen. Events with no lifecycle rank are never out of order.
func (p *Progress) Observe(k Kind, occurred time.Time) bool {
	r := k.Rank()
	if r < 0 {
		return false
	}
	out := r < p.MaxRank || (!occurred.IsZero() && !p.MaxOccurred.IsZero() && occurred.Before(p.MaxOccurred))
	if r > p.MaxRank {
		p.MaxRank = r
	}
	if occurred.After(p.MaxOccurred) {
		p.MaxOccurred = occurred
	}
	return out
}
