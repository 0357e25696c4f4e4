package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"time"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Inspector reads a store's file directly, read-only, for the tools and
// tests that look at a store from outside (the demo's self-check, the
// benchmark, the crash harness), whether or not a server holds it open.
// It never creates, migrates or writes the file. Its queries live here,
// beside the migrations, so a change to the schema changes them with it
// and no caller depends on a table's shape.
type Inspector struct {
	path string
	db   *sql.DB
}

// Inspect opens the store at path for reading. The file must exist and be
// a SQLite database; another program's database fails at the first read.
func Inspect(ctx context.Context, path string) (*Inspector, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, engine.Errorf(engine.ENOTFOUND, "no store at %s", path)
		}
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	// One connection: the callers read one thing at a time.
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	return &Inspector{path: path, db: db}, nil
}

// Close closes the inspector's connection.
func (i *Inspector) Close() error { return i.db.Close() }

func (i *Inspector) errorf(what string, err error) error {
	return fmt.Errorf("%s of %s: %w", what, i.path, err)
}

// OrderState is an order as the store holds it.
type OrderState struct {
	// OrderID is the shop's id; empty for an order only webhooks named.
	OrderID    string
	Provider   string
	CheckoutID string
	State      sm.State
}

// Orders returns every order the store holds, in the order it made them.
func (i *Inspector) Orders(ctx context.Context) ([]OrderState, error) {
	rows, err := i.db.QueryContext(ctx, `SELECT COALESCE(order_id, ''), provider, checkout_id, state FROM orders ORDER BY id`)
	if err != nil {
		return nil, i.errorf("orders", err)
	}
	defer rows.Close()
	var out []OrderState
	for rows.Next() {
		var o OrderState
		var state string
		if err := rows.Scan(&o.OrderID, &o.Provider, &o.CheckoutID, &state); err != nil {
			return nil, i.errorf("orders", err)
		}
		o.State = sm.State(state)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, i.errorf("orders", err)
	}
	return out, nil
}

// StateOf returns the state of the order a provider's id names: its
// checkout id, or any other id an event or the shop tied to it. false when
// no order has that id.
func (i *Inspector) StateOf(ctx context.Context, provider, id string) (sm.State, bool, error) {
	var state string
	err := i.db.QueryRowContext(ctx, `SELECT o.state FROM order_aliases a JOIN orders o ON o.id = a.order_ref
		WHERE a.provider = ? AND a.external_id = ?`, provider, id).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	} else if err != nil {
		return "", false, i.errorf("state of "+provider+" "+id, err)
	}
	return sm.State(state), true, nil
}

// OrderCheck is what the store's own checks find in one order: each of
// them holds in a sound store.
type OrderCheck struct {
	// Found is false when no order has the id asked for.
	Found bool
	// State is the order's stored state; Replayed is what its stored
	// events (originals, in arrival order) fold to against the amount the
	// shop registered, as replay computes it. They are equal.
	State, Replayed sm.State
	// Events counts its stored events, originals and redeliveries.
	Events int
	// EventsWithoutRaw counts those of its original events whose raw
	// request is missing: none.
	EventsWithoutRaw int
	// Registered says the shop registered the order, with Amount.
	Registered bool
	Amount     int64
}

// CheckOrder runs the checks replay and Audit run over the whole store on
// the one order a provider's id names, for a test that checks the orders
// it touched after each crash rather than every order each time.
func (i *Inspector) CheckOrder(ctx context.Context, provider, id string) (OrderCheck, error) {
	var c OrderCheck
	var ref int64
	var state string
	err := i.db.QueryRowContext(ctx, `SELECT o.id, o.state, o.order_id IS NOT NULL, COALESCE(o.amount, 0)
		FROM order_aliases a JOIN orders o ON o.id = a.order_ref WHERE a.provider = ? AND a.external_id = ?`, provider, id).
		Scan(&ref, &state, &c.Registered, &c.Amount)
	if errors.Is(err, sql.ErrNoRows) {
		return c, nil
	} else if err != nil {
		return c, i.errorf("order "+provider+" "+id, err)
	}
	c.Found, c.State, c.Replayed = true, sm.State(state), sm.Pending
	rows, err := i.db.QueryContext(ctx, `SELECT e.kind, e.amount, e.original_id IS NULL,
		EXISTS (SELECT 1 FROM raw_events r WHERE r.event_id = e.id) FROM events e WHERE e.order_ref = ? ORDER BY e.id`, ref)
	if err != nil {
		return c, i.errorf("events of "+provider+" "+id, err)
	}
	defer rows.Close()
	totals := sm.Totals{Registered: c.Amount}
	for rows.Next() {
		var kind string
		var amount sql.NullInt64
		var original, raw bool
		if err := rows.Scan(&kind, &amount, &original, &raw); err != nil {
			return c, i.errorf("events of "+provider+" "+id, err)
		}
		c.Events++
		if !original {
			continue
		}
		if !raw {
			c.EventsWithoutRaw++
		}
		out, err := sm.Apply(c.Replayed, &totals, sm.Kind(kind), amount.Int64)
		if err != nil {
			return c, i.errorf("replay of "+provider+" "+id, err)
		}
		c.Replayed = out.To
	}
	if err := rows.Err(); err != nil {
		return c, i.errorf("events of "+provider+" "+id, err)
	}
	return c, nil
}

// Counts are how much a store holds.
type Counts struct {
	Orders int64
	// Events counts the provider events stored, each once however often
	// it was delivered.
	Events int64
	// Duplicates counts the redeliveries, kept beside their events.
	Duplicates int64
	// OpenAnomalies counts the anomalies not resolved.
	OpenAnomalies int64
}

// Counts counts what the store holds.
func (i *Inspector) Counts(ctx context.Context) (Counts, error) {
	var c Counts
	for _, q := range []struct {
		query string
		to    *int64
	}{
		{`SELECT COUNT(*) FROM orders`, &c.Orders},
		{`SELECT COUNT(*) FROM events WHERE original_id IS NULL`, &c.Events},
		{`SELECT COUNT(*) FROM events WHERE original_id IS NOT NULL`, &c.Duplicates},
		{`SELECT COUNT(*) FROM anomalies WHERE status = 'open'`, &c.OpenAnomalies},
	} {
		if err := i.db.QueryRowContext(ctx, q.query).Scan(q.to); err != nil {
			return Counts{}, i.errorf("counts", err)
		}
	}
	return c, nil
}

// Stored returns how many times the event that provider's adapter
// deduplicates by key (engine.Event.DedupeKey) is stored as an event: 1
// once it is stored, 0 before; more would be a broken store. Its
// redeliveries are not counted (see Redelivered). The store looks events
// up within their order, so this reads every event: to check many, read
// them once with Originals.
func (i *Inspector) Stored(ctx context.Context, provider, key string) (int, error) {
	var n int
	err := i.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE dedupe = ? AND original_id IS NULL`,
		engine.DedupeHash(provider, key)).Scan(&n)
	if err != nil {
		return 0, i.errorf("copies of "+provider+" event "+key, err)
	}
	return n, nil
}

// Originals counts the events stored as originals by what their adapter
// deduplicates them by, in one read of the events, for a caller that
// checks thousands of events (a crash harness, after each crash): Stored
// for each would read every event each time.
func (i *Inspector) Originals(ctx context.Context) (Originals, error) {
	rows, err := i.db.QueryContext(ctx, `SELECT dedupe FROM events WHERE original_id IS NULL`)
	if err != nil {
		return nil, i.errorf("events", err)
	}
	defer rows.Close()
	o := Originals{}
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			return nil, i.errorf("events", err)
		}
		o[string(h)]++
	}
	if err := rows.Err(); err != nil {
		return nil, i.errorf("events", err)
	}
	return o, nil
}

// Originals is what Inspector.Originals read.
type Originals map[string]int

// Stored is Inspector.Stored, as of when the originals were read.
func (o Originals) Stored(provider, key string) int {
	return o[string(engine.DedupeHash(provider, key))]
}

// Redelivered returns how many redeliveries of the event that provider's
// adapter deduplicates by key are kept beside it. It reads every event, so
// it suits small stores, such as a test's.
func (i *Inspector) Redelivered(ctx context.Context, provider, key string) (int, error) {
	var n int
	err := i.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE dedupe = ? AND original_id IS NOT NULL`,
		engine.DedupeHash(provider, key)).Scan(&n)
	if err != nil {
		return 0, i.errorf("redeliveries of "+provider+" event "+key, err)
	}
	return n, nil
}

// Watermark returns when the named job last completed; false when it never
// did.
func (i *Inspector) Watermark(ctx context.Context, name string) (time.Time, bool, error) {
	var at sql.NullString
	err := i.db.QueryRowContext(ctx, `SELECT at FROM watermarks WHERE name = ?`, name).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, i.errorf("watermark "+name, err)
	}
	return parseTime(at), true, nil
}

// EventBytes is how many bytes of the file the events take: their rows,
// their raw requests and the indexes on them.
func (i *Inspector) EventBytes(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	err := i.db.QueryRowContext(ctx, `SELECT SUM(pgsize) FROM dbstat
		WHERE name IN ('events', 'raw_events') OR name LIKE 'events_%'`).Scan(&n)
	if err != nil {
		return 0, i.errorf("event bytes", err)
	}
	return n.Int64, nil
}

// Audit is what a store's own checks find in it. A sound store has no
// events without their raw request, no orders without an alias, no foreign
// key that points nowhere, and integrity "ok".
type Audit struct {
	// EventsWithoutRaw counts the events whose raw request is missing.
	EventsWithoutRaw int64
	// OrdersWithoutEvents counts the orders no event names: none in a
	// store only webhooks made; the shop's registrations are such orders
	// until their first webhook.
	OrdersWithoutEvents int64
	// StrayOrders counts the orders no event names and the shop never
	// registered: nothing makes one, in any store.
	StrayOrders int64
	// OrdersWithoutAlias counts the orders no provider id leads to.
	OrdersWithoutAlias int64
	// ForeignKeyViolations counts the rows whose reference points nowhere.
	ForeignKeyViolations int64
	// Integrity is SQLite's integrity_check: "ok", or what it found.
	Integrity string
}

// Audit runs the store's checks of itself.
func (i *Inspector) Audit(ctx context.Context) (Audit, error) {
	var a Audit
	for _, q := range []struct {
		what, query string
		to          *int64
	}{
		{"events without their raw request", `SELECT COUNT(*) FROM events e WHERE e.original_id IS NULL
			AND NOT EXISTS (SELECT 1 FROM raw_events r WHERE r.event_id = e.id)`, &a.EventsWithoutRaw},
		{"orders no event names", `SELECT COUNT(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.order_ref = o.id)`, &a.OrdersWithoutEvents},
		{"orders nothing made", `SELECT COUNT(*) FROM orders o WHERE o.order_id IS NULL
			AND NOT EXISTS (SELECT 1 FROM events e WHERE e.order_ref = o.id)`, &a.StrayOrders},
		// order_aliases has no index on order_ref: NOT IN reads it once
		// into a temporary one, where NOT EXISTS would scan it per order.
		{"orders without an alias", `SELECT COUNT(*) FROM orders WHERE id NOT IN (SELECT order_ref FROM order_aliases)`, &a.OrdersWithoutAlias},
		{"foreign key check", `SELECT COUNT(*) FROM pragma_foreign_key_check`, &a.ForeignKeyViolations},
	} {
		if err := i.db.QueryRowContext(ctx, q.query).Scan(q.to); err != nil {
			return Audit{}, i.errorf(q.what, err)
		}
	}
	if err := i.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&a.Integrity); err != nil {
		return Audit{}, i.errorf("integrity check", err)
	}
	return a, nil
}

// Digest sums up every table's rows, by table name: how many there are and
// a hash of their values, so a test can show that something changed no
// table.
func (i *Inspector) Digest(ctx context.Context) (map[string]string, error) {
	tables, err := i.tables(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, tbl := range tables {
		sum, n, err := i.digestTable(ctx, tbl)
		if err != nil {
			return nil, i.errorf("digest of "+tbl, err)
		}
		out[tbl] = fmt.Sprintf("%d rows %s", n, sum)
	}
	return out, nil
}

func (i *Inspector) tables(ctx context.Context) ([]string, error) {
	rows, err := i.db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, i.errorf("tables", err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, i.errorf("tables", err)
		}
		tables = append(tables, n)
	}
	return tables, rows.Err()
}

func (i *Inspector) digestTable(ctx context.Context, tbl string) (string, int, error) {
	rows, err := i.db.QueryContext(ctx, fmt.Sprintf(`SELECT * FROM %q`, tbl))
	if err != nil {
		return "", 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for k := range vals {
		ptrs[k] = &vals[k]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return "", 0, err
		}
		fmt.Fprintf(h, "%v\x00", vals)
		n++
	}
	if err := rows.Err(); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], n, nil
}
