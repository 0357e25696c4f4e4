package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine/postgres/pgtest"
)

// TestReplicas_SharePostgres runs three serve processes on one PostgreSQL
// database, as a shop with three backend replicas would, and holds them to
// every guarantee one process gives: a webhook delivered to all of them at
// once is applied once; one order's events spread over them in any order
// end in the single-process state; the sweep and the report run on one
// replica per tick; a replica killed mid-load loses nothing it
// acknowledged; and PostgreSQL stopped mid-load gives 503s, never a 2xx for
// what was not committed, and ingest resumes by itself when it returns.
func TestReplicas_SharePostgres(t *testing.T) {
	ctx := context.Background()
	// A cluster of its own: the test stops and starts it.
	cluster, err := pgtest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { cluster.Close() })
	url, err := cluster.CreateDatabase(ctx, "replicas")
	require.NoError(t, err)

	dirs := make([]string, 3)
	reps := make([]*proc, 3)
	for i := range reps {
		dirs[i] = t.TempDir()
		reps[i] = startProc(t, url, procOpts{dir: dirs[i], args: []string{"--sweep-schedule", "@every 1s", "--report-schedule", "@every 2s"}})
	}
	started := time.Now()

	t.Run("ConcurrentIdenticalDeliveriesApplyOnce", func(t *testing.T) {
		var hooks []*hook
		for n := range 8 {
			for _, p := range providers {
				hooks = append(hooks, newOrder("dup", p, n, n).hooks...)
			}
		}
		for _, h := range hooks {
			results := make([]ingestResult, len(reps))
			statuses := make([]int, len(reps))
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, p := range reps {
				wg.Go(func() {
					<-start
					var err error
					statuses[i], results[i], err = p.post(ctx, h)
					require.NoError(t, err)
				})
			}
			close(start)
			wg.Wait()
			applied := 0
			for i := range reps {
				require.Equal(t, http.StatusOK, statuses[i], "%s %s at replica %d: %s", h.provider, h.key, i, results[i].Error)
				if results[i].Result != "duplicate" {
					applied++
				}
			}
			require.Equal(t, 1, applied, "%s %s delivered to three replicas at once: %+v", h.provider, h.key, results)
		}
	})

	t.Run("EventsSpreadOverReplicasInEveryOrder", func(t *testing.T) {
		run := 0
		rng := rand.New(rand.NewPCG(3, 4))
		for _, provider := range providers {
			for variant := range 4 {
				base := newOrder("perm", provider, 0, variant)
				// Every order of up to three events; six of longer ones.
				perms := permutationsOf(len(base.hooks))
				rng.Shuffle(len(perms), func(i, j int) { perms[i], perms[j] = perms[j], perms[i] })
				perms = perms[:min(len(perms), 6)]
				var want []string
				for _, perm := range perms {
					run++
					o := newOrder(fmt.Sprintf("perm%d_", run), provider, variant, variant)
					for i, at := range perm {
						// Event i goes to replica i mod 3: consecutive
						// events always meet a different replica.
						st, res, err := reps[i%len(reps)].post(ctx, o.hooks[at])
						require.NoError(t, err)
						require.Equal(t, http.StatusOK, st, res.Error)
					}
					got := checkout(t, reps[run%len(reps)], o)
					require.Equal(t, string(o.expected()), got.State, "%s variant %d arrived as %v", provider, variant, perm)
					kinds := orderFree(got)
					if want == nil {
						want = kinds
					}
					require.Equal(t, want, kinds, "%s variant %d arrived as %v", provider, variant, perm)
				}
			}
		}
	})

	t.Run("OneSweepAndOneReportPerTick", func(t *testing.T) {
		time.Sleep(time.Until(started.Add(6 * time.Second)))
		sweeps := 0
		for _, p := range reps {
			sweeps += metric(t, p, `orderstate_reconciler_runs_total{job="sweep",result="ok"}`)
		}
		elapsed := time.Since(started)
		// One sweep a second across the three, not three: each replica
		// that is not the one sweeping skips the tick.
		require.LessOrEqual(t, sweeps, int(elapsed/time.Second)+2, "sweeps in %s", elapsed)
		require.GreaterOrEqual(t, sweeps, 3, "sweeps in %s", elapsed)

		st, body, err := reps[0].get("/v1/reports")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, st, string(body))
		var list struct {
			Reports []struct {
				ID          int64     `json:"id"`
				PeriodStart time.Time `json:"period_start"`
				PeriodEnd   time.Time `json:"period_end"`
			} `json:"reports"`
		}
		require.NoError(t, json.Unmarshal(body, &list))
		require.GreaterOrEqual(t, len(list.Reports), 2, string(body))
		slices.SortFunc(list.Reports, func(a, b struct {
			ID          int64     `json:"id"`
			PeriodStart time.Time `json:"period_start"`
			PeriodEnd   time.Time `json:"period_end"`
		}) int {
			return a.PeriodStart.Compare(b.PeriodStart)
		})
		for i := 1; i < len(list.Reports); i++ {
			require.True(t, list.Reports[i].PeriodStart.Equal(list.Reports[i-1].PeriodEnd),
				"each period starts where the one before ended, once: %+v", list.Reports)
		}
		// Every stored report was written to files by the one replica that
		// made it, once; files of a report still being written by now are
		// one more at most.
		files := 0
		for _, d := range dirs {
			entries, _ := os.ReadDir(filepath.Join(d, "reports"))
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".json") {
					files++
				}
			}
		}
		require.InDelta(t, len(list.Reports), files, 1, "report files across the replicas")
	})

	// The last two share one load: providers keep sending while a replica
	// dies and while PostgreSQL is down, and retry what was not acked, at
	// whichever replica the load balancer picks.
	var orders []*order
	var hooks []*hook
	for n := range 40 {
		for _, p := range providers {
			o := newOrder("load", p, n, n)
			orders = append(orders, o)
			hooks = append(hooks, o.hooks...)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(hooks), func(i, j int) { hooks[i], hooks[j] = hooks[j], hooks[i] })
	var alive atomic.Int32
	alive.Store(int32(len(reps)))
	var ackedWhileDown, refusedWhileDown, acked atomic.Int32
	var pgDown atomic.Bool
	send := func(hs []*hook) {
		var wg sync.WaitGroup
		next := atomic.Int32{}
		for w := range 6 {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(hs) {
						return
					}
					h := hs[i]
					for try := 0; !h.acked; try++ {
						p := reps[(w+try)%int(alive.Load())]
						down := pgDown.Load()
						st, res, err := p.post(ctx, h)
						switch {
						case err == nil && st == http.StatusOK:
							if down && pgDown.Load() {
								ackedWhileDown.Add(1)
							}
							h.acked, h.result, h.seq = true, res.Result, res.Seq
							acked.Add(1)
						case err == nil && st != http.StatusServiceUnavailable:
							t.Errorf("%s %s: %d %s", h.provider, h.key, st, res.Error)
							return
						default:
							if err == nil && down && pgDown.Load() {
								refusedWhileDown.Add(1)
							}
							time.Sleep(50 * time.Millisecond)
						}
						// A provider's pace, so the faults below land
						// mid-load.
						time.Sleep(2 * time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
	}

	t.Run("KilledReplicaLosesNothingAcknowledged", func(t *testing.T) {
		third := len(hooks) / 3
		var wg sync.WaitGroup
		wg.Go(func() { send(hooks[:2*third]) })
		// Kill the last replica while the first part is in flight; the
		// senders then retry at the two left.
		waitAcked(&acked, 20)
		alive.Store(int32(len(reps) - 1))
		reps[len(reps)-1].kill()
		killedAt := int(acked.Load())
		wg.Wait()
		require.Less(t, killedAt, 2*third, "the replica died mid-load")
		t.Logf("killed a replica after %d of %d webhooks were acked", killedAt, 2*third)
		for _, h := range hooks[:2*third] {
			require.True(t, h.acked, "%s %s never acked", h.provider, h.key)
		}
	})

	t.Run("PostgresRestartedMidLoad", func(t *testing.T) {
		rest := hooks[2*(len(hooks)/3):]
		var wg sync.WaitGroup
		before := acked.Load()
		wg.Go(func() { send(rest) })
		waitAcked(&acked, before+10)
		stoppedAt := int(acked.Load())
		require.NoError(t, cluster.Stop(ctx))
		// Down from when the server is gone to when it starts again: a
		// request that began in between and was acknowledged was stored
		// nowhere.
		pgDown.Store(true)
		time.Sleep(300 * time.Millisecond)
		for _, p := range reps[:2] {
			st, body, err := p.get("/readyz")
			require.NoError(t, err)
			require.Equal(t, http.StatusServiceUnavailable, st, "readyz with PostgreSQL down: %s", body)
		}
		time.Sleep(time.Second)
		pgDown.Store(false)
		require.NoError(t, cluster.Start(ctx))
		wg.Wait()
		require.Zero(t, ackedWhileDown.Load(), "a webhook was acknowledged while PostgreSQL was down")
		require.Positive(t, refusedWhileDown.Load(), "webhooks were refused with 503 while PostgreSQL was down")
		require.Less(t, stoppedAt, len(hooks), "PostgreSQL stopped mid-load")
		t.Logf("stopped PostgreSQL after %d of %d webhooks were acked; %d refused with 503 while it was down",
			stoppedAt, len(hooks), refusedWhileDown.Load())
		for _, p := range reps[:2] {
			st, _, err := p.get("/readyz")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, st, "readyz after PostgreSQL returned")
		}
	})

	// What every replica acknowledged is there, once, and every order is
	// in the state its events decide.
	for _, o := range orders {
		got := checkout(t, reps[0], o)
		require.Equal(t, string(o.expected()), got.State, "%s %s", o.provider, o.checkout)
		seqs := map[int64]bool{}
		for _, e := range got.Events {
			seqs[e.Seq] = true
		}
		for _, h := range o.hooks {
			require.True(t, h.acked)
			require.True(t, seqs[h.seq], "%s %s was acked as #%d, which the order's timeline lacks", h.provider, h.key, h.seq)
		}
	}
}

// waitAcked returns once n webhooks have been acknowledged, so a fault
// lands mid-load however fast the machine is.
func waitAcked(acked *atomic.Int32, n int32) {
	for acked.Load() < n {
		time.Sleep(time.Millisecond)
	}
}

// orderView is what the tests read of GET /v1/checkouts/...
type orderView struct {
	State     string `json:"state"`
	Anomalies []struct {
		Kind   string `json:"kind"`
		Status string `json:"status"`
	} `json:"anomalies"`
	Events []struct {
		Seq             int64  `json:"seq"`
		ProviderEventID string `json:"provider_event_id"`
		Kind            string `json:"kind"`
		Result          string `json:"result"`
	} `json:"events"`
}

func checkout(t *testing.T, p *proc, o *order) orderView {
	t.Helper()
	st, body, err := p.get("/v1/checkouts/" + o.provider + "/" + o.checkout)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, st, string(body))
	var v orderView
	require.NoError(t, json.Unmarshal(body, &v))
	return v
}

// orderFree lists the kinds of an order's anomalies that still hold, but
// those about arrival.
func orderFree(v orderView) []string {
	out := []string{}
	for _, a := range v.Anomalies {
		switch a.Kind {
		case "out_of_order", "duplicate", "late_after_final":
			continue
		}
		if a.Status != "resolved" {
			out = append(out, a.Kind)
		}
	}
	slices.Sort(out)
	return out
}

var metricLine = regexp.MustCompile(`(?m)^(\S+) (\S+)$`)

// metric reads one sample of the process's /metrics.
func metric(t *testing.T, p *proc, name string) int {
	t.Helper()
	st, body, err := p.get("/metrics")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, st)
	for _, m := range metricLine.FindAllStringSubmatch(string(body), -1) {
		if m[1] == name {
			v, err := strconv.ParseFloat(m[2], 64)
			require.NoError(t, err)
			return int(v)
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

func permutationsOf(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutationsOf(n - 1) {
		for i := 0; i <= len(p); i++ {
			out = append(out, append(append(append([]int{}, p[:i]...), n-1), p[i:]...))
		}
	}
	return out
}
