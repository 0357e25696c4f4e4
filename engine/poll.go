package engine

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	sm "github.com/orderstate/orderstate/statemachine"
)

// Poller asks one provider's API what became of a checkout: the same
// question a missing webhook would have answered. Only providers that
// document a checkout retrieve API have one (Tazapay, Yoco).
type Poller interface {
	// Provider is the adapter's name: "tazapay".
	Provider() string
	// Poll asks about the checkout the shop registered. It returns a
	// *PollError when the provider did not answer with a checkout.
	Poll(ctx context.Context, checkoutID string) (PollAnswer, error)
}

// PollAnswer is what a provider said about a checkout.
type PollAnswer struct {
	// Status is the provider's own words, for logs and metrics:
	// "payment_status=paid status=active".
	Status string
	// Event is the fact the answer establishes, mapped onto the canonical
	// kinds the webhooks use, with Source SourcePoll; nil when it
	// establishes none (a checkout still open and unpaid, or a status
	// nobody could confirm the meaning of).
	Event *Event
	// Raw is the provider's answer as it came, kept beside the event as a
	// webhook's body is.
	Raw []byte
}

// PollError is a provider API call that gave no usable answer.
type PollError struct {
	// Reason is the metric label: "unauthorized", "not_found",
	// "rate_limited", "unavailable", "timeout", "malformed", "error".
	Reason string
	// Status is the HTTP status, 0 when none came.
	Status int
	// RetryAfter is what a 429 or 503 asked to wait; 0 when it did not say.
	RetryAfter time.Duration
	// Message says what happened; it never holds a credential.
	Message string
}

func (e *PollError) Error() string { return e.Message }

// PollEvent builds the event a poll answer establishes: a fact like a
// webhook's, marked as learned by polling. Its dedupe key is the fact
// itself (provider, checkout, kind), so asking twice and hearing the same
// answer stores it once.
//
// The webhook that later brings the same fact cannot share that key: its
// own is the provider's event id, which no checkout API returns. It is
// stored beside the poll's, and the fold makes the two one fact instead: a
// second paid changes no state (paid on paid is no transition), the
// captured amount is the largest any paid event carried, not a sum, and a
// poll never reports a refund, the one kind whose amounts add up. So the
// state, the totals and the order-free anomalies are those of one fact
// whichever came first; the webhook's timeline entry shows it changed
// nothing (from paid to paid).
func PollEvent(provider, checkoutID, providerType string, kind sm.Kind) Event {
	key := fmt.Sprintf("poll:%s:%s", checkoutID, kind)
	return Event{Provider: provider, EventID: key, DedupeKey: key, Type: providerType, Kind: kind,
		CheckoutID: checkoutID, Source: SourcePoll}
}

// outcomeClass groups kinds by what they say of the money: 1 taken, 0 not
// taken and never will be on this checkout, -1 neither.
func outcomeClass(k sm.Kind) int {
	switch k {
	case sm.KindPaid, sm.KindRefunded:
		return 1
	case sm.KindExpired, sm.KindFailed:
		return 0
	}
	return -1
}

func stateClass(s sm.State) int {
	switch {
	case s.Captured():
		return 1
	case s == sm.Failed || s == sm.Expired:
		return 0
	}
	return -1
}

// PollContradicts reports whether a polled fact of kind contradicts an
// order that reached final state s: the provider's API says the money was
// taken where the webhooks said it was not, or the reverse.
func PollContradicts(s sm.State, k sm.Kind) bool {
	c := outcomeClass(k)
	return c >= 0 && stateClass(s) >= 0 && c != stateClass(s)
}

// Apply folds ev into an order in state s with totals t, as every store
// and refold must: by the transition table, except that a fact learned by
// polling never takes an order out of a final state by itself. When it
// contradicts the outcome the order has (paid against expired, expired
// and unpaid against paid), the order goes to needs_review and the event
// is a conflict, which Assess raises with both facts.
func Apply(s sm.State, t *sm.Totals, kind sm.Kind, amount int64, source string) (sm.Outcome, error) {
	if source == SourcePoll && PollContradicts(s, kind) {
		t.Add(kind, amount)
		return sm.Outcome{From: s, To: sm.NeedsReview, Result: sm.Conflict}, nil
	}
	return sm.Apply(s, t, kind, amount)
}

// pollConflicts returns the polled facts recorded as conflicts and the
// earlier facts each contradicts.
func pollConflicts(events []Fact) (polls, contradicted []Fact) {
	for _, p := range events {
		if p.Source != SourcePoll || p.Result != sm.Conflict || outcomeClass(p.Kind) < 0 {
			continue
		}
		polls = append(polls, p)
		for _, q := range events {
			if q.Seq < p.Seq && outcomeClass(q.Kind) >= 0 && outcomeClass(q.Kind) != outcomeClass(p.Kind) {
				contradicted = append(contradicted, q)
			}
		}
	}
	return polls, contradicted
}

// PollStore is what polling needs from a store besides Store.
type PollStore interface {
	Store
	// PollCandidates returns the orders worth asking a provider about:
	// those still pending or processing whose customer came back in
	// [from, to), and those with an open missing_webhook or stuck anomaly
	// opened at or after from. They come newest first by PollKey, those
	// before the key before (the zero Key: from the newest), at most limit
	// of them, so a caller pages through them all.
	PollCandidates(ctx context.Context, from, to time.Time, before Key, limit int) ([]SweepOrder, error)
	// NoteAnomaly adds a note to an anomaly and leaves its status as it
	// is. Returns ENOTFOUND or EINVALID.
	NoteAnomaly(ctx context.Context, id int64, note string) error
}

// PollKey is where a candidate stands in PollCandidates' order: its
// redirect time, else the time it entered its state, then its ref.
func PollKey(o SweepOrder) Key {
	if o.Redirect != nil {
		return Key{At: o.Redirect.At, Ref: o.Ref}
	}
	return Key{At: o.StateSince, Ref: o.Ref}
}

// PollStats is what polling did since the process started, for the report
// and /metrics.
type PollStats struct {
	// Pollable are the providers polling asks; Unpollable the configured
	// ones that document no API to ask.
	Pollable   []string    `json:"pollable"`
	Unpollable []string    `json:"unpollable"`
	Polls      []PollCount `json:"polls"`
	// GaveUp counts the orders polling stopped asking about.
	GaveUp int `json:"gave_up"`
}

// PollCount is a number of polls of one provider with one result.
type PollCount struct {
	Provider string `json:"provider"`
	Result   string `json:"result"`
	Count    int    `json:"count"`
}

// Sort orders the counts by provider, then result.
func (s *PollStats) Sort() {
	slices.SortFunc(s.Polls, func(a, b PollCount) int {
		return cmp.Or(cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Result, b.Result))
	})
}
