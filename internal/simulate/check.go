package simulate

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Reported is an anomaly as orderstate reported it; OrderID is empty for an
// order nobody registered.
type Reported struct {
	OrderID    string
	Provider   string
	CheckoutID string
	Kind       string
	Status     string
}

// Held is an order as orderstate holds it.
type Held struct {
	OrderID    string
	Provider   string
	CheckoutID string
	State      sm.State
}

// KindScore is the self-check of one anomaly kind.
type KindScore struct {
	Kind     string
	Expected int // orders the truth says must have it
	Found    int // of those, how many orderstate reported
	Missed   int // Expected - Found
	False    int // reported on an order the truth says must not have it
}

// Finding is one order on which the truth and orderstate disagree.
type Finding struct {
	Key    string // "SO-000042", or "tazapay/pay_..." for an order nobody registered
	Kind   string // the anomaly kind, or "state"
	Want   string
	Got    string
	Flow   string
	Faults []string
}

func (f Finding) String() string {
	s := fmt.Sprintf("%s %s: want %s, got %s (flow %s", f.Key, f.Kind, f.Want, f.Got, f.Flow)
	if len(f.Faults) > 0 {
		s += ", faults " + strings.Join(f.Faults, "+")
	}
	return s + ")"
}

// Result is the self-check of a run.
type Result struct {
	Orders int
	Kinds  []KindScore
	// Missed, FalseAlarms and WrongStates list the disagreements.
	Missed      []Finding
	FalseAlarms []Finding
	WrongStates []Finding
}

// OK reports whether orderstate found every anomaly, raised none it should
// not have, and holds every order in the state the truth says.
func (r Result) OK() bool {
	return len(r.Missed) == 0 && len(r.FalseAlarms) == 0 && len(r.WrongStates) == 0
}

// Recall is the share of expected anomalies found, 1 when none expected.
func (r Result) Recall() float64 {
	exp, found := 0, 0
	for _, k := range r.Kinds {
		exp += k.Expected
		found += k.Found
	}
	if exp == 0 {
		return 1
	}
	return float64(found) / float64(exp)
}

type truthEntry struct {
	order *Order
	state sm.State
	kinds map[string]bool
}

// Check compares what orders must have produced with what orderstate
// reported and holds. An anomaly resolved since is left out: the ones about
// arrival are never resolved, and the others are a function of the final
// facts, so what still holds is what must match.
func Check(orders []*Order, reported []Reported, held []Held) Result {
	want := map[string]*truthEntry{}
	for _, o := range orders {
		want[o.ID] = &truthEntry{order: o, state: o.Want.State, kinds: set(o.Want.Anomalies)}
		for _, orph := range o.Want.Orphans {
			want[orph.Provider+"/"+orph.CheckoutID] = &truthEntry{order: o, state: orph.State, kinds: set(orph.Anomalies)}
		}
	}
	got := map[string]map[string]bool{}
	for _, a := range reported {
		if a.Status == engine.StatusResolved {
			continue
		}
		k := key(a.OrderID, a.Provider, a.CheckoutID)
		if got[k] == nil {
			got[k] = map[string]bool{}
		}
		got[k][a.Kind] = true
	}

	res := Result{Orders: len(orders)}
	scores := map[string]*KindScore{}
	for _, k := range engine.AnomalyKinds {
		scores[k] = &KindScore{Kind: k}
	}
	score := func(kind string) *KindScore {
		if scores[kind] == nil {
			scores[kind] = &KindScore{Kind: kind}
		}
		return scores[kind]
	}
	finding := func(k, kind, w, g string, t *truthEntry) Finding {
		f := Finding{Key: k, Kind: kind, Want: w, Got: g}
		if t != nil {
			f.Flow, f.Faults = t.order.Flow, t.order.Faults
		}
		return f
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		t := want[k]
		for _, kind := range slices.Sorted(maps.Keys(t.kinds)) {
			sc := score(kind)
			sc.Expected++
			if got[k][kind] {
				sc.Found++
			} else {
				sc.Missed++
				res.Missed = append(res.Missed, finding(k, kind, "raised", "not raised", t))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		for _, kind := range slices.Sorted(maps.Keys(got[k])) {
			t := want[k]
			if t != nil && t.kinds[kind] {
				continue
			}
			score(kind).False++
			res.FalseAlarms = append(res.FalseAlarms, finding(k, kind, "not raised", "raised", t))
		}
	}
	for _, kind := range slices.Sorted(maps.Keys(scores)) {
		res.Kinds = append(res.Kinds, *scores[kind])
	}
	sort.SliceStable(res.Kinds, func(i, j int) bool { return kindOrder(res.Kinds[i].Kind) < kindOrder(res.Kinds[j].Kind) })

	seen := map[string]bool{}
	for _, h := range held {
		k := key(h.OrderID, h.Provider, h.CheckoutID)
		seen[k] = true
		t := want[k]
		switch {
		case t == nil:
			res.WrongStates = append(res.WrongStates, finding(k, "state", "no such order", string(h.State), nil))
		case t.state != h.State:
			res.WrongStates = append(res.WrongStates, finding(k, "state", string(t.state), string(h.State), t))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if !seen[k] {
			res.WrongStates = append(res.WrongStates, finding(k, "state", string(want[k].state), "no such order", want[k]))
		}
	}
	return res
}

func key(orderID, provider, checkoutID string) string {
	if orderID != "" {
		return orderID
	}
	return provider + "/" + checkoutID
}

func set(ss []string) map[string]bool {
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}

func kindOrder(kind string) int {
	for i, k := range engine.AnomalyKinds {
		if k == kind {
			return i
		}
	}
	return len(engine.AnomalyKinds)
}
