package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderstate/orderstate/engine/postgres/pgtest"
	"github.com/orderstate/orderstate/internal/simulate"
)

// benchPostgres starts a throwaway PostgreSQL server with its default
// durability and measures, at each concurrency, the ceiling it sets
// (single-row insert transactions of a body the webhooks' size, as
// `pgbench -n -f` with one INSERT runs them) beside ingest through one
// serve replica and through two sharing the database.
func benchPostgres(ctx context.Context, c config, secrets simulate.Secrets) ([]row, int64, error) {
	cluster, err := pgtest.Start(ctx)
	if errors.Is(err, pgtest.ErrNotInstalled) {
		return []row{{"PostgreSQL measurements", "skipped", "", err.Error()}}, 0, nil
	} else if err != nil {
		return nil, 0, err
	}
	defer cluster.Close()
	var rows []row
	bareURL, err := cluster.CreateDatabase(ctx, "bare")
	if err != nil {
		return nil, 0, err
	}
	body := []byte(`{"note":"` + strings.Repeat("x", 2300) + `"}`)
	// The ceiling is measured right before and right after each ingest
	// run, not once for all: on a shared machine the load of the moment
	// moves both, and a ratio means something only between neighbours.
	ceiling := func(conc int) (result, error) { return pgCeiling(ctx, bareURL, conc, c.duration, body) }
	var peak int64
	for _, replicas := range []int{1, 2} {
		url, err := cluster.CreateDatabase(ctx, fmt.Sprintf("replicas%d", replicas))
		if err != nil {
			return nil, 0, err
		}
		servers := make([]*server, replicas)
		for i := range servers {
			dir := filepath.Join(c.dir, fmt.Sprintf("pg-replica%d-%d", replicas, i))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, 0, err
			}
			if servers[i], err = startServerIn(ctx, c.bin, url, dir, secrets); err != nil {
				return nil, 0, err
			}
		}
		for i, conc := range c.conc {
			w := newWorkload(fmt.Sprintf("p%d_%d", replicas, conc), ordersFor(conc, c.duration), uint64(100+10*replicas+i), secrets)
			if err := servers[0].register(ctx, w); err != nil {
				return nil, 0, err
			}
			var side func(context.Context)
			if pp := os.Getenv("ORDERSTATE_BENCH_PPROF"); pp != "" && replicas == 1 {
				path := filepath.Join(c.dir, fmt.Sprintf("cpu-pg-c%d.prof", conc))
				side = func(ctx context.Context) { profile(ctx, pp, c.duration, path) }
			}
			before, err := ceiling(conc)
			if err != nil {
				return nil, 0, err
			}
			res := ingest(ctx, servers, w, conc, c.duration, side)
			after, err := ceiling(conc)
			if err != nil {
				return nil, 0, err
			}
			ceil := result{rate: (before.rate + after.rate) / 2, p99: (before.p99 + after.p99) / 2}
			rows = append(rows, row{fmt.Sprintf("PostgreSQL ceiling: one-row insert transactions, concurrency %d, before / after", conc),
				fmt.Sprintf("%.0f / %.0f tx/s, p99 %s / %s", before.rate, after.rate, ms(before.p99), ms(after.p99)), "1.00", "the limit: their mean"})
			note := res.errNote()
			if ceil.p99 > 0 {
				note = strings.TrimPrefix(note+fmt.Sprintf("; p99 %.1f × the ceiling's", float64(res.p99)/float64(ceil.p99)), "; ")
			}
			what := fmt.Sprintf("ingest through one replica on PostgreSQL, concurrency %d", conc)
			if replicas > 1 {
				what = fmt.Sprintf("ingest through %d replicas on PostgreSQL, concurrency %d", replicas, conc)
			}
			rows = append(rows, row{what, res.String(), fmt.Sprintf("%.2f", res.rate/ceil.rate), note})
		}
		for _, s := range servers {
			peak = max(peak, s.peakRSS())
			if err := s.stop(); err != nil {
				return nil, 0, err
			}
		}
	}
	return rows, peak, nil
}

// pgCeiling runs single-row insert transactions on conc connections for d.
func pgCeiling(ctx context.Context, url string, conc int, d time.Duration, body []byte) (result, error) {
	pool, err := pgxpool.New(ctx, url+fmt.Sprintf("&pool_max_conns=%d", conc))
	if err != nil {
		return result{}, err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bare (id BIGSERIAL PRIMARY KEY, body BYTEA NOT NULL)`); err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				if _, err := pool.Exec(ctx, `INSERT INTO bare (body) VALUES ($1)`, body); err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := result{n: len(lat), errors: int(errs.Load()), elapsed: elapsed}
	if len(lat) > 0 {
		r.rate = float64(len(lat)) / elapsed.Seconds()
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return r, nil
}
