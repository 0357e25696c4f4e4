package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	sm "github.com/orderstate/orderstate/statemachine"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustOpen(tb testing.TB, path string, c *clock) *sqlite.DB {
	tb.Helper()
	if path == "" {
		path = filepath.Join(tb.TempDir(), "orderstate.db")
	}
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{Now: c.Now})
	require.NoError(tb, err)
	tb.Cleanup(func() { db.Close() })
	return db
}

func req(body string) *engine.Request {
	return &engine.Request{Header: http.Header{"Content-Type": {"application/json"}, "Signature": {"secret-sig"}}, Body: []byte(body)}
}

func event(id string, kind sm.Kind, checkout string, amount int64) engine.Event {
	return engine.Event{Provider: "tazapay", EventID: id, DedupeKey: id, Type: "test." + string(kind), Kind: kind,
		CheckoutID: checkout, Amount: amount, Currency: "USD", Mode: engine.ModeLive}
}

func register(t *testing.T, db *sqlite.DB, orderID, checkout string, amount int64) {
	t.Helper()
	_, err := db.RegisterOrder(context.Background(), engine.Registration{OrderID: orderID, Provider: "tazapay",
		CheckoutID: checkout, Amount: amount, Currency: "usd", Mode: engine.ModeLive})
	require.NoError(t, err)
}

func kinds(as []engine.Anomaly) map[string]engine.Anomaly {
	out := map[string]engine.Anomaly{}
	for _, a := range as {
		out[a.Kind] = a
	}
	return out
}

func TestIngest_RegisteredOrderReachesPaid(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	register(t, db, "order_1", "chk_1", 4999)

	for _, ev := range []engine.Event{event("e1", sm.KindCheckoutCreated, "chk_1", 0), event("e2", sm.KindPaymentProcessing, "chk_1", 0), event("e3", sm.KindPaid, "chk_1", 4999)} {
		c.Add(time.Second)
		res, err := db.Ingest(ctx, ev, req(`{}`))
		require.NoError(t, err)
		require.Equal(t, sm.Applied, res.Result)
		require.Equal(t, "order_1", res.OrderID)
	}
	o, err := db.Order(ctx, "order_1")
	require.NoError(t, err)
	require.Equal(t, sm.Paid, o.State)
	require.Equal(t, int64(4999), o.Captured)
	require.Len(t, o.Events, 3)
	require.Equal(t, sm.Processing, o.Events[2].FromState)
	require.Equal(t, sm.Paid, o.Events[2].ToState)
	require.Empty(t, o.Anomalies, "an in-order happy path raises nothing")

	byCheckout, err := db.OrderByCheckout(ctx, "tazapay", "chk_1")
	require.NoError(t, err)
	require.Equal(t, o.OrderID, byCheckout.OrderID)
}

func TestIngest_DuplicatesAreCountedNotApplied(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	register(t, db, "order_1", "chk_1", 100)
	var results []sm.Result
	for range 3 {
		res, err := db.Ingest(ctx, event("e1", sm.KindPaid, "chk_1", 100), req(`{"id":"e1"}`))
		require.NoError(t, err)
		results = append(results, res.Result)
	}
	require.Equal(t, []sm.Result{sm.Applied, sm.Duplicate, sm.Duplicate}, results)
	o, err := db.Order(ctx, "order_1")
	require.NoError(t, err)
	require.Equal(t, sm.Paid, o.State)
	require.Equal(t, int64(100), o.Captured, "a duplicate must not add its amount again")
	dup := kinds(o.Anomalies)[engine.AnomalyDuplicate]
	require.Equal(t, 2, dup.Count)
	require.Equal(t, engine.SeverityInfo, dup.Severity)
	require.Len(t, dup.EventSeqs, 2)
}

func TestIngest_WebhookBeforeRegistration(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	_, err := db.Ingest(ctx, event("e1", sm.KindRefunded, "chk_9", 500), req(`{}`))
	require.NoError(t, err)
	o, err := db.OrderByCheckout(ctx, "tazapay", "chk_9")
	require.NoError(t, err)
	require.False(t, o.Registered)
	require.Equal(t, sm.PartiallyRefunded, o.State, "with no capture known, a refund cannot be called full")

	_, err = db.Order(ctx, "order_9")
	require.Equal(t, engine.ENOTFOUND, engine.ErrorCode(err))

	register(t, db, "order_9", "chk_9", 500)
	o, err = db.Order(ctx, "order_9")
	require.NoError(t, err)
	require.True(t, o.Registered)
	require.Equal(t, sm.Refunded, o.State, "the registered amount makes the refund full")
	require.Len(t, o.Events, 1)
}

// TestIngest_WebhookNamesTheShopOrder: a webhook that carries the shop's
// order id and arrives before the shop registered the order makes that id
// findable; registering it later, or another order under it, takes over.
func TestIngest_WebhookNamesTheShopOrder(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	paid := event("e1", sm.KindPaid, "chk_7", 1080)
	paid.Reference = "SO-884"
	res, err := db.Ingest(ctx, paid, req(`{}`))
	require.NoError(t, err)
	require.Equal(t, "SO-884", res.OrderID, "the webhook's answer names it too")

	o, err := db.Order(ctx, "SO-884")
	require.NoError(t, err)
	require.False(t, o.Registered)
	require.Equal(t, "SO-884", o.OrderID)
	require.Equal(t, "chk_7", o.CheckoutID)
	require.Equal(t, sm.Paid, o.State)
	byCheckout, err := db.OrderByCheckout(ctx, "tazapay", "chk_7")
	require.NoError(t, err)
	require.Equal(t, "SO-884", byCheckout.OrderID)

	// The customer tried again on a second checkout under the same shop
	// order: the latest is the one the shop's id finds.
	again := event("e2", sm.KindPaymentAttemptFailed, "chk_8", 0)
	again.Reference = "SO-884"
	_, err = db.Ingest(ctx, again, req(`{}`))
	require.NoError(t, err)
	o, err = db.Order(ctx, "SO-884")
	require.NoError(t, err)
	require.Equal(t, "chk_8", o.CheckoutID)

	// Once the shop registers SO-884, the registration is what it names,
	// and it adopts both orders the webhooks made under its id.
	register(t, db, "SO-884", "chk_7", 1080)
	o, err = db.Order(ctx, "SO-884")
	require.NoError(t, err)
	require.True(t, o.Registered)
	require.Equal(t, "chk_7", o.CheckoutID)
	require.Equal(t, sm.Paid, o.State)
	require.Len(t, o.Events, 2)
	byCheckout, err = db.OrderByCheckout(ctx, "tazapay", "chk_8")
	require.NoError(t, err)
	require.Equal(t, "SO-884", byCheckout.OrderID)

	_, err = db.Order(ctx, "SO-885")
	require.Equal(t, engine.ENOTFOUND, engine.ErrorCode(err), "an id nobody registered and no webhook named")

	// A payment attempt names no shop order and makes the order first;
	// the checkout webhook after it names one, and that is kept.
	att := event("e3", sm.KindPaymentProcessing, "pay_9", 0)
	_, err = db.Ingest(ctx, att, req(`{}`))
	require.NoError(t, err)
	paid9 := event("e4", sm.KindPaid, "chk_9", 1080)
	paid9.Refs, paid9.Reference = []string{"pay_9"}, "SO-886"
	res, err = db.Ingest(ctx, paid9, req(`{}`))
	require.NoError(t, err)
	require.Equal(t, "SO-886", res.OrderID)
	o, err = db.Order(ctx, "SO-886")
	require.NoError(t, err)
	require.Equal(t, sm.Paid, o.State)
	require.Len(t, o.Events, 2)
}

func TestOrder_NotFoundSaysWhatWasLookedFor(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	_, err := db.Order(ctx, "x")
	require.Equal(t, engine.ENOTFOUND, engine.ErrorCode(err))
	require.Equal(t, "no order x", engine.ErrorMessage(err))
	_, err = db.OrderByCheckout(ctx, "tazapay", "nope")
	require.Equal(t, engine.ENOTFOUND, engine.ErrorCode(err))
	require.Equal(t, "no order for tazapay checkout nope", engine.ErrorMessage(err))
}

func TestRegisterOrder_Conflicts(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	register(t, db, "order_1", "chk_1", 100)
	register(t, db, "order_1", "chk_1", 100) // idempotent

	_, err := db.RegisterOrder(ctx, engine.Registration{OrderID: "order_1", Provider: "tazapay", CheckoutID: "chk_1", Amount: 200, Currency: "USD"})
	require.Equal(t, engine.ECONFLICT, engine.ErrorCode(err))
	_, err = db.RegisterOrder(ctx, engine.Registration{OrderID: "order_2", Provider: "tazapay", CheckoutID: "chk_1", Amount: 100, Currency: "USD"})
	require.Equal(t, engine.ECONFLICT, engine.ErrorCode(err))
	require.Contains(t, engine.ErrorMessage(err), "already registered to order order_1")

	for name, reg := range map[string]engine.Registration{
		"NoOrderID":    {Provider: "tazapay", CheckoutID: "c", Currency: "USD"},
		"NoCheckout":   {OrderID: "o", Provider: "tazapay", Currency: "USD"},
		"BadCurrency":  {OrderID: "o", Provider: "tazapay", CheckoutID: "c", Currency: "dollars"},
		"Negative":     {OrderID: "o", Provider: "tazapay", CheckoutID: "c", Currency: "USD", Amount: -1},
		"BadMode":      {OrderID: "o", Provider: "tazapay", CheckoutID: "c", Currency: "USD", Mode: "prod"},
		"EmptyProvide": {OrderID: "o", CheckoutID: "c", Currency: "USD"},
	} {
		_, err := db.RegisterOrder(ctx, reg)
		require.Equal(t, engine.EINVALID, engine.ErrorCode(err), name)
	}
}

// Ids are shown in reports, logs and terminals and matched byte for byte:
// a NUL or a newline in one is a client's bug, not an id.
func TestRegisterOrder_RefusesControlCharactersInIDs(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	reg := func(orderID, checkoutID string, other ...string) engine.Registration {
		return engine.Registration{OrderID: orderID, Provider: "tazapay", CheckoutID: checkoutID, Amount: 100, Currency: "USD",
			Mode: engine.ModeLive, OtherIDs: other}
	}
	for _, bad := range []string{"\x00x", "x\x00", "a\nb", "a\rb", "a\tb", "\x1b[31mred", "a\x7fb", "a\u0085b", "\xffx"} {
		for field, r := range map[string]engine.Registration{
			"order_id":    reg(bad, "chk_1"),
			"checkout_id": reg("order_1", bad),
			"other_ids":   reg("order_1", "chk_1", "pay_1", bad),
		} {
			_, err := db.RegisterOrder(ctx, r)
			require.Equal(t, engine.EINVALID, engine.ErrorCode(err), "%s %q", field, bad)
			require.Contains(t, engine.ErrorMessage(err), field, "%s %q", field, bad)
			require.Contains(t, engine.ErrorMessage(err), "control characters", "%s %q", field, bad)
		}
	}
	_, err := db.Order(ctx, "order_1")
	require.Equal(t, engine.ENOTFOUND, engine.ErrorCode(err), "nothing refused was stored")

	o, err := db.RegisterOrder(ctx, reg("commande n° 7/β", "chk 1", "pay-1"))
	require.NoError(t, err, "spaces and non-ASCII letters are text")
	require.Equal(t, "commande n° 7/β", o.OrderID)
}

func TestIngest_AnomaliesAtIngest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name   string
		events []engine.Event
		want   []string
		state  sm.State
	}{
		{"PaidAfterExpiredIsLate", []engine.Event{event("a", sm.KindExpired, "c", 0), event("b", sm.KindPaid, "c", 100)}, []string{engine.AnomalyLateAfterFinal}, sm.Paid},
		{"ExpiredAfterPaidIsBenign", []engine.Event{event("a", sm.KindPaid, "c", 100), event("b", sm.KindExpired, "c", 0)}, nil, sm.Paid},
		{"FailedAfterPaidConflicts", []engine.Event{event("a", sm.KindPaid, "c", 100), event("b", sm.KindFailed, "c", 0)}, []string{engine.AnomalyLateAfterFinal, engine.AnomalyConflict}, sm.NeedsReview},
		{"FailedAfterSettlement", []engine.Event{event("a", sm.KindPaid, "c", 100), event("b", sm.KindFailedAfterSettlement, "c", 0)}, []string{engine.AnomalyFailedAfterSettlement}, sm.NeedsReview},
		{"CreatedAfterPaidIsOutOfOrder", []engine.Event{event("a", sm.KindPaid, "c", 100), event("b", sm.KindCheckoutCreated, "c", 0)}, []string{engine.AnomalyOutOfOrder}, sm.Paid},
		{"AmountMismatch", []engine.Event{event("a", sm.KindPaid, "c", 150)}, []string{engine.AnomalyAmountMismatch}, sm.Paid},
		{"CurrencyMismatch", []engine.Event{func() engine.Event { e := event("a", sm.KindPaid, "c", 100); e.Currency = "EUR"; return e }()}, []string{engine.AnomalyCurrencyMismatch}, sm.Paid},
		{"ModeMismatch", []engine.Event{func() engine.Event { e := event("a", sm.KindPaid, "c", 100); e.Mode = engine.ModeTest; return e }()}, []string{engine.AnomalyModeMismatch}, sm.Paid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClock()
			db := mustOpen(t, "", c)
			register(t, db, "o", "c", 100)
			for i, ev := range tc.events {
				ev.OccurredAt = c.Now().Add(time.Duration(i) * time.Minute)
				c.Add(time.Second)
				_, err := db.Ingest(ctx, ev, req(`{}`))
				require.NoError(t, err)
			}
			o, err := db.Order(ctx, "o")
			require.NoError(t, err)
			require.Equal(t, tc.state, o.State)
			got := []string{}
			for _, a := range o.Anomalies {
				got = append(got, a.Kind)
				require.NotEmpty(t, a.Detail)
				require.Equal(t, engine.StatusOpen, a.Status)
			}
			require.ElementsMatch(t, tc.want, got)
		})
	}
}

func TestRedirectMismatch(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	register(t, db, "o", "c", 100)
	_, err := db.ReportRedirect(ctx, "o", "sideways")
	require.Equal(t, engine.EINVALID, engine.ErrorCode(err))
	_, err = db.ReportRedirect(ctx, "nobody", engine.RedirectSuccess)
	require.Equal(t, engine.ENOTFOUND, engine.ErrorCode(err))

	o, err := db.ReportRedirect(ctx, "o", engine.RedirectSuccess)
	require.NoError(t, err)
	require.Empty(t, o.Anomalies, "success with no webhook yet is not a mismatch")
	_, err = db.Ingest(ctx, event("a", sm.KindExpired, "c", 0), req(`{}`))
	require.NoError(t, err)
	o, err = db.Order(ctx, "o")
	require.NoError(t, err)
	require.Contains(t, kinds(o.Anomalies), engine.AnomalyRedirectMismatch)
}

func TestIngest_RejectsBadEventsAndStoresNothing(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	before := countRows(t, db.Path())
	for name, ev := range map[string]engine.Event{
		"NoDedupeKey": {Provider: "tazapay", Kind: sm.KindPaid, CheckoutID: "c"},
		"BadKind":     {Provider: "tazapay", DedupeKey: "x", Kind: "exploded", CheckoutID: "c"},
		"NoCheckout":  {Provider: "tazapay", DedupeKey: "x", Kind: sm.KindPaid},
		"Negative":    {Provider: "tazapay", DedupeKey: "x", Kind: sm.KindPaid, CheckoutID: "c", Amount: -5},
		"BadMode":     {Provider: "tazapay", DedupeKey: "x", Kind: sm.KindPaid, CheckoutID: "c", Mode: "prod"},
	} {
		_, err := db.Ingest(ctx, ev, req(`{}`))
		require.Equal(t, engine.EINVALID, engine.ErrorCode(err), name)
	}
	require.Equal(t, before, countRows(t, db.Path()))
}

func TestIngest_UnknownTypeIsStoredAndIgnored(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	register(t, db, "o", "c", 100)
	ev := event("u1", sm.KindUnknown, "c", 0)
	res, err := db.Ingest(ctx, ev, req(`{"type":"payout.created"}`))
	require.NoError(t, err)
	require.Equal(t, sm.Ignored, res.Result)
	ev = event("u2", sm.KindUnknown, "", 0)
	res, err = db.Ingest(ctx, ev, req(`{"type":"escrow.moved"}`))
	require.NoError(t, err)
	require.Equal(t, sm.Ignored, res.Result)
	// Events naming no order are deduplicated among themselves.
	for _, id := range []string{"u2", "u1"} {
		res, err = db.Ingest(ctx, event(id, sm.KindUnknown, map[string]string{"u1": "c", "u2": ""}[id], 0), req(`{}`))
		require.NoError(t, err)
		require.Equal(t, sm.Duplicate, res.Result, id)
	}
	o, err := db.Order(ctx, "o")
	require.NoError(t, err)
	require.Equal(t, sm.Pending, o.State)
	require.Equal(t, 2, countRows(t, db.Path())["raw_events"], "both bodies are kept raw")
}

func TestReplay_MatchesStoredStateAndFindsTampering(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	path := filepath.Join(t.TempDir(), "o.db")
	db := mustOpen(t, path, c)
	register(t, db, "o1", "c1", 100)
	register(t, db, "o2", "c2", 100)
	for _, ev := range []engine.Event{event("a", sm.KindPaid, "c1", 100), event("b", sm.KindRefunded, "c1", 40), event("c", sm.KindExpired, "c2", 0)} {
		_, err := db.Ingest(ctx, ev, req(`{}`))
		require.NoError(t, err)
	}
	var diffs []engine.ReplayDiff
	n, err := db.Replay(ctx, false, func(d engine.ReplayDiff) { diffs = append(diffs, d) })
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Empty(t, diffs)

	conn, err := sql.Open("sqlite", "file:"+path)
	require.NoError(t, err)
	_, err = conn.Exec(`UPDATE orders SET state = 'paid' WHERE checkout_id = 'c2'`)
	require.NoError(t, err)
	conn.Close()
	_, err = db.Replay(ctx, true, func(d engine.ReplayDiff) { diffs = append(diffs, d) })
	require.NoError(t, err)
	require.Len(t, diffs, 1)
	require.Equal(t, sm.Paid, diffs[0].Stored)
	require.Equal(t, sm.Expired, diffs[0].Replayed)
	o, err := db.Order(ctx, "o2")
	require.NoError(t, err)
	require.Equal(t, sm.Expired, o.State, "--fix writes the replayed state")
}

func TestAckAnomaly(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	register(t, db, "o", "c", 100)
	_, err := db.Ingest(ctx, event("a", sm.KindPaid, "c", 250), req(`{}`))
	require.NoError(t, err)
	list, err := db.Anomalies(ctx, engine.AnomalyFilter{Kind: engine.AnomalyAmountMismatch})
	require.NoError(t, err)
	require.Len(t, list, 1)
	a, err := db.AckAnomaly(ctx, list[0].ID, "customer paid shipping on top")
	require.NoError(t, err)
	require.Equal(t, engine.StatusAcknowledged, a.Status)
	require.Equal(t, "customer paid shipping on top", a.Note)
	firstAck := a.ResolvedAt

	// A colleague's later ack adds to the note; a retried request and an
	// ack without a note change nothing in it.
	for _, note := range []string{"refund of 150 sent", "refund of 150 sent", ""} {
		c.Add(time.Minute)
		a, err = db.AckAnomaly(ctx, list[0].ID, note)
		require.NoError(t, err)
	}
	require.Equal(t, "customer paid shipping on top\nrefund of 150 sent", a.Note)
	require.Equal(t, firstAck, a.ResolvedAt, "the anomaly was handled at the first ack")
	_, err = db.AckAnomaly(ctx, list[0].ID, strings.Repeat("x", 2001))
	require.Equal(t, engine.EINVALID, engine.ErrorCode(err))
	_, err = db.AckAnomaly(ctx, list[0].ID, strings.Repeat("é", 1500)) // 3,000 bytes: characters are counted
	require.NoError(t, err)
	// Notes are bounded: acks add theirs until one would pass the bound.
	for i := 0; ; i++ {
		_, err := db.AckAnomaly(ctx, list[0].ID, fmt.Sprintf("%04d %s", i, strings.Repeat("n", 1990)))
		if err != nil {
			require.Equal(t, engine.EINVALID, engine.ErrorCode(err), err)
			require.Greater(t, i, 5)
			break
		}
	}
	a, err = db.AckAnomaly(ctx, list[0].ID, "")
	require.NoError(t, err)
	require.LessOrEqual(t, utf8.RuneCountInString(a.Note), 20000)
	require.True(t, strings.HasPrefix(a.Note, "customer paid shipping on top\nrefund of 150 sent\néé"), "a refused note leaves the others")

	_, err = db.AckAnomaly(ctx, 999, "")
	require.Equal(t, engine.ENOTFOUND, engine.ErrorCode(err))
	open, err := db.Anomalies(ctx, engine.AnomalyFilter{Status: engine.StatusOpen})
	require.NoError(t, err)
	require.Empty(t, open)
}

func TestStore_SurvivesReopen(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	path := filepath.Join(t.TempDir(), "o.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{Now: c.Now})
	require.NoError(t, err)
	register(t, db, "o", "c", 100)
	_, err = db.Ingest(ctx, event("a", sm.KindPaid, "c", 100), req(`{}`))
	require.NoError(t, err)
	before, err := db.Order(ctx, "o")
	require.NoError(t, err)
	require.NoError(t, db.Close())

	db = mustOpen(t, path, c)
	after, err := db.Order(ctx, "o")
	require.NoError(t, err)
	require.Equal(t, before, after)
	_, err = db.Ingest(ctx, event("a", sm.KindPaid, "c", 100), req(`{}`))
	require.NoError(t, err)
	after, err = db.Order(ctx, "o")
	require.NoError(t, err)
	require.Equal(t, sm.Duplicate, after.Events[1].Result, "dedupe survives a restart")
}

func TestGroupCommit_OneBadWriteFailsAlone(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Update(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO watermarks (name, at) VALUES (?, 'x')`, fmt.Sprint("job", i)); err != nil {
					return err
				}
				if i%8 == 3 {
					return engine.Errorf(engine.EINVALID, "write %d refuses", i)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var n int
		require.NoError(t, openCount(t, db.Path(), fmt.Sprint("job", i), &n))
		if i%8 == 3 {
			require.Equal(t, engine.EINVALID, engine.ErrorCode(err))
			require.Zero(t, n, "a failed write leaves nothing behind")
		} else {
			require.NoError(t, err)
			require.Equal(t, 1, n, "write %d was acknowledged, so it is stored", i)
		}
	}
}

func openCount(t *testing.T, path, name string, n *int) error {
	conn, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)")
	require.NoError(t, err)
	defer conn.Close()
	return conn.QueryRow(`SELECT COUNT(*) FROM watermarks WHERE name = ?`, name).Scan(n)
}

func TestIngest_OrdersStoredApartAreMerged(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	register(t, db, "order_1", "chk_1", 4999)
	// A payment attempt knows only the payin id: it cannot find the order yet.
	attempt := event("att", sm.KindPaymentAttemptFailed, "pay_1", 0)
	_, err := db.Ingest(ctx, attempt, req(`{}`))
	require.NoError(t, err)
	orphan, err := db.OrderByCheckout(ctx, "tazapay", "pay_1")
	require.NoError(t, err)
	require.False(t, orphan.Registered)

	// checkout.paid names both ids: the two are one order.
	paid := event("paid", sm.KindPaid, "chk_1", 4999)
	paid.Refs = []string{"pay_1"}
	_, err = db.Ingest(ctx, paid, req(`{}`))
	require.NoError(t, err)
	o, err := db.Order(ctx, "order_1")
	require.NoError(t, err)
	require.Equal(t, sm.Paid, o.State)
	require.Len(t, o.Events, 2)
	byPayin, err := db.OrderByCheckout(ctx, "tazapay", "pay_1")
	require.NoError(t, err)
	require.Equal(t, "order_1", byPayin.OrderID)
	require.Equal(t, 1, countRows(t, db.Path())["orders"], "the orphan is gone")
	// A redelivery of the event stored on the merged-away order is still
	// known: its events moved with it.
	res, err := db.Ingest(ctx, attempt, req(`{}`))
	require.NoError(t, err)
	require.Equal(t, sm.Duplicate, res.Result)
	require.Equal(t, "order_1", res.OrderID)
	var diffs int
	_, err = db.Replay(ctx, false, func(engine.ReplayDiff) { diffs++ })
	require.NoError(t, err)
	require.Zero(t, diffs)
}

func TestMerge_ComparesCarriedEventsWithTheRegistration(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"an event naming both ids", "a registration naming the other id"} {
		t.Run(how, func(t *testing.T) {
			ctx, c := context.Background(), newClock()
			db := mustOpen(t, "", c)
			register(t, db, "order_1", "chk_1", 4999)
			// A capture of the wrong amount, known only by the payin id,
			// lands on an order nobody registered: nothing to compare with.
			wrong := event("paid_pay_1", sm.KindPaid, "pay_1", 5000)
			res, err := db.Ingest(ctx, wrong, req(`{}`))
			require.NoError(t, err)
			o, err := db.Order(ctx, "order_1")
			require.NoError(t, err)
			require.Empty(t, o.Anomalies)

			if how == "an event naming both ids" {
				created := event("created", sm.KindCheckoutCreated, "chk_1", 0)
				created.Refs = []string{"pay_1"}
				_, err = db.Ingest(ctx, created, req(`{}`))
			} else {
				_, err = db.RegisterOrder(ctx, engine.Registration{OrderID: "order_1", Provider: "tazapay", CheckoutID: "chk_1",
					Amount: 4999, Currency: "USD", Mode: engine.ModeLive, OtherIDs: []string{"pay_1"}})
			}
			require.NoError(t, err)
			o, err = db.Order(ctx, "order_1")
			require.NoError(t, err)
			require.Equal(t, sm.Paid, o.State)
			got := kinds(o.Anomalies)
			require.Contains(t, got, engine.AnomalyAmountMismatch, "the carried capture is compared once it joins order_1")
			require.Equal(t, []int64{res.Seq}, got[engine.AnomalyAmountMismatch].EventSeqs)
		})
	}
}

func TestRegisterOrder_OtherIDsJoinAnOrderWebhooksMadeApart(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	register(t, db, "order_1", "chk_1", 4999)
	// The attempt names only the payin: alone it makes an order of its own.
	_, err := db.Ingest(ctx, event("att", sm.KindPaymentProcessing, "pay_1", 0), req(`{}`))
	require.NoError(t, err)
	o, err := db.Order(ctx, "order_1")
	require.NoError(t, err)
	require.Equal(t, sm.Pending, o.State)

	// Registering again with the payin id joins the two.
	reg := engine.Registration{OrderID: "order_1", Provider: "tazapay", CheckoutID: "chk_1", Amount: 4999, Currency: "USD",
		Mode: engine.ModeLive, OtherIDs: []string{"pay_1"}}
	o, err = db.RegisterOrder(ctx, reg)
	require.NoError(t, err)
	require.Equal(t, sm.Processing, o.State)
	require.Len(t, o.Events, 1)
	require.Equal(t, 1, countRows(t, db.Path())["orders"])

	// Later attempts find the order directly.
	_, err = db.Ingest(ctx, event("att2", sm.KindPaymentAttemptFailed, "pay_1", 0), req(`{}`))
	require.NoError(t, err)
	o, err = db.Order(ctx, "order_1")
	require.NoError(t, err)
	require.Len(t, o.Events, 2)

	// An id of another registered order is refused.
	register(t, db, "order_2", "chk_2", 100)
	_, err = db.RegisterOrder(ctx, engine.Registration{OrderID: "order_2", Provider: "tazapay", CheckoutID: "chk_2", Amount: 100,
		Currency: "USD", Mode: engine.ModeLive, OtherIDs: []string{"pay_1"}})
	require.Equal(t, engine.ECONFLICT, engine.ErrorCode(err))
	_, err = db.RegisterOrder(ctx, engine.Registration{OrderID: "order_3", Provider: "tazapay", CheckoutID: "chk_3", Amount: 100,
		Currency: "USD", OtherIDs: []string{""}})
	require.Equal(t, engine.EINVALID, engine.ErrorCode(err))
}

// An event that leaves the state as it was updates the order's last event
// and amounts but not when it entered its state, which the stuck rule and
// the sweep's state index go by; one that moves it sets both.
func TestIngest_StateSinceMovesOnlyWithTheState(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	register(t, db, "o", "c", 100)
	registered := c.Now()

	c.Add(time.Minute)
	res, err := db.Ingest(ctx, event("created", sm.KindCheckoutCreated, "c", 0), req(`{}`))
	require.NoError(t, err)
	require.Equal(t, sm.Applied, res.Result)
	o, err := db.Order(ctx, "o")
	require.NoError(t, err)
	require.Equal(t, sm.Pending, o.State)
	require.Equal(t, registered, o.StateSince, "the state did not change")
	require.Equal(t, c.Now(), o.UpdatedAt, "the event is the order's latest")

	c.Add(time.Minute)
	_, err = db.Ingest(ctx, event("paid", sm.KindPaid, "c", 100), req(`{}`))
	require.NoError(t, err)
	o, err = db.Order(ctx, "o")
	require.NoError(t, err)
	require.Equal(t, sm.Paid, o.State)
	require.Equal(t, c.Now(), o.StateSince)
	require.Equal(t, int64(100), o.Captured)

	// The sweep finds orders by state through the index the update keeps.
	var n int
	require.NoError(t, db.Update(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM orders INDEXED BY orders_state_since WHERE state = 'paid' AND state_since = ?`,
			c.Now().UTC().Format("2006-01-02T15:04:05.000000000Z")).Scan(&n)
	}))
	require.Equal(t, 1, n)
}

// countRows counts every table's rows of the store at path.
func countRows(t *testing.T, path string) map[string]int {
	t.Helper()
	counts, err := sqlite.CountRows(context.Background(), path)
	require.NoError(t, err)
	return counts
}
