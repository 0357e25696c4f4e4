package postgres_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/postgres/pgtest"
	sm "github.com/orderstate/orderstate/statemachine"
)

// BenchmarkIngest measures the store alone, without HTTP, beside the
// ceiling PostgreSQL sets on this machine: single-row insert transactions
// of the same body, at the same concurrency, as `pgbench -n -f` with one
// INSERT would run them. Compare the two side by side.
func BenchmarkIngest(b *testing.B) {
	body := []byte(`{"note":"` + strings.Repeat("x", 2500) + `"}`)
	for _, parallel := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("ceiling/c%d", parallel), func(b *testing.B) {
			ctx := context.Background()
			url := pgtest.Shared(b).NewDatabase(b)
			pool, err := pgxpool.New(ctx, url+"&pool_max_conns=64")
			require.NoError(b, err)
			defer pool.Close()
			_, err = pool.Exec(ctx, `CREATE TABLE bare (id BIGSERIAL PRIMARY KEY, body BYTEA NOT NULL)`)
			require.NoError(b, err)
			run(b, parallel, func(int) error {
				_, err := pool.Exec(ctx, `INSERT INTO bare (body) VALUES ($1)`, body)
				return err
			})
		})
		b.Run(fmt.Sprintf("ingest/c%d", parallel), func(b *testing.B) {
			ctx := context.Background()
			db := open(b, time.Now)
			orders := b.N/2 + 1
			for i := range orders {
				_, err := db.RegisterOrder(ctx, engine.Registration{OrderID: fmt.Sprint("o", i), Provider: "tazapay",
					CheckoutID: fmt.Sprint("chk_", i), Amount: 4999, Currency: "USD"})
				require.NoError(b, err)
			}
			request := &engine.Request{Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
			run(b, parallel, func(n int) error {
				kind, amount := sm.KindCheckoutCreated, int64(0)
				if n%2 == 1 {
					kind, amount = sm.KindPaid, 4999
				}
				ev := engine.Event{Provider: "tazapay", EventID: fmt.Sprint("e", n), DedupeKey: fmt.Sprint("e", n),
					Type: string(kind), Kind: kind, CheckoutID: fmt.Sprint("chk_", n/2), Amount: amount, Currency: "USD", Mode: engine.ModeLive}
				_, err := db.Ingest(ctx, ev, request)
				return err
			})
		})
	}
}

// run calls op b.N times from parallel goroutines, numbering the calls.
func run(b *testing.B, parallel int, op func(n int) error) {
	var next atomic.Int64
	errs := make(chan error, parallel)
	b.ResetTimer()
	for range parallel {
		go func() {
			for {
				n := int(next.Add(1)) - 1
				if n >= b.N {
					errs <- nil
					return
				}
				if err := op(n); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range parallel {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}
