package sqlite_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	sm "github.com/orderstate/orderstate/statemachine"
)

// BenchmarkIngest measures the store alone, without HTTP or parsing: one
// webhook per transaction (serial) and many in flight sharing commits
// (parallel), on registered orders that each receive a created and a paid
// event with a 2.5 KB body. Compare the two side by side; `make bench`
// measures the whole server.
func BenchmarkIngest(b *testing.B) {
	for _, bc := range []struct {
		name     string
		parallel int
	}{{"serial", 0}, {"parallel64", 32}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
			require.NoError(b, err)
			defer db.Close()
			orders := b.N/2 + 1
			for i := range orders {
				_, err := db.RegisterOrder(ctx, engine.Registration{OrderID: fmt.Sprint("o", i), Provider: "tazapay",
					CheckoutID: fmt.Sprint("chk_", i), Amount: 4999, Currency: "USD"})
				require.NoError(b, err)
			}
			body := []byte(`{"note":"` + strings.Repeat("x", 2500) + `"}`)
			request := &engine.Request{Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
			deliver := func(n int) error {
				kind, amount := sm.KindCheckoutCreated, int64(0)
				if n%2 == 1 {
					kind, amount = sm.KindPaid, 4999
				}
				ev := engine.Event{Provider: "tazapay", EventID: fmt.Sprint("e", n), DedupeKey: fmt.Sprint("e", n),
					Type: string(kind), Kind: kind, CheckoutID: fmt.Sprint("chk_", n/2), Amount: amount, Currency: "USD", Mode: engine.ModeLive}
				_, err := db.Ingest(ctx, ev, request)
				return err
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			// Wall time on a shared machine swings with its neighbours; the
			// CPU and the bytes written per webhook hardly do, so they are
			// reported too, to compare changes by.
			cpu0, written0 := processCPU(), processWritten()
			defer func() {
				b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
				if written0 >= 0 {
					b.ReportMetric(float64(processWritten()-written0)/float64(b.N), "written-B/op")
				}
			}()
			b.ResetTimer()
			if bc.parallel == 0 {
				for n := range b.N {
					if err := deliver(n); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			var next atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
			defer func() { b.StopTimer(); reportLatency(b, lat) }()
			b.SetParallelism(bc.parallel)
			b.RunParallel(func(pb *testing.PB) {
				mine := make([]time.Duration, 0, b.N/bc.parallel+64)
				defer func() { mu.Lock(); lat = append(lat, mine...); mu.Unlock() }()
				for pb.Next() {
					t0 := time.Now()
					if err := deliver(int(next.Add(1) - 1)); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
			})
		})
	}
}

// reportLatency reports the median and 99th percentile of the webhooks'
// latencies, the part of the server's latency the store accounts for.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) < 100 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// processCPU is the user and system time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processWritten is the bytes this process passed to write calls so far
// (Linux's /proc/self/io wchar), or -1 where that is not available.
func processWritten() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// BenchmarkOrderRead measures Order, the read behind GET /v1/orders/{id},
// from four goroutines per CPU on orders with a few events each: on a quiet
// store, and while a writer keeps committing events to other orders, which
// is what makes each read start from an empty page cache. While it writes,
// the allocations reported include the writer's.
func BenchmarkOrderRead(b *testing.B) {
	for _, busy := range []bool{false, true} {
		b.Run(fmt.Sprintf("ingesting=%v", busy), func(b *testing.B) {
			ctx := context.Background()
			db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
			require.NoError(b, err)
			defer db.Close()
			const orders = 2000
			body := []byte(`{"note":"` + strings.Repeat("x", 2500) + `"}`)
			request := &engine.Request{Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
			event := func(n int, kind sm.Kind) engine.Event {
				return engine.Event{Provider: "tazapay", EventID: fmt.Sprint("e", n, kind), DedupeKey: fmt.Sprint("e", n, kind),
					Type: string(kind), Kind: kind, CheckoutID: fmt.Sprint("chk_", n), Amount: 4999, Currency: "USD", Mode: engine.ModeLive}
			}
			for i := range orders {
				_, err := db.RegisterOrder(ctx, engine.Registration{OrderID: fmt.Sprint("o", i), Provider: "tazapay",
					CheckoutID: fmt.Sprint("chk_", i), Amount: 4999, Currency: "USD"})
				require.NoError(b, err)
				for _, k := range []sm.Kind{sm.KindCheckoutCreated, sm.KindPaid} {
					_, err := db.Ingest(ctx, event(i, k), request)
					require.NoError(b, err)
				}
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for n := orders; busy; n++ {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := db.Ingest(ctx, event(n, sm.KindCheckoutCreated), request); err != nil {
						b.Error(err)
						return
					}
				}
			}()
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := db.Order(ctx, fmt.Sprint("o", next.Add(7919)%orders)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			close(stop)
			<-done
		})
	}
}
