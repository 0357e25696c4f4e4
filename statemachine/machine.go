package statemachine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/looplab/fsm"
)

// fsmEvents is the transition table compiled into looplab/fsm event
// descriptions. A rule whose target depends on the amounts becomes one fsm
// event per possible target, named kind>target.
var fsmEvents = compile(Table)

// machines are reused: building one compiles the table into maps, which
// costs more than the transition. Each use sets the order's state first, so
// nothing carries over between orders.
var machines = sync.Pool{New: func() any { return fsm.NewFSM(string(Pending), fsmEvents, nil) }}

func compile(table []Rule) fsm.Events {
	var out fsm.Events
	for _, r := range table {
		if r.To == byRefunds {
			for _, to := range []State{PartiallyRefunded, Refunded} {
				out = append(out, fsm.EventDesc{Name: eventName(r.Kind, to, true), Src: states(r.From), Dst: string(to)})
			}
			continue
		}
		out = append(out, fsm.EventDesc{Name: eventName(r.Kind, r.To, false), Src: states(r.From), Dst: string(r.To)})
	}
	return out
}

func eventName(k Kind, to State, guarded bool) string {
	if guarded {
		return string(k) + ">" + string(to)
	}
	return string(k)
}

func states(ss []State) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// Outcome is what applying one event did.
type Outcome struct {
	From   State
	To     State
	Result Result
	// LateAfterFinal is set when the event changed the outcome of an order
	// that had already reached one (paid after expired, failed after paid).
	// A refund after payment is the normal course and is not late, and
	// neither is one "not paid" outcome after another (failed after
	// expired).
	LateAfterFinal bool
}

// Changed reports whether the state moved.
func (o Outcome) Changed() bool { return o.From != o.To }

// Apply folds one event of kind k carrying amount (minor units, 0 when the
// event has none) into an order in state s with totals t. It updates t and
// returns where the order ends up. Apply never fails on a known state and
// kind; an error means the stored state is corrupt.
func Apply(s State, t *Totals, k Kind, amount int64) (Outcome, error) {
	if !s.Valid() {
		return Outcome{}, fmt.Errorf("statemachine: unknown state %q", s)
	}
	switch k {
	case KindInformational:
		return Outcome{From: s, To: s, Result: Applied}, nil
	case KindUnknown:
		return Outcome{From: s, To: s, Result: Ignored}, nil
	}
	if !k.Valid() {
		return Outcome{}, fmt.Errorf("statemachine: unknown event kind %q", k)
	}
	t.Add(k, amount)
	rule, ok := lookup(k, s)
	if !ok {
		return Outcome{From: s, To: s, Result: Stale}, nil
	}
	to, name := rule.To, eventName(k, rule.To, false)
	if to == byRefunds {
		to = t.RefundState()
		name = eventName(k, to, true)
	}
	m := machines.Get().(*fsm.FSM)
	defer machines.Put(m)
	m.SetState(string(s))
	if err := m.Event(context.Background(), name); err != nil {
		var same fsm.NoTransitionError
		if !errors.As(err, &same) || same.Err != nil {
			return Outcome{}, fmt.Errorf("statemachine: %s in %s: %w", k, s, err)
		}
	}
	out := Outcome{From: s, To: State(m.Current()), Result: rule.Result}
	out.LateAfterFinal = lateAfterFinal(s, out.To, k)
	return out, nil
}

func lateAfterFinal(from, to State, k Kind) bool {
	if from == to || !from.Final() || k == KindFailedAfterSettlement {
		return false
	}
	// Only a change of outcome is late: a checkout that failed after it
	// expired was not paid either way, and a refund after payment, or a
	// paid event restating the capture behind a refund, is the normal
	// course.
	return outcomeClass(from) != outcomeClass(to)
}

// outcomeClass groups the outcomes by what they mean for the shop: paid,
// not paid, or contradictory.
func outcomeClass(s State) int {
	switch {
	case s.Captured():
		return 1
	case s == NeedsReview:
		return 2
	}
	return 0
}

// Recount re-resolves a refund state after the totals changed outside an
// event (the shop registered the amount after the refund arrived).
func Recount(s State, t Totals) State {
	if s == PartiallyRefunded || s == Refunded {
		return t.RefundState()
	}
	return s
}

// Mermaid renders the machine as a Mermaid state diagram.
func Mermaid() string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	b.WriteString("    [*] --> pending: checkout_created\n")
	labels := map[[2]string][]string{}
	var order [][2]string
	for _, r := range Table {
		targets := []State{r.To}
		if r.To == byRefunds {
			targets = []State{PartiallyRefunded, Refunded}
		}
		for _, f := range r.From {
			for _, to := range targets {
				// Refunds only add up: one never takes a refunded order back
				// to partially refunded (a larger capture can).
				if f == to || (r.Kind == KindRefunded && f == Refunded && to == PartiallyRefunded) {
					continue
				}
				key := [2]string{string(f), string(to)}
				if _, seen := labels[key]; !seen {
					order = append(order, key)
				}
				labels[key] = appendUnique(labels[key], string(r.Kind))
			}
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return rank(order[i][0]) < rank(order[j][0]) })
	for _, key := range order {
		fmt.Fprintf(&b, "    %s --> %s: %s\n", key[0], key[1], strings.Join(labels[key], ", "))
	}
	return b.String()
}

func appendUnique(ss []string, s string) []string {
	for _, v := range ss {
		if v == s {
			return ss
		}
	}
	return append(ss, s)
}

func rank(s string) int {
	for i, v := range States {
		if string(v) == s {
			return i
		}
	}
	return len(States)
}
