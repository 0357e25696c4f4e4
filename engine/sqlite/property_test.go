package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/statemachine/scenario"
)

// TestIngest_ArrivalOrderNeverChangesTheOutcome runs the shared scenarios
// through the real store: random arrival orders with duplicate deliveries
// end in the scenario's state, and the out_of_order anomaly is raised
// exactly when the arrival order was not the lifecycle order.
func TestIngest_ArrivalOrderNeverChangesTheOutcome(t *testing.T) {
	t.Parallel()
	scenarios, err := scenario.Load("../../testdata/scenarios/lifecycle.json")
	require.NoError(t, err)
	ctx := context.Background()
	for si, sc := range scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			c := newClock()
			db := mustOpen(t, "", c)
			rng := rand.New(rand.NewPCG(uint64(si), 7))
			perScenario := 25
			if raceEnabled {
				perScenario = 6
			}
			var orders [][]int
			// Exhaustive orders are too many to run each through SQLite:
			// sample them the same way as long scenarios.
			sc.Orders(0, perScenario, rng, func(order []int) { orders = append(orders, order) })
			require.Len(t, orders, perScenario)
			// Orders are independent, so they are fed concurrently and the
			// writer commits them in groups, as under real traffic.
			var g errgroup
			for n, order := range orders {
				g.Go(func() error {
					id, checkout := fmt.Sprintf("o_%d", n), fmt.Sprintf("chk_%d", n)
					if _, err := db.RegisterOrder(ctx, engine.Registration{OrderID: id, Provider: "tazapay",
						CheckoutID: checkout, Amount: sc.Registered, Currency: "USD", Mode: engine.ModeLive}); err != nil {
						return err
					}
					base := c.Now()
					for _, i := range order {
						st := sc.Steps[i]
						ev := event(fmt.Sprintf("%s_e%d", checkout, i), st.Kind, checkout, st.Amount)
						ev.OccurredAt = base.Add(time.Duration(i) * time.Minute)
						if _, err := db.Ingest(ctx, ev, req(`{}`)); err != nil {
							return err
						}
					}
					return nil
				})
			}
			require.NoError(t, g.Wait())
			for n, order := range orders {
				o, err := db.Order(ctx, fmt.Sprintf("o_%d", n))
				require.NoError(t, err)
				require.Equal(t, sc.Want, o.State, "arrival order %v", order)
				_, flagged := kinds(o.Anomalies)[engine.AnomalyOutOfOrder]
				require.Equal(t, !sc.InLifecycleOrder(order), flagged, "out_of_order anomaly for arrival order %v", order)
			}
		})
	}
}

// errgroup runs functions concurrently and keeps the first error.
type errgroup struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func (g *errgroup) Go(fn func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(); err != nil {
			g.mu.Lock()
			if g.err == nil {
				g.err = err
			}
			g.mu.Unlock()
		}
	}()
}

func (g *errgroup) Wait() error { g.wg.Wait(); return g.err }
