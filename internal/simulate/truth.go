package simulate

import (
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Expect derives what orderstate must conclude from an order's deliveries,
// in the sequence they arrive. It restates DESIGN's rules on its own rather
// than calling the state machine, so that the demo's self-check can catch
// the state machine out:
//
//   - The state is decided by the set of events received (decide), never by
//     their order.
//   - out_of_order: an event arrived after one later in the lifecycle, or
//     with a provider time earlier than one already received.
//   - duplicate: the same provider event (the same dedupe key) again.
//   - late_after_final: an event changed the outcome of an order that had
//     one from paid to not paid or the reverse, or into a contradiction;
//     failed_after_settlement has its own kind.
//
// Those three are about arrival. Every other kind is a function of the
// order's final set of facts, whatever order they came in, and is what
// must still be open (or acknowledged) at the end:
//
//   - conflict: a payment or refund beside a failure.
//   - failed_after_settlement: Tweed said so.
//   - amount, currency and mode mismatches: a payment (amount, currency), a
//     refund (currency) or any event that can change something (mode)
//     differs from the registration; only currency when both do.
//   - checkout_mismatch: money moved on ids the shop did not register for
//     the order, nor an event tied to them.
//   - redirect_mismatch: the redirect and the final state contradict each
//     other.
//   - stuck: still pending or processing when the clock passes the
//     time-to-live; missing_webhook: that, after a successful redirect.
//
// Webhooks find their order the way DESIGN says orders are found: by any
// provider id they carry, else by the shop's reference, else they start an
// order nobody registered; an event naming two such orders joins them, and
// one that names a registered order by reference brings the order its ids
// made along. A registration adopts the orders webhooks made under its id.
func Expect(ds []Delivery) Truth { return ExpectPolled(ds, "", nil) }

// ExpectPolled is Expect for an order whose provider's API, asked once the
// deliveries are in, answered polled (nil for nothing new): the answer is a
// fact like a webhook's, with a dedupe key of its own.
func ExpectPolled(ds []Delivery, provider string, polled *Event) Truth {
	var w world
	for i := range ds {
		w.deliver(&ds[i])
	}
	if polled != nil {
		w.webhook(provider, polled)
	}
	var t Truth
	for _, e := range w.entities {
		if e.into != nil {
			continue
		}
		e.sweep()
		e.assess()
		if e.registered {
			t.State, t.Anomalies = e.state(), e.kinds()
			continue
		}
		t.Orphans = append(t.Orphans, Orphan{Provider: e.provider, CheckoutID: e.checkoutID, State: e.state(), Anomalies: e.kinds()})
	}
	return t
}

// world is what orderstate holds about one simulated order: the registered
// order and any it made from webhooks before it could tell they were the
// same.
type world struct {
	entities []*entity
	alias    map[string]*entity
	seen     map[string]*entity
}

type fact struct {
	kind   sm.Kind
	amount int64
}

type entity struct {
	n          int
	into       *entity // set once merged into another
	registered bool
	orderID    string
	provider   string
	checkoutID string
	amount     int64
	currency   string
	mode       string
	redirect   string
	// reference is the shop's order id the first webhook that named one
	// named; registeredIDs the ids the shop registered.
	reference     string
	registeredIDs []string
	facts         []fact
	events        []*Event
	maxRank       int
	maxTime       time.Time
	anomalies     map[string]bool
}

func (w *world) newEntity(provider, checkoutID string) *entity {
	e := &entity{n: len(w.entities), provider: provider, checkoutID: checkoutID, maxRank: -1, anomalies: map[string]bool{}}
	w.entities = append(w.entities, e)
	return e
}

func (e *entity) root() *entity {
	for e.into != nil {
		e = e.into
	}
	return e
}

func (w *world) deliver(d *Delivery) {
	if w.alias == nil {
		w.alias, w.seen = map[string]*entity{}, map[string]*entity{}
	}
	switch {
	case d.Forged:
		// Refused before anything is read: no trace.
	case d.Action == Register:
		w.register(d)
	case d.Action == Redirect:
		for _, e := range w.entities {
			if e.into == nil && e.registered && e.orderID == d.OrderID {
				e.redirect = d.Outcome
			}
		}
	case d.Action == Webhook:
		w.webhook(d.Provider, d.Event)
	}
}

func (w *world) register(d *Delivery) {
	reg := d.registration()
	e := w.alias[reg.Provider+"/"+reg.CheckoutID]
	if e == nil {
		e = w.newEntity(reg.Provider, reg.CheckoutID)
		w.alias[reg.Provider+"/"+reg.CheckoutID] = e
	}
	e = e.root()
	e.registered, e.orderID = true, reg.OrderID
	e.amount, e.currency, e.mode = reg.Amount, reg.Currency, reg.Mode
	e.registeredIDs = append([]string{reg.CheckoutID}, reg.OtherIDs...)
	// Other ids name the order too; an order webhooks made under one
	// joins this one.
	for _, id := range reg.OtherIDs {
		key := reg.Provider + "/" + id
		x, ok := w.alias[key]
		if !ok {
			w.alias[key] = e
			continue
		}
		if x = x.root(); x != e && !x.registered {
			w.join(e, []*entity{x})
		}
	}
	// So do the orders webhooks made naming its id as the shop's.
	for _, x := range w.entities {
		if x.into == nil && !x.registered && x.reference == reg.OrderID && x.provider == reg.Provider {
			w.join(e, []*entity{x})
		}
	}
}

func (w *world) webhook(provider string, ev *Event) {
	key := provider + "/" + ev.DedupeKey
	if e, ok := w.seen[key]; ok {
		e.root().anomalies[engine.AnomalyDuplicate] = true
		return
	}
	e := w.resolve(provider, ev)
	w.seen[key] = e
	prev := e.state()
	if e.observe(ev) {
		e.anomalies[engine.AnomalyOutOfOrder] = true
	}
	e.facts = append(e.facts, fact{ev.Kind, ev.Amount})
	e.events = append(e.events, ev)
	if late(prev, e.state(), ev.Kind) {
		e.anomalies[engine.AnomalyLateAfterFinal] = true
	}
}

// resolve finds the entity an event is about, joining entities it shows to
// be one, or starts one.
func (w *world) resolve(provider string, ev *Event) *entity {
	ids := append([]string{ev.CheckoutID}, ev.Refs...)
	var found *entity
	var others []*entity
	var missing []string
	for _, id := range ids {
		if id == "" {
			continue
		}
		e, ok := w.alias[provider+"/"+id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		e = e.root()
		if found == nil {
			found = e
		} else if e != found && !contains(others, e) {
			others = append(others, e)
		}
	}
	if len(others) > 0 {
		found = w.join(found, others)
	}
	if ev.Reference != "" && (found == nil || !found.registered) {
		for _, e := range w.entities {
			if e.into == nil && e.registered && e.orderID == ev.Reference && e.provider == provider {
				if found == nil {
					found = e
				} else {
					found = w.join(e, []*entity{found})
				}
				break
			}
		}
	}
	if found == nil {
		found = w.newEntity(provider, ev.CheckoutID)
	}
	if found.reference == "" {
		found.reference = ev.Reference
	}
	for _, id := range missing {
		w.alias[provider+"/"+id] = found
	}
	return found
}

func contains(es []*entity, e *entity) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}

// join merges entities into the registered one, else the oldest. Two
// registered orders are never joined.
func (w *world) join(first *entity, others []*entity) *entity {
	all := append([]*entity{first}, others...)
	var target *entity
	registered := 0
	for _, e := range all {
		if e.registered {
			registered++
			target = e
		}
	}
	if registered > 1 {
		return first
	}
	if target == nil {
		target = first
		for _, e := range all {
			if e.n < target.n {
				target = e
			}
		}
	}
	for _, e := range all {
		if e == target {
			continue
		}
		target.facts = append(target.facts, e.facts...)
		target.events = append(target.events, e.events...)
		for k := range e.anomalies {
			target.anomalies[k] = true
		}
		if target.reference == "" {
			target.reference = e.reference
		}
		target.maxRank = max(target.maxRank, e.maxRank)
		if e.maxTime.After(target.maxTime) {
			target.maxTime = e.maxTime
		}
		e.into = target
	}
	return target
}

// rank is the position of a kind in an order's lifecycle; -1 for kinds
// that say nothing about it.
func rank(k sm.Kind) int {
	switch k {
	case sm.KindCheckoutCreated:
		return 0
	case sm.KindPaymentProcessing, sm.KindPaymentAttemptFailed:
		return 1
	case sm.KindPaid, sm.KindFailed, sm.KindExpired:
		return 2
	case sm.KindRefunded, sm.KindFailedAfterSettlement:
		return 3
	}
	return -1
}

// observe records an event's place in the lifecycle and reports whether it
// came after one later in it.
func (e *entity) observe(ev *Event) bool {
	r := rank(ev.Kind)
	if r < 0 {
		return false
	}
	out := r < e.maxRank || !ev.Time.IsZero() && ev.Time.Before(e.maxTime)
	e.maxRank = max(e.maxRank, r)
	if ev.Time.After(e.maxTime) {
		e.maxTime = ev.Time
	}
	return out
}

// state decides the state from the set of events received.
func (e *entity) state() sm.State {
	has := map[sm.Kind]bool{}
	var captured, refunded int64
	full := false
	for _, f := range e.facts {
		has[f.kind] = true
		switch f.kind {
		case sm.KindPaid:
			captured = max(captured, f.amount)
		case sm.KindRefunded:
			if f.amount > 0 {
				refunded += f.amount
			} else {
				full = true
			}
		}
	}
	money := has[sm.KindPaid] || has[sm.KindRefunded]
	switch {
	case has[sm.KindFailedAfterSettlement] || money && has[sm.KindFailed]:
		return sm.NeedsReview
	case has[sm.KindRefunded]:
		base := captured
		if base == 0 && e.registered {
			base = e.amount
		}
		if full || base > 0 && refunded >= base {
			return sm.Refunded
		}
		return sm.PartiallyRefunded
	case has[sm.KindPaid]:
		return sm.Paid
	case has[sm.KindFailed]:
		return sm.Failed
	case has[sm.KindExpired]:
		return sm.Expired
	case has[sm.KindPaymentProcessing] || has[sm.KindPaymentAttemptFailed]:
		return sm.Processing
	}
	return sm.Pending
}

func final(s sm.State) bool { return s != sm.Pending && s != sm.Processing }

func captured(s sm.State) bool { return s == sm.Paid || s == sm.PartiallyRefunded || s == sm.Refunded }

// late reports whether an event of kind that moved an order from prev to
// next changed an outcome it already had: paid to not paid or the reverse,
// or either into a contradiction. A refund of a payment, or a payment
// restated behind a refund, keeps the money captured; a failure after an
// expiry is still not paid.
func late(prev, next sm.State, k sm.Kind) bool {
	if prev == next || !final(prev) || k == sm.KindFailedAfterSettlement {
		return false
	}
	class := func(s sm.State) string {
		switch {
		case captured(s):
			return "paid"
		case s == sm.NeedsReview:
			return "contradictory"
		}
		return "not paid"
	}
	return class(prev) != class(next)
}

// assess adds the kinds the order's final facts show, whatever order they
// came in.
func (e *entity) assess() {
	var money, failed bool
	for _, ev := range e.events {
		switch ev.Kind {
		case sm.KindPaid, sm.KindRefunded:
			money = true
		case sm.KindFailed:
			failed = true
		case sm.KindFailedAfterSettlement:
			e.anomalies[engine.AnomalyFailedAfterSettlement] = true
		}
	}
	if money && failed {
		e.anomalies[engine.AnomalyConflict] = true
	}
	if contradicts(e.redirect, e.state()) {
		e.anomalies[engine.AnomalyRedirectMismatch] = true
	}
	if !e.registered {
		return
	}
	// The ids the registration names, and every id an event names beside
	// one of them, over and over until no event adds one.
	mine := map[string]bool{}
	for _, id := range e.registeredIDs {
		mine[id] = true
	}
	for grew := true; grew; {
		grew = false
		for _, ev := range e.events {
			ids := eventIDs(ev)
			if slices.ContainsFunc(ids, func(id string) bool { return mine[id] }) {
				for _, id := range ids {
					grew = grew || !mine[id]
					mine[id] = true
				}
			}
		}
	}
	for _, ev := range e.events {
		if ev.Kind == sm.KindUnknown || ev.Kind == sm.KindInformational {
			continue
		}
		if ev.Mode != "" && e.mode != "" && ev.Mode != e.mode {
			e.anomalies[engine.AnomalyModeMismatch] = true
		}
		switch ev.Kind {
		case sm.KindPaid:
			if ev.Currency != "" && ev.Currency != e.currency {
				e.anomalies[engine.AnomalyCurrencyMismatch] = true
			} else if ev.Amount > 0 && ev.Amount != e.amount {
				e.anomalies[engine.AnomalyAmountMismatch] = true
			}
		case sm.KindRefunded:
			if ev.Currency != "" && ev.Currency != e.currency {
				e.anomalies[engine.AnomalyCurrencyMismatch] = true
			}
		}
		money := ev.Kind == sm.KindPaid || ev.Kind == sm.KindRefunded || ev.Kind == sm.KindFailedAfterSettlement
		if money && !slices.ContainsFunc(eventIDs(ev), func(id string) bool { return mine[id] }) {
			e.anomalies[engine.AnomalyCheckoutMismatch] = true
		}
	}
}

func eventIDs(ev *Event) []string {
	var ids []string
	for _, id := range append([]string{ev.CheckoutID}, ev.Refs...) {
		if id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// contradicts reports whether a redirect outcome and a state disagree.
func contradicts(outcome string, s sm.State) bool {
	switch {
	case outcome == "":
		return false
	case outcome == "success":
		return s == sm.Failed || s == sm.Expired
	}
	return captured(s)
}

// sweep adds what the reconciler finds once the clock has passed every
// threshold.
func (e *entity) sweep() {
	s := e.state()
	if final(s) {
		return
	}
	e.anomalies[engine.AnomalyStuck] = true
	if e.redirect == "success" {
		e.anomalies[engine.AnomalyMissingWebhook] = true
	}
}

func (e *entity) kinds() []string {
	out := make([]string, 0, len(e.anomalies))
	for k := range e.anomalies {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// registration reads back what a Register delivery registers.
func (d *Delivery) registration() engine.Registration {
	var reg engine.Registration
	if err := json.Unmarshal(d.Body, &reg); err != nil {
		panic("simulate: registration body: " + err.Error())
	}
	reg.OrderID = d.OrderID
	return reg
}
