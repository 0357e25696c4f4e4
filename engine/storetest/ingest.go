package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// The ingest path and the order API: what a shop sees of its orders.

func testRegisteredOrderReachesPaid(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	register(t, s, "order_1", "chk_1", 4999)

	var seqs []int64
	var received []time.Time
	for _, ev := range []engine.Event{event("e1", sm.KindCheckoutCreated, "chk_1", 0), event("e2", sm.KindPaymentProcessing, "chk_1", 0), event("e3", sm.KindPaid, "chk_1", 4999)} {
		c.Add(time.Second)
		if ev.Kind == sm.KindPaid {
			ev.OccurredAt = c.Now().Add(-1500 * time.Millisecond)
		}
		res := ingest(t, s, ev)
		require.Equal(t, sm.Applied, res.Result)
		require.Equal(t, "order_1", res.OrderID)
		require.Equal(t, ev.Kind == sm.KindPaid, res.State == sm.Paid)
		seqs, received = append(seqs, res.Seq), append(received, c.Now())
	}
	o := order(t, s, "order_1")
	for i, e := range o.Events {
		require.Equal(t, seqs[i], e.Seq, "the timeline is in arrival order, by the seq each ingest answered")
		require.Equal(t, received[i], e.ReceivedAt)
		require.Equal(t, fmt.Sprintf("e%d", i+1), e.ProviderEventID)
	}
	require.Nil(t, o.Events[0].OccurredAt, "no provider time")
	require.NotNil(t, o.Events[2].OccurredAt)
	require.Equal(t, received[2].Add(-1500*time.Millisecond), *o.Events[2].OccurredAt)
	require.Equal(t, int64(4999), o.Events[2].Amount)
	require.Equal(t, sm.Paid, o.State)
	require.Equal(t, "USD", o.Currency, "the registered currency is kept upper-case")
	require.Equal(t, int64(4999), o.Captured)
	require.Len(t, o.Events, 3)
	require.Equal(t, sm.Processing, o.Events[2].FromState)
	require.Equal(t, sm.Paid, o.Events[2].ToState)
	require.Empty(t, o.Anomalies, "an in-order happy path raises nothing")
	require.NotNil(t, o.Anomalies, "the API shows an empty list, not null")

	byCheckout, err := s.OrderByCheckout(ctx, "tazapay", "chk_1")
	require.NoError(t, err)
	require.Equal(t, o.OrderID, byCheckout.OrderID)
}

func testDuplicatesAreCountedNotApplied(t *testing.T, open Opener) {
	t.Parallel()
	c := NewClock()
	s := open(t, c.Now)
	register(t, s, "order_1", "chk_1", 100)
	var results []sm.Result
	for range 3 {
		results = append(results, ingest(t, s, event("e1", sm.KindPaid, "chk_1", 100)).Result)
	}
	require.Equal(t, []sm.Result{sm.Applied, sm.Duplicate, sm.Duplicate}, results)
	o := order(t, s, "order_1")
	require.Equal(t, sm.Paid, o.State)
	require.Equal(t, int64(100), o.Captured, "a duplicate must not add its amount again")
	dup := byKind(o.Anomalies)[engine.AnomalyDuplicate]
	require.Equal(t, 2, dup.Count)
	require.Equal(t, engine.SeverityInfo, dup.Severity)
	require.Len(t, dup.EventSeqs, 2)
}

func testWebhookBeforeRegistration(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	ingest(t, s, event("e1", sm.KindRefunded, "chk_9", 500))
	o, err := s.OrderByCheckout(ctx, "tazapay", "chk_9")
	require.NoError(t, err)
	require.False(t, o.Registered)
	require.Equal(t, sm.PartiallyRefunded, o.State, "with no capture known, a refund cannot be called full")

	_, err = s.Order(ctx, "order_9")
	requireCode(t, engine.ENOTFOUND, err, "order_9 before it is registered")

	register(t, s, "order_9", "chk_9", 500)
	o = order(t, s, "order_9")
	require.True(t, o.Registered)
	require.Equal(t, sm.Refunded, o.State, "the registered amount makes the refund full")
	require.Len(t, o.Events, 1)
}

// testWebhookNamesTheShopOrder: a webhook that carries the shop's order id
// and arrives before the shop registered the order makes that id findable;
// registering it later, or another order under it, takes over.
func testWebhookNamesTheShopOrder(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	paid := event("e1", sm.KindPaid, "chk_7", 1080)
	paid.Reference = "SO-884"
	res := ingest(t, s, paid)
	require.Equal(t, "SO-884", res.OrderID, "the webhook's answer names it too")

	o := order(t, s, "SO-884")
	require.False(t, o.Registered)
	require.Equal(t, "SO-884", o.OrderID)
	require.Equal(t, "chk_7", o.CheckoutID)
	require.Equal(t, sm.Paid, o.State)
	byCheckout, err := s.OrderByCheckout(ctx, "tazapay", "chk_7")
	require.NoError(t, err)
	require.Equal(t, "SO-884", byCheckout.OrderID)

	// The customer tried again on a second checkout under the same shop
	// order: the latest is the one the shop's id finds.
	again := event("e2", sm.KindPaymentAttemptFailed, "chk_8", 0)
	again.Reference = "SO-884"
	ingest(t, s, again)
	require.Equal(t, "chk_8", order(t, s, "SO-884").CheckoutID)

	// Once the shop registers SO-884, the registration is what it names,
	// and it adopts both orders the webhooks made under its id.
	register(t, s, "SO-884", "chk_7", 1080)
	o = order(t, s, "SO-884")
	require.True(t, o.Registered)
	require.Equal(t, "chk_7", o.CheckoutID)
	require.Equal(t, sm.Paid, o.State)
	require.Len(t, o.Events, 2)
	byCheckout, err = s.OrderByCheckout(ctx, "tazapay", "chk_8")
	require.NoError(t, err)
	require.Equal(t, "SO-884", byCheckout.OrderID)

	_, err = s.Order(ctx, "SO-885")
	requireCode(t, engine.ENOTFOUND, err, "an id nobody registered and no webhook named")

	// A payment attempt names no shop order and makes the order first;
	// the checkout webhook after it names one, and that is kept.
	ingest(t, s, event("e3", sm.KindPaymentProcessing, "pay_9", 0))
	paid9 := event("e4", sm.KindPaid, "chk_9", 1080)
	paid9.Refs, paid9.Reference = []string{"pay_9"}, "SO-886"
	res = ingest(t, s, paid9)
	require.Equal(t, "SO-886", res.OrderID)
	o = order(t, s, "SO-886")
	require.Equal(t, sm.Paid, o.State)
	require.Len(t, o.Events, 2)
}

func testOrderNotFound(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	_, err := s.Order(ctx, "x")
	requireCode(t, engine.ENOTFOUND, err, "Order")
	require.Equal(t, "no order x", engine.ErrorMessage(err))
	_, err = s.OrderByCheckout(ctx, "tazapay", "nope")
	requireCode(t, engine.ENOTFOUND, err, "OrderByCheckout")
	require.Equal(t, "no order for tazapay checkout nope", engine.ErrorMessage(err))
}

func testRegisterOrderConflicts(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	register(t, s, "order_1", "chk_1", 100)
	register(t, s, "order_1", "chk_1", 100) // idempotent

	_, err := s.RegisterOrder(ctx, engine.Registration{OrderID: "order_1", Provider: "tazapay", CheckoutID: "chk_1", Amount: 200, Currency: "USD"})
	requireCode(t, engine.ECONFLICT, err, "the same order with another amount")
	_, err = s.RegisterOrder(ctx, engine.Registration{OrderID: "order_2", Provider: "tazapay", CheckoutID: "chk_1", Amount: 100, Currency: "USD"})
	requireCode(t, engine.ECONFLICT, err, "another order on the same checkout")
	require.Contains(t, engine.ErrorMessage(err), "already registered to order order_1")

	for name, reg := range map[string]engine.Registration{
		"NoOrderID":    {Provider: "tazapay", CheckoutID: "c", Currency: "USD"},
		"NoCheckout":   {OrderID: "o", Provider: "tazapay", Currency: "USD"},
		"BadCurrency":  {OrderID: "o", Provider: "tazapay", CheckoutID: "c", Currency: "dollars"},
		"Negative":     {OrderID: "o", Provider: "tazapay", CheckoutID: "c", Currency: "USD", Amount: -1},
		"BadMode":      {OrderID: "o", Provider: "tazapay", CheckoutID: "c", Currency: "USD", Mode: "prod"},
		"EmptyProvide": {OrderID: "o", CheckoutID: "c", Currency: "USD"},
	} {
		_, err := s.RegisterOrder(ctx, reg)
		requireCode(t, engine.EINVALID, err, name)
	}
	_, err = s.Order(ctx, "o")
	requireCode(t, engine.ENOTFOUND, err, "nothing refused was stored")
}

// Ids are shown in reports, logs and terminals and matched byte for byte:
// a NUL or a newline in one is a client's bug, not an id.
func testRegisterOrderRefusesControlCharacters(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
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
			_, err := s.RegisterOrder(ctx, r)
			requireCode(t, engine.EINVALID, err, fmt.Sprintf("%s %q", field, bad))
			require.Contains(t, engine.ErrorMessage(err), field, "%s %q", field, bad)
			require.Contains(t, engine.ErrorMessage(err), "control characters", "%s %q", field, bad)
		}
	}
	_, err := s.Order(ctx, "order_1")
	requireCode(t, engine.ENOTFOUND, err, "nothing refused was stored")

	o, err := s.RegisterOrder(ctx, reg("commande n° 7/β", "chk 1", "pay-1"))
	require.NoError(t, err, "spaces and non-ASCII letters are text")
	require.Equal(t, "commande n° 7/β", o.OrderID)
	o = order(t, s, "commande n° 7/β")
	require.Equal(t, "chk 1", o.CheckoutID, "stored byte for byte")
}

func testAnomaliesAtIngest(t *testing.T, open Opener) {
	t.Parallel()
	ctx := context.Background()
	withCurrency := func(e engine.Event, cur string) engine.Event { e.Currency = cur; return e }
	withMode := func(e engine.Event, mode string) engine.Event { e.Mode = mode; return e }
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
		{"CurrencyMismatch", []engine.Event{withCurrency(event("a", sm.KindPaid, "c", 100), "EUR")}, []string{engine.AnomalyCurrencyMismatch}, sm.Paid},
		{"ModeMismatch", []engine.Event{withMode(event("a", sm.KindPaid, "c", 100), engine.ModeTest)}, []string{engine.AnomalyModeMismatch}, sm.Paid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := NewClock()
			s := open(t, c.Now)
			register(t, s, "o", "c", 100)
			for i, ev := range tc.events {
				ev.OccurredAt = c.Now().Add(time.Duration(i) * time.Minute)
				c.Add(time.Second)
				_, err := s.Ingest(ctx, ev, request())
				require.NoError(t, err)
			}
			o := order(t, s, "o")
			require.Equal(t, tc.state, o.State)
			got := []string{}
			for _, a := range o.Anomalies {
				got = append(got, a.Kind)
				require.NotEmpty(t, a.Detail)
				require.Equal(t, engine.StatusOpen, a.Status)
				require.Equal(t, engine.Severity(a.Kind), a.Severity)
			}
			require.ElementsMatch(t, tc.want, got)
		})
	}
}

func testRedirectMismatch(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	register(t, s, "o", "c", 100)
	_, err := s.ReportRedirect(ctx, "o", "sideways")
	requireCode(t, engine.EINVALID, err, "an unknown outcome")
	_, err = s.ReportRedirect(ctx, "nobody", engine.RedirectSuccess)
	requireCode(t, engine.ENOTFOUND, err, "an order nobody registered")

	o, err := s.ReportRedirect(ctx, "o", engine.RedirectSuccess)
	require.NoError(t, err)
	require.Empty(t, o.Anomalies, "success with no webhook yet is not a mismatch")
	require.NotNil(t, o.Redirect)
	require.Equal(t, engine.RedirectSuccess, o.Redirect.Outcome)
	require.Equal(t, c.Now(), o.Redirect.At)
	ingest(t, s, event("a", sm.KindExpired, "c", 0))
	require.Contains(t, byKind(order(t, s, "o").Anomalies), engine.AnomalyRedirectMismatch)

	// The other way round: the webhook first, then a redirect that
	// contradicts it, whose answer shows the mismatch.
	register(t, s, "o2", "c2", 100)
	ingest(t, s, event("b", sm.KindPaid, "c2", 100))
	o, err = s.ReportRedirect(ctx, "o2", engine.RedirectCancel)
	require.NoError(t, err)
	require.Contains(t, byKind(o.Anomalies), engine.AnomalyRedirectMismatch, "cancelled, yet paid")
}

// testBadEventsAreRejected: an event unfit to store is refused whole. What
// would show a stored part of one: an order or alias made for its checkout,
// an anomaly, a delivery in the report's counts, or its dedupe key taken.
func testBadEventsAreRejected(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	from := c.Now()
	for name, ev := range map[string]engine.Event{
		"NoProvider":  {DedupeKey: "x", Kind: sm.KindPaid, CheckoutID: "c"},
		"NoDedupeKey": {Provider: "tazapay", Kind: sm.KindPaid, CheckoutID: "c"},
		"BadKind":     {Provider: "tazapay", DedupeKey: "x", Kind: "exploded", CheckoutID: "c"},
		"NoCheckout":  {Provider: "tazapay", DedupeKey: "x", Kind: sm.KindPaid},
		"Negative":    {Provider: "tazapay", DedupeKey: "x", Kind: sm.KindPaid, CheckoutID: "c", Amount: -5},
		"BadMode":     {Provider: "tazapay", DedupeKey: "x", Kind: sm.KindPaid, CheckoutID: "c", Mode: "prod"},
	} {
		_, err := s.Ingest(ctx, ev, request())
		requireCode(t, engine.EINVALID, err, name)
	}
	_, err := s.OrderByCheckout(ctx, "tazapay", "c")
	requireCode(t, engine.ENOTFOUND, err, "no order was made for a refused event")
	as, err := s.Anomalies(ctx, engine.AnomalyFilter{})
	require.NoError(t, err)
	require.Empty(t, as)
	n, err := s.Replay(ctx, false, func(engine.ReplayDiff) {})
	require.NoError(t, err)
	require.Zero(t, n, "no order at all")
	c.Add(time.Minute)
	d, err := s.ReportData(ctx, engine.ReportQuery{Since: from, Until: c.Now()})
	require.NoError(t, err)
	require.Empty(t, d.Activity, "no delivery was recorded")

	ok := event("x", sm.KindPaid, "c", 100)
	require.Equal(t, sm.Applied, ingest(t, s, ok).Result, "the refused events took no dedupe key")
}

func testUnknownTypeIsStoredAndIgnored(t *testing.T, open Opener) {
	t.Parallel()
	c := NewClock()
	s := open(t, c.Now)
	register(t, s, "o", "c", 100)
	require.Equal(t, sm.Ignored, ingest(t, s, event("u1", sm.KindUnknown, "c", 0)).Result)
	require.Equal(t, sm.Ignored, ingest(t, s, event("u2", sm.KindUnknown, "", 0)).Result, "an unknown type may name no order")
	// Events naming no order are deduplicated among themselves.
	for _, id := range []string{"u2", "u1"} {
		res := ingest(t, s, event(id, sm.KindUnknown, map[string]string{"u1": "c", "u2": ""}[id], 0))
		require.Equal(t, sm.Duplicate, res.Result, id)
	}
	o := order(t, s, "o")
	require.Equal(t, sm.Pending, o.State)
	require.Len(t, o.Events, 2, "the order's timeline shows the unknown event and its redelivery")
	require.Equal(t, sm.Ignored, o.Events[0].Result)
	require.Equal(t, sm.Duplicate, o.Events[1].Result)
}

// testReplayMatchesStoredState: folding every order's stored events again
// gives the state each was stored with, so replay finds nothing to fix.
func testReplayMatchesStoredState(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	register(t, s, "o1", "c1", 100)
	register(t, s, "o2", "c2", 100)
	// The refund's redelivery would make the refund full if it were
	// folded again.
	for _, ev := range []engine.Event{event("a", sm.KindPaid, "c1", 100), event("b", sm.KindRefunded, "c1", 60),
		event("c", sm.KindExpired, "c2", 0), event("d", sm.KindPaid, "c3", 70), event("b", sm.KindRefunded, "c1", 60)} {
		ingest(t, s, ev)
	}
	before := map[string]sm.State{"o1": order(t, s, "o1").State, "o2": order(t, s, "o2").State}
	require.Equal(t, map[string]sm.State{"o1": sm.PartiallyRefunded, "o2": sm.Expired}, before)
	for _, fix := range []bool{false, true} {
		var diffs []engine.ReplayDiff
		n, err := s.Replay(ctx, fix, func(d engine.ReplayDiff) { diffs = append(diffs, d) })
		require.NoError(t, err)
		require.Equal(t, 3, n, "every order, the unregistered one included")
		require.Empty(t, diffs)
	}
	require.Equal(t, before["o1"], order(t, s, "o1").State)
	require.Equal(t, before["o2"], order(t, s, "o2").State)
}

func testAckAnomaly(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	register(t, s, "o", "c", 100)
	ingest(t, s, event("a", sm.KindPaid, "c", 250))
	list, err := s.Anomalies(ctx, engine.AnomalyFilter{Kind: engine.AnomalyAmountMismatch})
	require.NoError(t, err)
	require.Len(t, list, 1)
	c.Add(time.Minute)
	a, err := s.AckAnomaly(ctx, list[0].ID, "customer paid shipping on top")
	require.NoError(t, err)
	require.Equal(t, list[0].ID, a.ID)
	require.Equal(t, engine.StatusAcknowledged, a.Status)
	require.Equal(t, "customer paid shipping on top", a.Note)
	require.Equal(t, "o", a.OrderID)
	require.NotNil(t, a.ResolvedAt)
	require.Equal(t, c.Now(), *a.ResolvedAt)
	firstAck := a.ResolvedAt

	// A colleague's later ack adds to the note; a retried request and an
	// ack without a note change nothing in it.
	for _, note := range []string{"refund of 150 sent", "refund of 150 sent", ""} {
		c.Add(time.Minute)
		a, err = s.AckAnomaly(ctx, list[0].ID, note)
		require.NoError(t, err)
	}
	require.Equal(t, "customer paid shipping on top\nrefund of 150 sent", a.Note)
	require.Equal(t, firstAck, a.ResolvedAt, "the anomaly was handled at the first ack")
	_, err = s.AckAnomaly(ctx, list[0].ID, strings.Repeat("x", 2001))
	requireCode(t, engine.EINVALID, err, "a note of 2,001 characters")
	_, err = s.AckAnomaly(ctx, list[0].ID, strings.Repeat("é", 1500)) // 3,000 bytes: characters are counted
	require.NoError(t, err)
	// Notes are bounded: acks add theirs until one would pass the bound.
	for i := 0; ; i++ {
		_, err := s.AckAnomaly(ctx, list[0].ID, fmt.Sprintf("%04d %s", i, strings.Repeat("n", 1990)))
		if err != nil {
			requireCode(t, engine.EINVALID, err, "notes past the bound")
			require.Greater(t, i, 5)
			break
		}
	}
	a, err = s.AckAnomaly(ctx, list[0].ID, "")
	require.NoError(t, err)
	require.LessOrEqual(t, utf8.RuneCountInString(a.Note), 20000)
	require.True(t, strings.HasPrefix(a.Note, "customer paid shipping on top\nrefund of 150 sent\néé"), "a refused note leaves the others")
	require.Equal(t, a.Note, byKind(order(t, s, "o").Anomalies)[engine.AnomalyAmountMismatch].Note, "the order shows the notes too")

	_, err = s.AckAnomaly(ctx, list[0].ID+999, "")
	requireCode(t, engine.ENOTFOUND, err, "an anomaly that does not exist")
	open_, err := s.Anomalies(ctx, engine.AnomalyFilter{Status: engine.StatusOpen})
	require.NoError(t, err)
	require.Empty(t, open_)
}

func testOrdersStoredApartAreMerged(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	register(t, s, "order_1", "chk_1", 4999)
	// A payment attempt knows only the payin id: it cannot find the order yet.
	attempt := event("att", sm.KindPaymentAttemptFailed, "pay_1", 0)
	ingest(t, s, attempt)
	orphan, err := s.OrderByCheckout(ctx, "tazapay", "pay_1")
	require.NoError(t, err)
	require.False(t, orphan.Registered)

	// checkout.paid names both ids: the two are one order.
	paid := event("paid", sm.KindPaid, "chk_1", 4999)
	paid.Refs = []string{"pay_1"}
	ingest(t, s, paid)
	o := order(t, s, "order_1")
	require.Equal(t, sm.Paid, o.State)
	require.Len(t, o.Events, 2)
	require.Equal(t, []string{"att", "paid"}, []string{o.Events[0].ProviderEventID, o.Events[1].ProviderEventID},
		"one timeline, in arrival order")
	byPayin, err := s.OrderByCheckout(ctx, "tazapay", "pay_1")
	require.NoError(t, err)
	require.Equal(t, "order_1", byPayin.OrderID)
	// A redelivery of the event stored on the merged-away order is still
	// known: its events moved with it.
	res := ingest(t, s, attempt)
	require.Equal(t, sm.Duplicate, res.Result)
	require.Equal(t, "order_1", res.OrderID)
	var diffs int
	n, err := s.Replay(ctx, false, func(engine.ReplayDiff) { diffs++ })
	require.NoError(t, err)
	require.Equal(t, 1, n, "the orphan is gone")
	require.Zero(t, diffs)
}

func testMergeComparesCarriedEvents(t *testing.T, open Opener) {
	t.Parallel()
	for _, how := range []string{"an event naming both ids", "a registration naming the other id"} {
		t.Run(how, func(t *testing.T) {
			ctx, c := context.Background(), NewClock()
			s := open(t, c.Now)
			register(t, s, "order_1", "chk_1", 4999)
			// A capture of the wrong amount, known only by the payin id,
			// lands on an order nobody registered: nothing to compare with.
			res := ingest(t, s, event("paid_pay_1", sm.KindPaid, "pay_1", 5000))
			require.Empty(t, order(t, s, "order_1").Anomalies)

			var err error
			if how == "an event naming both ids" {
				created := event("created", sm.KindCheckoutCreated, "chk_1", 0)
				created.Refs = []string{"pay_1"}
				_, err = s.Ingest(ctx, created, request())
			} else {
				_, err = s.RegisterOrder(ctx, engine.Registration{OrderID: "order_1", Provider: "tazapay", CheckoutID: "chk_1",
					Amount: 4999, Currency: "USD", Mode: engine.ModeLive, OtherIDs: []string{"pay_1"}})
			}
			require.NoError(t, err)
			o := order(t, s, "order_1")
			require.Equal(t, sm.Paid, o.State)
			got := byKind(o.Anomalies)
			require.Contains(t, got, engine.AnomalyAmountMismatch, "the carried capture is compared once it joins order_1")
			require.Equal(t, []int64{res.Seq}, got[engine.AnomalyAmountMismatch].EventSeqs)
		})
	}
}

func testOtherIDsJoinOrders(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	register(t, s, "order_1", "chk_1", 4999)
	// The attempt names only the payin: alone it makes an order of its own.
	ingest(t, s, event("att", sm.KindPaymentProcessing, "pay_1", 0))
	require.Equal(t, sm.Pending, order(t, s, "order_1").State)

	// Registering again with the payin id joins the two.
	reg := engine.Registration{OrderID: "order_1", Provider: "tazapay", CheckoutID: "chk_1", Amount: 4999, Currency: "USD",
		Mode: engine.ModeLive, OtherIDs: []string{"pay_1"}}
	o, err := s.RegisterOrder(ctx, reg)
	require.NoError(t, err)
	require.Equal(t, sm.Processing, o.State)
	require.Len(t, o.Events, 1)
	n, err := s.Replay(ctx, false, func(engine.ReplayDiff) {})
	require.NoError(t, err)
	require.Equal(t, 1, n, "one order is left")

	// Later attempts find the order directly.
	ingest(t, s, event("att2", sm.KindPaymentAttemptFailed, "pay_1", 0))
	require.Len(t, order(t, s, "order_1").Events, 2)

	// An id of another registered order is refused.
	register(t, s, "order_2", "chk_2", 100)
	_, err = s.RegisterOrder(ctx, engine.Registration{OrderID: "order_2", Provider: "tazapay", CheckoutID: "chk_2", Amount: 100,
		Currency: "USD", Mode: engine.ModeLive, OtherIDs: []string{"pay_1"}})
	requireCode(t, engine.ECONFLICT, err, "another registered order's id")
	_, err = s.RegisterOrder(ctx, engine.Registration{OrderID: "order_3", Provider: "tazapay", CheckoutID: "chk_3", Amount: 100,
		Currency: "USD", OtherIDs: []string{""}})
	requireCode(t, engine.EINVALID, err, "an empty other id")
}

// An event that leaves the state as it was updates the order's last event
// and amounts but not when it entered its state, which the stuck rule and
// the sweep's reads by state go by; one that moves it sets both.
func testStateSinceMovesOnlyWithTheState(t *testing.T, open Opener) {
	t.Parallel()
	c := NewClock()
	s := open(t, c.Now)
	register(t, s, "o", "c", 100)
	registered := c.Now()

	c.Add(time.Minute)
	require.Equal(t, sm.Applied, ingest(t, s, event("created", sm.KindCheckoutCreated, "c", 0)).Result)
	o := order(t, s, "o")
	require.Equal(t, sm.Pending, o.State)
	require.Equal(t, registered, o.StateSince, "the state did not change")
	require.Equal(t, c.Now(), o.UpdatedAt, "the event is the order's latest")

	c.Add(time.Minute)
	ingest(t, s, event("paid", sm.KindPaid, "c", 100))
	o = order(t, s, "o")
	require.Equal(t, sm.Paid, o.State)
	require.Equal(t, c.Now(), o.StateSince)
	require.Equal(t, int64(100), o.Captured)

	// The sweep finds the order by its new state and when it entered it,
	// and no longer by its old one.
	paid := sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) {
		return tx.InState(sm.Paid, engine.Key{}, c.Now().Add(time.Second), 0)
	})
	require.Len(t, paid, 1)
	require.Equal(t, o.Ref, paid[0].Ref)
	require.Equal(t, c.Now(), paid[0].StateSince)
	pending := sweepRead(t, s, func(tx engine.SweepTx) ([]engine.SweepOrder, error) {
		return tx.InState(sm.Pending, engine.Key{}, c.Now().Add(time.Second), 0)
	})
	require.Empty(t, pending)
}

// testPingThenClose: a store answers Ping while it can commit, and a
// second Close, as the Opener's cleanup makes, is harmless.
func testPingThenClose(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	require.NoError(t, s.Ping(ctx))
	register(t, s, "o", "c", 100)
	require.NoError(t, s.Ping(ctx))
	require.NoError(t, s.Close())
	_ = s.Close()
}

// testClosedStoreAnswersRetry: once closed, a store refuses every call
// with a code that makes the caller retry: a provider's webhook gets a
// 503 and comes again, and so does a shop's read during a shutdown.
func testClosedStoreAnswersRetry(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	register(t, s, "o", "c", 100)
	require.NoError(t, s.Close())

	retry := func(err error, what string) {
		t.Helper()
		require.Error(t, err, what)
		require.Contains(t, []string{engine.ESHUTDOWN, engine.EUNAVAILABLE}, engine.ErrorCode(err), "%s: %v", what, err)
	}
	_, err := s.Ingest(ctx, event("a", sm.KindPaid, "c", 100), request())
	retry(err, "Ingest")
	_, err = s.RegisterOrder(ctx, engine.Registration{OrderID: "p", Provider: "tazapay", CheckoutID: "cp", Currency: "USD"})
	retry(err, "RegisterOrder")
	_, err = s.ReportRedirect(ctx, "o", engine.RedirectSuccess)
	retry(err, "ReportRedirect")
	retry(s.Sweep(ctx, func(engine.SweepTx) error { return nil }), "Sweep")
	retry(s.SetWatermark(ctx, "report", c.Now()), "SetWatermark")
	retry(s.RecordRejections(ctx, c.Now(), map[[2]string]int{{"tazapay", "signature"}: 1}), "RecordRejections")
	retry(s.Ping(ctx), "Ping")
	_, err = s.Order(ctx, "o")
	retry(err, "Order")
	_, err = s.Anomalies(ctx, engine.AnomalyFilter{})
	retry(err, "Anomalies")
}
