package sqlite

// BulkLoad fills a new store with a large, realistic population of orders
// and events straight through SQL, far faster than ingesting them one
// webhook at a time. Benchmarks use it to build the million-order store the
// sweep, the report and ingest are measured against; the rows it writes are
// the ones ingest would have written, and it lives beside the schema so a
// migration that changes the rows changes it too.

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/orderstate/orderstate/engine"
)

// BulkSpec is the population to build.
type BulkSpec struct {
	Orders         int
	EventsPerOrder int       // created, processing, paid, then refunds
	BodyBytes      int       // size of each stored raw body
	Start          time.Time // provider time of the first order
	Span           time.Duration
	Seed           uint64
}

// BulkProgress is called now and then with the orders written so far.
type BulkProgress func(done, total int)

var bulkProviders = []string{"tazapay", "tokenz", "tweed", "yoco"}

// BulkLoad creates (or extends nothing: it expects a new file) the store at
// path with spec's population. The store is migrated through Open so the
// schema is exactly the one the server uses.
func BulkLoad(ctx context.Context, path string, spec BulkSpec, progress BulkProgress) error {
	if spec.Orders <= 0 || spec.EventsPerOrder <= 0 {
		return fmt.Errorf("bulk load: need orders and events per order")
	}
	if spec.Start.IsZero() {
		spec.Start = time.Now().UTC().Add(-30 * 24 * time.Hour)
	}
	if spec.Span <= 0 {
		spec.Span = 30 * 24 * time.Hour
	}
	db, err := Open(ctx, path, Options{})
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	// Durability is pointless while building a throwaway population; the
	// file is checkpointed and synced at the end.
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(OFF)")
	q.Add("_pragma", "cache_size(-262144)")
	conn, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)

	rng := rand.New(rand.NewPCG(spec.Seed, 1))
	body := []byte(`{"filler":"` + strings.Repeat("x", max(spec.BodyBytes-14, 0)) + `"}`)
	const batch = 20000
	for start := 0; start < spec.Orders; start += batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(start+batch, spec.Orders)
		if err := writeBatch(ctx, conn, spec, rng, body, start, end); err != nil {
			return err
		}
		if progress != nil {
			progress(end, spec.Orders)
		}
	}
	_, err = conn.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

// kindsFor is the lifecycle an order's events walk, in order.
var lifecycle = []struct{ kind, typ, state string }{
	{"checkout_created", "checkout.created", "pending"},
	{"payment_processing", "payment_attempt.created", "processing"},
	{"paid", "checkout.paid", "paid"},
	{"refunded", "refund.succeeded", "partially_refunded"},
	{"refunded", "refund.succeeded", "partially_refunded"},
}

func writeBatch(ctx context.Context, conn *sql.DB, spec BulkSpec, rng *rand.Rand, body []byte, start, end int) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	insOrder, err := tx.PrepareContext(ctx, `INSERT INTO orders (id, order_id, provider, checkout_id, amount, currency, mode,
		registered_at, state, captured, refunded, max_rank, max_occurred, redirect_outcome, redirect_at, created_at, updated_at,
		state_since, last_event_at) VALUES (?, ?, ?, ?, ?, 'USD', 'live', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	insAlias, err := tx.PrepareContext(ctx, `INSERT INTO order_aliases (provider, external_id, order_ref) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	insEvent, err := tx.PrepareContext(ctx, `INSERT INTO events (order_ref, provider, dedupe, provider_event_id, provider_type,
		kind, result, from_state, to_state, amount, currency, mode, occurred_at, received_at)
		VALUES (?, ?, ?, ?, ?, ?, 'applied', ?, ?, ?, 'USD', 'live', ?, ?)`)
	if err != nil {
		return err
	}
	insRaw, err := tx.PrepareContext(ctx, `INSERT INTO raw_events (event_id, headers, body) VALUES (?, '{}', ?)`)
	if err != nil {
		return err
	}
	step := spec.Span / time.Duration(max(spec.Orders, 1))
	for i := start; i < end; i++ {
		ref := int64(i + 1)
		provider := bulkProviders[i%len(bulkProviders)]
		checkout := fmt.Sprintf("bulk_chk_%08d", i)
		amount := int64(500 + rng.IntN(50000))
		at := spec.Start.Add(time.Duration(i) * step)
		// Most orders are done; a tail stays pending or processing so the
		// sweep has real candidates to look at.
		n := spec.EventsPerOrder
		if r := rng.IntN(100); r < 2 {
			n = 1
		} else if r < 4 {
			n = 2
		}
		n = min(n, len(lifecycle))
		state, from := "pending", "pending"
		var captured, refunded int64
		last := at
		for e := 0; e < n; e++ {
			lc := lifecycle[e]
			occurred := at.Add(time.Duration(e) * time.Minute)
			received := occurred.Add(time.Duration(200+rng.IntN(3000)) * time.Millisecond)
			var evAmount int64
			switch lc.kind {
			case "paid":
				evAmount, captured = amount, amount
			case "refunded":
				evAmount = amount / 10
				refunded += evAmount
			}
			state = lc.state
			id := fmt.Sprintf("bulk_evt_%08d_%d", i, e)
			r, err := insEvent.ExecContext(ctx, ref, provider, engine.DedupeHash(provider, id), id, lc.typ, lc.kind, from, state,
				evAmount, formatTime(occurred), formatTime(received))
			if err != nil {
				return fmt.Errorf("insert event: %w", err)
			}
			seq, _ := r.LastInsertId()
			if _, err := insRaw.ExecContext(ctx, seq, body); err != nil {
				return fmt.Errorf("insert raw event: %w", err)
			}
			from, last = state, received
		}
		var redirect, redirectAt any
		if rng.IntN(2) == 0 {
			redirect, redirectAt = "success", formatTime(at.Add(30*time.Second))
		}
		maxRank := map[string]int{"pending": 0, "processing": 1, "paid": 2, "partially_refunded": 3}[state]
		if _, err := insOrder.ExecContext(ctx, ref, fmt.Sprintf("bulk_order_%08d", i), provider, checkout, amount,
			formatTime(at), state, captured, refunded, maxRank, formatTime(last), redirect, redirectAt,
			formatTime(at), formatTime(last), formatTime(last), formatTime(last)); err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		if _, err := insAlias.ExecContext(ctx, provider, checkout, ref); err != nil {
			return fmt.Errorf("insert alias: %w", err)
		}
	}
	return tx.Commit()
}
