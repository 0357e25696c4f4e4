// Package scenario loads the event scenarios of testdata/scenarios, which
// the state machine's and the engine's property tests both run: each lists
// a set of events in lifecycle order and the state they must end in,
// whatever order they arrive in.
package scenario

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"

	sm "github.com/orderstate/orderstate/statemachine"
)

// Step is one event of a scenario.
type Step struct {
	Kind   sm.Kind `json:"kind"`
	Amount int64   `json:"amount"`
}

// Scenario is a set of events in lifecycle order and the state they lead to.
type Scenario struct {
	Name       string   `json:"name"`
	Registered int64    `json:"registered"`
	Steps      []Step   `json:"steps"`
	Want       sm.State `json:"want"`
}

// Load reads a scenario file and checks every kind and state is known.
func Load(path string) ([]Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Scenarios []Scenario `json:"scenarios"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, sc := range doc.Scenarios {
		if !sc.Want.Valid() {
			return nil, fmt.Errorf("%s: scenario %q wants unknown state %q", path, sc.Name, sc.Want)
		}
		for _, st := range sc.Steps {
			if !st.Kind.Valid() {
				return nil, fmt.Errorf("%s: scenario %q has unknown kind %q", path, sc.Name, st.Kind)
			}
		}
	}
	return doc.Scenarios, nil
}

// Facts are the scenario's events as Decide takes them.
func (sc Scenario) Facts() []sm.Fact {
	out := make([]sm.Fact, len(sc.Steps))
	for i, st := range sc.Steps {
		out[i] = sm.Fact{Kind: st.Kind, Amount: st.Amount}
	}
	return out
}

// Orders calls visit with arrival orders (indices into Steps): every
// permutation when there are at most maxExhaustive steps, else n random
// shuffles, each with up to three duplicate deliveries inserted anywhere.
func (sc Scenario) Orders(maxExhaustive, n int, rng *rand.Rand, visit func([]int)) {
	if len(sc.Steps) <= maxExhaustive {
		permutations(len(sc.Steps), visit)
		return
	}
	for range n {
		order := rng.Perm(len(sc.Steps))
		for range rng.IntN(4) {
			pos, dup := rng.IntN(len(order)+1), order[rng.IntN(len(order))]
			order = append(order[:pos], append([]int{dup}, order[pos:]...)...)
		}
		visit(order)
	}
}

// InLifecycleOrder reports whether the first delivery of each step came in
// the listed order, ignoring steps with no lifecycle position.
func (sc Scenario) InLifecycleOrder(order []int) bool {
	seen, last := map[int]bool{}, -1
	for _, i := range order {
		if seen[i] || sc.Steps[i].Kind.Rank() < 0 {
			continue
		}
		seen[i] = true
		if i < last {
			return false
		}
		last = i
	}
	return true
}

func permutations(n int, visit func([]int)) {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	var rec func(k int)
	rec = func(k int) {
		if k == n {
			visit(append([]int(nil), p...))
			return
		}
		for i := k; i < n; i++ {
			p[k], p[i] = p[i], p[k]
			rec(k + 1)
			p[k], p[i] = p[i], p[k]
		}
	}
	rec(0)
}
