package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/statemachine/scenario"
)

// testScenarios runs the shared scenario file through the store: random
// arrival orders with duplicate deliveries end in the scenario's state,
// and the out_of_order anomaly is raised exactly when the arrival order
// was not the lifecycle order.
func testScenarios(t *testing.T, open Opener) {
	t.Parallel()
	scenarios, err := scenario.Load(moduleFile(t, "testdata", "scenarios", "lifecycle.json"))
	require.NoError(t, err)
	ctx := context.Background()
	for si, sc := range scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			c := NewClock()
			s := open(t, c.Now)
			rng := rand.New(rand.NewPCG(uint64(si), 7))
			perScenario := 25
			if raceEnabled {
				perScenario = 6
			}
			var orders [][]int
			// Exhaustive orders are too many to run each through a store:
			// sample them the same way as long scenarios.
			sc.Orders(0, perScenario, rng, func(perm []int) { orders = append(orders, perm) })
			require.Len(t, orders, perScenario)
			// Orders are independent, so they are fed concurrently and the
			// store commits them together, as under real traffic.
			var wg sync.WaitGroup
			errs := make([]error, len(orders))
			for n, perm := range orders {
				wg.Go(func() {
					id, checkout := fmt.Sprintf("o_%d", n), fmt.Sprintf("chk_%d", n)
					if _, err := s.RegisterOrder(ctx, engine.Registration{OrderID: id, Provider: "tazapay",
						CheckoutID: checkout, Amount: sc.Registered, Currency: "USD", Mode: engine.ModeLive}); err != nil {
						errs[n] = err
						return
					}
					base := c.Now()
					for _, i := range perm {
						st := sc.Steps[i]
						ev := event(fmt.Sprintf("%s_e%d", checkout, i), st.Kind, checkout, st.Amount)
						ev.OccurredAt = base.Add(time.Duration(i) * time.Minute)
						if _, err := s.Ingest(ctx, ev, request()); err != nil {
							errs[n] = fmt.Errorf("%s: %w", ev.EventID, err)
							return
						}
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}
			for n, perm := range orders {
				o := order(t, s, fmt.Sprintf("o_%d", n))
				require.Equal(t, sc.Want, o.State, "arrival order %v", perm)
				_, flagged := byKind(o.Anomalies)[engine.AnomalyOutOfOrder]
				require.Equal(t, !sc.InLifecycleOrder(perm), flagged, "out_of_order anomaly for arrival order %v", perm)
			}
		})
	}
}

// moduleFile is the path of a file of this module, found from the test's
// working directory (the package of the store under test) upwards.
func moduleFile(t *testing.T, elem ...string) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(append([]string{dir}, elem...)...)
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the working directory")
		dir = parent
	}
}
