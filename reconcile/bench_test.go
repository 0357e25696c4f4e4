package reconcile

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
)

// The benchmarks run over a store of a million orders (ORDERSTATE_BENCH_ORDERS
// to change it) spread over 60 days: about 16,700 orders and 50,000 webhooks
// a day, 2% left pending and 2% processing, half with a successful redirect.
// The store is built once, through bulk SQL, into ORDERSTATE_BENCH_DIR
// (default <tmp>/orderstate-bench) and reused:
//
//	ORDERSTATE_BENCH_LARGE=1 go test ./reconcile -run '^$' -bench . -benchtime 20x
//
// Two files are cached: the store as loaded, and the same store after its
// first sweep, the state a running sidecar keeps it in.

var benchNow = time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)

const benchSpan = 60 * 24 * time.Hour

var (
	benchOnce   sync.Once
	benchLoaded string
	benchSwept  string
	benchErr    error
)

func benchStores(b *testing.B) (loaded, swept string) {
	b.Helper()
	if os.Getenv("ORDERSTATE_BENCH_LARGE") != "1" {
		b.Skip("set ORDERSTATE_BENCH_LARGE=1 to build (once) and benchmark a store of a million orders")
	}
	benchOnce.Do(func() { benchLoaded, benchSwept, benchErr = buildBenchStores(b) })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchLoaded, benchSwept
}

func buildBenchStores(b *testing.B) (string, string, error) {
	dir := os.Getenv("ORDERSTATE_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "orderstate-bench")
	}
	orders := 1_000_000
	if v := os.Getenv("ORDERSTATE_BENCH_ORDERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return "", "", fmt.Errorf("ORDERSTATE_BENCH_ORDERS=%q: want a positive number", v)
		}
		orders = n
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	// The name carries everything the population depends on, so a changed
	// spec builds a new file rather than reusing a stale one.
	name := fmt.Sprintf("reconcile-%d-v1", orders)
	loaded := filepath.Join(dir, name+".db")
	swept := filepath.Join(dir, name+"-swept.db")
	ctx := context.Background()

	if _, err := os.Stat(loaded); err != nil {
		tmp := loaded + ".building"
		removeStore(tmp)
		began := time.Now()
		err := sqlite.BulkLoad(ctx, tmp, sqlite.BulkSpec{Orders: orders, EventsPerOrder: 3, BodyBytes: 256,
			Start: benchNow.Add(-benchSpan), Span: benchSpan, Seed: 1}, nil)
		if err != nil {
			return "", "", fmt.Errorf("build bench store: %w", err)
		}
		if err := os.Rename(tmp, loaded); err != nil {
			return "", "", err
		}
		b.Logf("built %d orders into %s in %s", orders, loaded, time.Since(began).Round(time.Millisecond))
	}
	if _, err := os.Stat(swept); err != nil {
		tmp := swept + ".building"
		removeStore(tmp)
		if err := copyFile(loaded, tmp); err != nil {
			return "", "", err
		}
		db, rec := openBench(b, tmp)
		began := time.Now()
		res, err := rec.Sweep(ctx)
		took := time.Since(began)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", "", fmt.Errorf("first sweep of the bench store: %w", err)
		}
		if err := os.Rename(tmp, swept); err != nil {
			return "", "", err
		}
		b.Logf("first sweep over %d orders: %s, %d anomalies raised, %d orders checked", orders,
			took.Round(time.Millisecond), res.Count(Raised), res.Checked)
	}
	return loaded, swept, nil
}

func openBench(b *testing.B, path string) (*sqlite.DB, *Reconciler) {
	b.Helper()
	now := func() time.Time { return benchNow }
	log := slog.New(slog.DiscardHandler)
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{Now: now, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	rec, err := New(db, Config{}, now, log)
	if err != nil {
		b.Fatal(err)
	}
	return db, rec
}

// BenchmarkSweep is the sweep a running sidecar does every five minutes:
// each run reads the windows of the five minutes before benchNow. The
// cursors are set back before each run, so every run does the same work,
// and the store is left as it was (what it raises already exists).
func BenchmarkSweep(b *testing.B) {
	_, swept := benchStores(b)
	db, rec := openBench(b, swept)
	defer db.Close()
	ctx := context.Background()
	cfg := rec.Config()
	prev := benchNow.Add(-5 * time.Minute)
	rewind := func() {
		err := db.Sweep(ctx, func(tx engine.SweepTx) error {
			for name, at := range map[string]time.Time{
				cursorChanges: prev, cursorMissing: prev.Add(-cfg.RedirectGrace),
				cursorStuck + "pending": prev.Add(-cfg.PendingTTL), cursorStuck + "processing": prev.Add(-cfg.ProcessingTTL),
			} {
				if err := tx.SetCursor(name, at); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	checked := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		rewind()
		b.StartTimer()
		res, err := rec.Sweep(ctx)
		if err != nil {
			b.Fatal(err)
		}
		checked = res.Checked
	}
	b.ReportMetric(float64(checked), "orders-checked/op")
}

// BenchmarkSweep_FirstRun is a sweep of a store that was never swept: every
// order pending or processing past its time-to-live, and every redirect,
// is read once. It happens once in a store's life. It reports the longest
// of the sweep's transactions, which is how long webhooks wait behind it,
// in chunks of the default size and, to compare, in one transaction.
func BenchmarkSweep_FirstRun(b *testing.B) {
	loaded, _ := benchStores(b)
	for _, c := range []struct {
		name  string
		chunk int
	}{{"chunked", 0}, {"one-transaction", math.MaxInt}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			var raised, txs int
			var longest time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				path := filepath.Join(b.TempDir(), "first.db")
				if err := copyFile(loaded, path); err != nil {
					b.Fatal(err)
				}
				db, _ := openBench(b, path)
				ts := &timedStore{DB: db}
				now := func() time.Time { return benchNow }
				rec, err := New(ts, Config{SweepChunk: c.chunk}, now, slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := rec.Sweep(ctx)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				raised, txs, longest = res.Count(Raised), res.Transactions, max(longest, ts.longest)
				db.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(raised), "raised/op")
			b.ReportMetric(float64(txs), "transactions/op")
			b.ReportMetric(float64(longest.Microseconds())/1000, "longest-tx-ms")
		})
	}
}

// timedStore keeps the longest of its sweep transactions.
type timedStore struct {
	*sqlite.DB
	longest time.Duration
}

func (s *timedStore) Sweep(ctx context.Context, fn func(engine.SweepTx) error) error {
	began := time.Now()
	err := s.DB.Sweep(ctx, fn)
	s.longest = max(s.longest, time.Since(began))
	return err
}

// BenchmarkReport is the nightly report over the last 24 hours, built and
// rendered in all three formats.
func BenchmarkReport(b *testing.B) {
	_, swept := benchStores(b)
	db, rec := openBench(b, swept)
	defer db.Close()
	ctx := context.Background()
	size := 0
	b.ResetTimer()
	for range b.N {
		rep, err := rec.BuildReport(ctx, benchNow.Add(-24*time.Hour), benchNow)
		if err != nil {
			b.Fatal(err)
		}
		size = 0
		for _, f := range Formats {
			out, err := rep.Render(f)
			if err != nil {
				b.Fatal(err)
			}
			size += len(out)
		}
		if rep.Summary.Webhooks == 0 {
			b.Fatal("the report period holds no webhooks: the bench store's dates are off")
		}
	}
	b.ReportMetric(float64(size), "bytes/op")
}

// copyFile copies a closed store, with its WAL if one was left behind.
func copyFile(from, to string) error {
	if _, err := os.Stat(from + "-wal"); err == nil {
		if err := copyOne(from+"-wal", to+"-wal"); err != nil {
			return err
		}
	}
	return copyOne(from, to)
}

func copyOne(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// removeStore removes a half-built store and its WAL files.
func removeStore(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
}
