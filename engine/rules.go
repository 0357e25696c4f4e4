package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"

	sm "github.com/orderstate/orderstate/statemachine"
)

// Facts is everything a store knows of one order that the order-free rules
// look at: what the shop registered and reported, the events the providers
// sent (originals, not redeliveries), and the state they fold to. Like the
// state, what Assess finds in it depends on the set of events, never on
// the order they arrived in, nor on when the shop registered.
type Facts struct {
	State sm.State
	// Registration is nil until the shop registers the order. Its
	// CheckoutID and OtherIDs are the provider ids the shop registered for
	// it, whichever calls named them.
	Registration *Registration
	Redirect     *Redirect
	Events       []Fact
}

// Fact is one stored event as the rules see it.
type Fact struct {
	Seq      int64
	Provider string
	Type     string
	Kind     sm.Kind
	Amount   int64
	Currency string
	Mode     string
	// IDs are the provider ids the event named, its checkout id first; nil
	// for an event stored before its ids were kept, which the checkout
	// rule then takes on trust.
	IDs []string
	// Source is SourceWebhook or SourcePoll; Result what the event was
	// recorded as doing (the conflict rule for polls reads both).
	Source string
	Result sm.Result
}

// FactOf is what a store keeps of ev, once it is stored as seq.
func FactOf(ev Event, seq int64) Fact {
	return Fact{Seq: seq, Provider: ev.Provider, Type: ev.Type, Kind: ev.Kind, Amount: ev.Amount, Currency: ev.Currency,
		Mode: ev.Mode, IDs: EventIDs(ev), Source: SourceOf(ev.Source)}
}

// EventIDs lists the provider ids ev names, its checkout id first, each
// once.
func EventIDs(ev Event) []string {
	ids := make([]string, 0, 1+len(ev.Refs))
	for _, id := range append([]string{ev.CheckoutID}, ev.Refs...) {
		if id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// Named is what an event's ids name among the stored orders, each order a
// T that ref identifies.
type Named[T any] struct {
	// First is the order the first known id names; Found is false when no
	// id names one.
	First T
	Found bool
	// Others are the other orders later ids name: the event shows them to
	// be one checkout with First, so they merge into it.
	Others []int64
	// Missing are the ids no order has yet: the event's order takes them.
	Missing []string
}

// NameOrders sorts an event's ids (EventIDs) by what lookup finds for each.
func NameOrders[T any](ids []string, lookup func(id string) (T, bool), ref func(T) int64) Named[T] {
	var n Named[T]
	for _, id := range ids {
		o, ok := lookup(id)
		switch {
		case !ok:
			n.Missing = append(n.Missing, id)
		case !n.Found:
			n.First, n.Found = o, true
		case ref(o) != ref(n.First) && !slices.Contains(n.Others, ref(o)):
			n.Others = append(n.Others, ref(o))
		}
	}
	return n
}

// Finding is an anomaly the rules find on an order: its kind, what a person
// reads about it, and the events that show it, ascending.
type Finding struct {
	Kind   string
	Detail string
	Seqs   []int64
}

// OrderFreeKinds are the kinds Assess decides. The others are about how
// events arrived (out_of_order, duplicate, late_after_final), which is
// ArrivalFindings', or about time (missing_webhook, stuck), which is the
// reconciler's.
var OrderFreeKinds = []string{
	AnomalyConflict, AnomalyFailedAfterSettlement, AnomalyAmountMismatch, AnomalyCurrencyMismatch,
	AnomalyModeMismatch, AnomalyCheckoutMismatch, AnomalyRedirectMismatch,
}

// IsOrderFree reports whether Assess decides kind.
func IsOrderFree(kind string) bool { return slices.Contains(OrderFreeKinds, kind) }

// changesNothing reports whether an event of kind can never change an
// order, so it raises nothing: an undocumented type, or one that only
// attaches data. A stale event is not one of them: which of two events is
// stale depends on which arrived first, and the rules may not.
func changesNothing(k sm.Kind) bool { return k == sm.KindUnknown || k == sm.KindInformational }

// movesMoney reports whether an event of kind says money moved.
func movesMoney(k sm.Kind) bool {
	return k == sm.KindPaid || k == sm.KindRefunded || k == sm.KindFailedAfterSettlement
}

// Assess returns the order-free anomalies the facts show, in OrderFreeKinds
// order. Each is a function of the set of facts, so every arrival order of
// the same events, every way their orders were merged and every moment of
// registration gives the same findings:
//
//   - failed_after_settlement: the provider said the funds moved and the
//     order failed anyway.
//   - conflict: money was captured (a paid event, or a refund, which
//     implies one) and the provider also said the checkout failed. Failing
//     twice (failed, and failed after settlement) is no contradiction, and
//     a capture beside a failure after settlement is what
//     failed_after_settlement already says.
//   - amount_mismatch, currency_mismatch: a captured amount differs from the
//     registered one; when the currency differs too only currency_mismatch
//     is raised, since amounts in two currencies say nothing of each other.
//     A refund in another currency is a currency_mismatch.
//   - mode_mismatch: a test-mode event for a live order, or the reverse.
//   - checkout_mismatch: money moved on a checkout the shop did not register
//     for the order: none of the event's ids is one the shop registered,
//     nor tied to one by an event that names both.
//   - redirect_mismatch: the customer's redirect contradicts the state.
//
// Events that can change nothing (undocumented types, informational ones)
// raise nothing.
func Assess(f Facts) []Finding {
	var out []Finding
	// The words are only written for what is found: Assess runs on every
	// webhook, and finds nothing on most.
	add := func(kind string, facts []Fact, detail func() string) {
		if len(facts) > 0 {
			out = append(out, Finding{Kind: kind, Detail: detail(), Seqs: seqsOf(facts)})
		}
	}
	var settled, paid, failed []Fact
	for _, e := range f.Events {
		switch e.Kind {
		case sm.KindFailedAfterSettlement:
			settled = append(settled, e)
		case sm.KindPaid, sm.KindRefunded:
			paid = append(paid, e)
		case sm.KindFailed:
			failed = append(failed, e)
		}
	}
	var conflict []Fact
	var why []string
	if len(paid) > 0 && len(failed) > 0 {
		conflict = append(append(conflict, paid...), failed...)
		why = append(why, fmt.Sprintf("%s sent contradictory outcomes: %s says the money was taken, %s says the checkout failed.",
			providers(conflict), types(paid), types(failed)))
	}
	if polls, earlier := pollConflicts(f.Events); len(polls) > 0 {
		conflict = append(append(conflict, polls...), earlier...)
		why = append(why, fmt.Sprintf("Asked by poll, %s answered %s, which contradicts %s received before; the order was not moved out of its outcome. "+
			"Check with the provider which is true.", providers(polls), types(polls), types(earlier)))
	}
	add(AnomalyConflict, conflict, func() string { return strings.Join(why, " ") })
	add(AnomalyFailedAfterSettlement, settled, func() string {
		return fmt.Sprintf("%s reported %s: the funds moved but the order failed. Refund the customer or deliver the order.",
			providers(settled), types(settled))
	})
	if reg := f.Registration; reg != nil {
		var amount, currency, mode, foreign []Fact
		regIDs := registeredIDs(reg)
		var linked func([]string) bool
		for _, e := range f.Events {
			if changesNothing(e.Kind) {
				continue
			}
			if e.Mode != "" && reg.Mode != "" && e.Mode != reg.Mode {
				mode = append(mode, e)
			}
			money := e.Kind == sm.KindPaid || e.Kind == sm.KindRefunded
			switch {
			case money && e.Currency != "" && e.Currency != reg.Currency:
				currency = append(currency, e)
			case e.Kind == sm.KindPaid && e.Amount > 0 && e.Amount != reg.Amount:
				amount = append(amount, e)
			}
			if !movesMoney(e.Kind) || e.IDs == nil || slices.ContainsFunc(e.IDs, func(id string) bool { return slices.Contains(regIDs, id) }) {
				continue
			}
			// Only an event that names no registered id needs the ties
			// the other events make.
			if linked == nil {
				linked = linkedToRegistration(reg, f.Events)
			}
			if !linked(e.IDs) {
				foreign = append(foreign, e)
			}
		}
		add(AnomalyAmountMismatch, amount, func() string {
			return fmt.Sprintf("%s captured %s for an order registered as %d %s.", providers(amount), amounts(amount), reg.Amount, reg.Currency)
		})
		add(AnomalyCurrencyMismatch, currency, func() string {
			return fmt.Sprintf("%s reported %s for an order registered as %d %s.", providers(currency), amounts(currency), reg.Amount, reg.Currency)
		})
		add(AnomalyModeMismatch, mode, func() string {
			return fmt.Sprintf("%s sent %s-mode events (%s) for an order registered as %s.", providers(mode), otherMode(reg.Mode), types(mode), reg.Mode)
		})
		add(AnomalyCheckoutMismatch, foreign, func() string {
			return fmt.Sprintf("%s reported %s on %s, which the shop did not register for this order (registered: %s); "+
				"the event named the order only by the shop's reference. Check that this payment belongs to this order.",
				providers(foreign), types(foreign), idsOf(foreign), strings.Join(regIDs, ", "))
		})
	}
	if f.Redirect != nil {
		if why := RedirectContradiction(f.Redirect.Outcome, f.State); why != "" {
			out = append(out, Finding{Kind: AnomalyRedirectMismatch, Detail: why})
		}
	}
	return out
}

// Unchanged reports whether adding ev to an order's facts, which moved the
// order from state from to state to, leaves what Assess finds exactly as it
// was (the same kinds, shown by the same events): a store whose anomalies
// are in line with Assess before ev may then skip reading the facts. It
// errs towards false.
func Unchanged(reg *Registration, redirect *Redirect, from, to sm.State, ev Fact) bool {
	switch {
	case to == sm.NeedsReview: // the contradictions
		return false
	case redirect != nil && from != to:
		return false
	case reg == nil: // no mismatch without a registration
		return true
	}
	regIDs := registeredIDs(reg)
	registered := func(id string) bool { return slices.Contains(regIDs, id) }
	if len(ev.IDs) > 1 && slices.ContainsFunc(ev.IDs, func(id string) bool { return !registered(id) }) {
		// It names an id the shop did not register beside others: it may
		// tie a payment's checkout to the registered one.
		return false
	}
	if changesNothing(ev.Kind) {
		return true
	}
	money := ev.Kind == sm.KindPaid || ev.Kind == sm.KindRefunded
	switch {
	case ev.Mode != "" && reg.Mode != "" && ev.Mode != reg.Mode,
		money && ev.Currency != "" && ev.Currency != reg.Currency,
		ev.Kind == sm.KindPaid && ev.Amount > 0 && ev.Amount != reg.Amount,
		movesMoney(ev.Kind) && ev.IDs != nil && !slices.ContainsFunc(ev.IDs, registered):
		return false
	}
	return true
}

// Resolution says why an order-free anomaly of kind no longer holds for f;
// only the ones that can stop holding as facts are added have one.
func Resolution(kind string, f Facts) string {
	switch kind {
	case AnomalyRedirectMismatch:
		outcome := "none"
		if f.Redirect != nil {
			outcome = f.Redirect.Outcome
		}
		return fmt.Sprintf("The redirect (%s) and the order's state (%s) agree now.", outcome, f.State)
	case AnomalyCheckoutMismatch:
		return "A later event tied the checkout that moved the money to the one the shop registered."
	}
	return "The condition no longer holds."
}

// linkedToRegistration returns whether a set of ids belongs to a checkout the
// shop registered for the order: an id it registered, or one an event ties
// to such an id by naming both (a Tazapay checkout event names the checkout
// and its payin). The ties are the events', so arrival order does not matter.
func linkedToRegistration(reg *Registration, events []Fact) func(ids []string) bool {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		p, ok := parent[x]
		if !ok || p == x {
			return x
		}
		r := find(p)
		parent[x] = r
		return r
	}
	union := func(ids []string) {
		for _, id := range ids[1:] {
			a, b := find(ids[0]), find(id)
			if a != b {
				parent[a] = b
			}
		}
	}
	regIDs := registeredIDs(reg)
	union(regIDs)
	for _, e := range events {
		if len(e.IDs) > 1 {
			union(e.IDs)
		}
	}
	root := find(regIDs[0])
	return func(ids []string) bool {
		for _, id := range ids {
			if find(id) == root {
				return true
			}
		}
		return false
	}
}

func registeredIDs(reg *Registration) []string {
	return EventIDs(Event{CheckoutID: reg.CheckoutID, Refs: reg.OtherIDs})
}

// ArrivalFindings returns the anomalies about how one event arrived, given
// what applying it did: out_of_order when it came after events later in
// the lifecycle, late_after_final when it changed an outcome already
// reached. These depend on arrival by their nature.
func ArrivalFindings(ev Event, seq int64, out sm.Outcome, outOfOrder bool) []Finding {
	var found []Finding
	if outOfOrder {
		found = append(found, Finding{Kind: AnomalyOutOfOrder, Seqs: []int64{seq},
			Detail: fmt.Sprintf("%s %s (provider time %s) arrived after events later in the lifecycle; it was recorded as %s.",
				ev.Provider, ev.Type, timeOrNone(ev.OccurredAt), out.Result)})
	}
	if out.LateAfterFinal {
		found = append(found, Finding{Kind: AnomalyLateAfterFinal, Seqs: []int64{seq},
			Detail: fmt.Sprintf("%s %s arrived after the order was already %s and moved it to %s.", ev.Provider, ev.Type, out.From, out.To)})
	}
	return found
}

// DuplicateFinding is the anomaly a redelivery of an event raises.
func DuplicateFinding(ev Event, seq int64) Finding {
	return Finding{Kind: AnomalyDuplicate, Seqs: []int64{seq},
		Detail: fmt.Sprintf("%s delivered event %s again; it was counted and not applied.", ev.Provider, ev.EventID)}
}

// Settled is an anomaly an event resolves, with why.
type Settled struct {
	Kind string
	Why  string
}

// RecoveredByPoll begins the resolution of a missing_webhook that a poll
// of the provider's API settled, so a report can tell those recoveries from
// the webhook's own.
const RecoveredByPoll = "Recovered by poll"

// SettledResolutions returns the anomalies an event that gave an order its
// outcome resolves: a webhook that was missing has come, and an order that
// was stuck has moved.
func SettledResolutions(ev Event, out sm.Outcome, redirect *Redirect, now time.Time) []Settled {
	if !out.Changed() || !out.To.Final() {
		return nil
	}
	var res []Settled
	switch {
	case redirect == nil: // missing_webhook is only ever raised after a redirect
	case ev.Source == SourcePoll:
		res = append(res, Settled{AnomalyMissingWebhook, fmt.Sprintf("%s: %s answered %s; the webhook had been missing for %s since the customer's redirect.",
			RecoveredByPoll, ev.Provider, ev.Type, since(redirect.At, now))})
	default:
		res = append(res, Settled{AnomalyMissingWebhook, fmt.Sprintf("%s %s arrived %s after the redirect.", ev.Provider, ev.Type, since(redirect.At, now))})
	}
	return append(res, Settled{AnomalyStuck, fmt.Sprintf("the order moved to %s.", out.To)})
}

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

// The helpers below describe a set of facts in words that do not depend on
// the order the facts are listed in: sorted, each once.

func seqsOf(fs []Fact) []int64 {
	var out []int64
	for _, f := range fs {
		out = append(out, f.Seq)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sortedSet(fs []Fact, of func(Fact) string) string {
	var out []string
	for _, f := range fs {
		if s := of(f); s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ", ")
}

func providers(fs []Fact) string { return sortedSet(fs, func(f Fact) string { return f.Provider }) }
func types(fs []Fact) string     { return sortedSet(fs, func(f Fact) string { return f.Type }) }
func idsOf(fs []Fact) string {
	return sortedSet(fs, func(f Fact) string { return strings.Join(f.IDs, "/") })
}

func amounts(fs []Fact) string {
	return sortedSet(fs, func(f Fact) string {
		if f.Amount == 0 {
			return strings.TrimSpace("an amount not given " + f.Currency)
		}
		return strings.TrimSpace(fmt.Sprintf("%d %s", f.Amount, f.Currency))
	})
}

func otherMode(mode string) string {
	if mode == ModeLive {
		return ModeTest
	}
	return ModeLive
}

func timeOrNone(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format(time.RFC3339)
}

func since(from, to time.Time) string {
	if from.IsZero() {
		return "some time"
	}
	return to.Sub(from).Round(time.Second).String()
}
