package statemachine_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sm "github.com/orderstate/orderstate/statemachine"
	"github.com/orderstate/orderstate/statemachine/scenario"
)

const scenarioFile = "../testdata/scenarios/lifecycle.json"

// fold applies the steps in the given arrival order (a repeated index is a
// duplicate delivery and is skipped, as the engine's dedupe does) and
// reports the final state and whether any event was seen out of order.
func fold(t *testing.T, sc scenario.Scenario, order []int) (sm.State, bool) {
	t.Helper()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	state, totals, prog := sm.Pending, sm.Totals{Registered: sc.Registered}, sm.NewProgress()
	seen := map[int]bool{}
	flagged := false
	for _, i := range order {
		if seen[i] {
			continue
		}
		seen[i] = true
		st := sc.Steps[i]
		if prog.Observe(st.Kind, base.Add(time.Duration(i)*time.Minute)) {
			flagged = true
		}
		out, err := sm.Apply(state, &totals, st.Kind, st.Amount)
		require.NoError(t, err)
		state = out.To
	}
	return state, flagged
}

func TestEveryArrivalOrderEndsInTheSameState(t *testing.T) {
	t.Parallel()
	scenarios, err := scenario.Load(scenarioFile)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(scenarios), 12)
	covered := map[sm.Kind]bool{}
	for _, sc := range scenarios {
		for _, st := range sc.Steps {
			covered[st.Kind] = true
		}
	}
	for _, k := range sm.Kinds {
		require.True(t, covered[k], "no scenario covers kind %s", k)
	}

	for _, sc := range scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, sc.Want, sm.Decide(sc.Registered, sc.Facts()), "the set rules disagree with the scenario")
			orders, outOfOrder := 0, 0
			sc.Orders(7, 1000, rand.New(rand.NewPCG(uint64(len(sc.Name)), 42)), func(order []int) {
				orders++
				got, flagged := fold(t, sc, order)
				require.Equal(t, sc.Want, got, "arrival order %v", order)
				require.Equal(t, !sc.InLifecycleOrder(order), flagged, "out-of-order flag for arrival order %v", order)
				if flagged {
					outOfOrder++
				}
			})
			require.Positive(t, orders)
			ranked := 0
			for _, st := range sc.Steps {
				if st.Kind.Rank() >= 0 {
					ranked++
				}
			}
			if ranked > 1 {
				require.Positive(t, outOfOrder, "some arrival order must have been out of order")
			}
		})
	}
}
