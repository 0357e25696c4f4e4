package simulate_test

import (
	"bytes"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/tokenz"
	"github.com/orderstate/orderstate/adapters/tweed"
	"github.com/orderstate/orderstate/adapters/yoco"
	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/internal/simulate"
	sm "github.com/orderstate/orderstate/statemachine"
)

func adapters(s simulate.Secrets) map[string]engine.Adapter {
	return map[string]engine.Adapter{
		simulate.Tokenz:  tokenz.New(s.Tokenz),
		simulate.Yoco:    yoco.MustNew(s.Yoco),
		simulate.Tazapay: tazapay.New(s.Tazapay),
		simulate.Tweed:   tweed.New(s.Tweed),
	}
}

// Every webhook the simulator sends verifies and parses, with the
// provider's own adapter, into exactly the event the simulator meant; every
// forged one is refused. With filler too: the note is read by no adapter.
func TestWebhooksParseAsMeant(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		filler int
	}{{"Plain", 0}, {"Filler", 2200}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			webhooksParseAsMeant(t, simulate.Config{Seed: 7, Orders: 1500, Faults: simulate.DefaultFaults().Scale(3), Filler: tc.filler})
		})
	}
}

func webhooksParseAsMeant(t *testing.T, cfg simulate.Config) {
	t.Helper()
	secrets := simulate.NewSecrets()
	ads := adapters(secrets)
	now := time.Now()
	g := simulate.NewGenerator(cfg)
	types := map[string]bool{}
	forged := 0
	for _, o := range g.Orders() {
		for i := range o.Deliveries {
			d := &o.Deliveries[i]
			if d.Action != simulate.Webhook {
				continue
			}
			r := d.Request(secrets, now)
			require.Equal(t, "/webhooks/"+o.Provider, r.Path)
			req := &engine.Request{Header: r.Header, Body: r.Body}
			a := ads[o.Provider]
			err := a.Verify(req, now)
			if d.Forged {
				require.Error(t, err, "%s: a forged %s verified", o.ID, d.Event.Type)
				forged++
				continue
			}
			require.NoError(t, err, "%s %s", o.ID, d.Event.Type)
			ev, err := a.Parse(req)
			require.NoError(t, err, "%s %s: %s", o.ID, d.Event.Type, r.Body)
			want := d.Event
			types[o.Provider+" "+want.Type] = true
			require.Equal(t, want.Kind, ev.Kind, "%s %s", o.ID, want.Type)
			require.Equal(t, want.Type, ev.Type)
			require.Equal(t, want.EventID, ev.EventID)
			require.Equal(t, want.DedupeKey, ev.DedupeKey)
			require.Equal(t, want.CheckoutID, ev.CheckoutID)
			require.ElementsMatch(t, want.Refs, ev.Refs, "%s %s", o.ID, want.Type)
			require.Equal(t, want.Reference, ev.Reference)
			require.True(t, want.Time.Equal(ev.OccurredAt), "%s %s: time %s, adapter read %s", o.ID, want.Type, want.Time, ev.OccurredAt)
			require.Equal(t, want.Amount, ev.Amount, "%s %s", o.ID, want.Type)
			require.Equal(t, want.Currency, ev.Currency)
			require.Equal(t, want.Mode, ev.Mode, "%s %s", o.ID, want.Type)
		}
	}
	require.Positive(t, forged)
	for _, typ := range []string{
		"tokenz order.created", "tokenz order.succeeded",
		"yoco payment.succeeded", "yoco refund.succeeded", "yoco refund.failed",
		"tazapay checkout.created", "tazapay payment_attempt.created", "tazapay payment_attempt.failed",
		"tazapay payment_attempt.succeeded", "tazapay checkout.paid", "tazapay checkout.expired",
		"tazapay checkout.tax_invoice_generated", "tazapay refund.pending", "tazapay refund.succeeded",
		"tweed CREATED", "tweed PERFORM_CHECKOUT_SUBMITTED", "tweed TRANSACTION_BROADCAST", "tweed DONE", "tweed FAILED",
		"tweed FAILED_AFTER_TX_COMPLETED",
	} {
		require.True(t, types[typ], "the day never sent %s", typ)
	}
}

func TestSameSeedSameDay(t *testing.T) {
	t.Parallel()
	cfg := simulate.Config{Seed: 42, Orders: 300}
	a, b := simulate.NewGenerator(cfg).Orders(), simulate.NewGenerator(cfg).Orders()
	require.Equal(t, a, b)
	// An order depends only on the seed and its index.
	require.Equal(t, a[123], simulate.NewGenerator(cfg).Order(123))
	c := simulate.NewGenerator(simulate.Config{Seed: 43, Orders: 300}).Orders()
	require.NotEqual(t, a[0].Deliveries[0].Body, c[0].Deliveries[0].Body)
}

// Every fault shows up in a day, and registration always comes first.
func TestDayHasEveryFault(t *testing.T) {
	t.Parallel()
	orders := simulate.NewGenerator(simulate.Config{Seed: 1, Orders: 2000, Faults: simulate.DemoFaults()}).Orders()
	faults := map[string]int{}
	kinds := map[string]int{}
	for _, o := range orders {
		require.Equal(t, simulate.Register, o.Deliveries[0].Action)
		for _, d := range o.Deliveries[1:] {
			require.NotEqual(t, simulate.Register, d.Action)
		}
		for _, f := range o.Faults {
			faults[f]++
		}
		for _, k := range o.Want.Anomalies {
			kinds[k]++
		}
	}
	for _, f := range simulate.FaultNames {
		require.Positive(t, faults[f], "fault %s never injected", f)
	}
	for _, k := range engine.AnomalyKinds {
		require.Positive(t, kinds[k], "no order expects %s", k)
	}
}

// An order whose webhooks never come is paid by what the provider's API
// answers; without the answer it would be flagged missing.
func TestUnsentIsPaidByThePoll(t *testing.T) {
	t.Parallel()
	orders := simulate.NewGenerator(simulate.Config{Seed: 3, Orders: 400, Faults: simulate.DefaultFaults().Scale(0).Merge(simulate.Faults{simulate.FaultUnsent: 0.5})}).Orders()
	n := 0
	for _, o := range orders {
		if !o.HasFault(simulate.FaultUnsent) {
			require.Nil(t, o.Polled)
			continue
		}
		n++
		require.Contains(t, []string{simulate.Tazapay, simulate.Yoco}, o.Provider)
		require.NotNil(t, o.Polled)
		require.Equal(t, sm.Paid, o.Want.State, o.ID)
		require.NotContains(t, o.Want.Anomalies, engine.AnomalyMissingWebhook)
		for _, d := range o.Deliveries {
			if d.Action == simulate.Webhook {
				require.NotEqual(t, sm.KindPaid, d.Event.Kind, "the confirming webhook never comes")
			}
		}
		without := simulate.Expect(o.Deliveries)
		require.Contains(t, without.Anomalies, engine.AnomalyMissingWebhook, "without the poll it is missing")
	}
	require.Greater(t, n, 50)
	unchanged := simulate.NewGenerator(simulate.Config{Seed: 3, Orders: 400, Faults: simulate.DefaultFaults().Scale(0)}).Orders()
	for i, o := range unchanged {
		if !orders[i].HasFault(simulate.FaultUnsent) {
			require.Equal(t, o.Deliveries, orders[i].Deliveries, "the fault changes no other order")
		}
	}
}

func TestParseFaults(t *testing.T) {
	t.Parallel()
	f, err := simulate.ParseFaults("")
	require.NoError(t, err)
	require.Equal(t, simulate.DefaultFaults(), f)
	f, err = simulate.ParseFaults("2")
	require.NoError(t, err)
	require.InDelta(t, 2*simulate.DefaultFaults()[simulate.FaultRetry], f[simulate.FaultRetry], 1e-9)
	f, err = simulate.ParseFaults("0.5,forged=0.2,drop=0")
	require.NoError(t, err)
	require.InDelta(t, 0.2, f[simulate.FaultForged], 1e-9)
	require.Zero(t, f[simulate.FaultDrop])
	require.InDelta(t, simulate.DefaultFaults()[simulate.FaultRetry]/2, f[simulate.FaultRetry], 1e-9)
	f, err = simulate.ParseFaults("none")
	require.NoError(t, err)
	for _, v := range f {
		require.Zero(t, v)
	}
	for _, bad := range []string{"bogus=0.1", "drop=2", "drop=x", "forged=0.1,2", "-1"} {
		_, err := simulate.ParseFaults(bad)
		require.Error(t, err, bad)
	}
}

// The truth's rules on sequences whose answer is known by hand.
func TestExpect(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	reg := func(provider string) simulate.Delivery {
		return simulate.Delivery{Action: simulate.Register, Provider: provider, OrderID: "o1",
			Body: []byte(`{"provider":"` + provider + `","checkout_id":"chk","amount":1000,"currency":"USD","mode":"live"}`)}
	}
	hook := func(provider, key string, kind sm.Kind, min int, mods ...func(*simulate.Event)) simulate.Delivery {
		ev := &simulate.Event{Type: string(kind), Kind: kind, EventID: key, DedupeKey: key, CheckoutID: "chk",
			Time: base.Add(time.Duration(min) * time.Minute)}
		if kind == sm.KindPaid || kind == sm.KindRefunded {
			ev.Amount, ev.Currency = 1000, "USD"
		}
		for _, m := range mods {
			m(ev)
		}
		return simulate.Delivery{Action: simulate.Webhook, Provider: provider, OrderID: "o1", Event: ev}
	}
	redirect := func(outcome string) simulate.Delivery {
		return simulate.Delivery{Action: simulate.Redirect, OrderID: "o1", Outcome: outcome}
	}
	payin := func(e *simulate.Event) { e.CheckoutID, e.Refs = "pay", []string{"pat"} }
	linked := func(e *simulate.Event) { e.Refs = []string{"pay"} }
	amount := func(n int64) func(*simulate.Event) { return func(e *simulate.Event) { e.Amount = n } }
	currency := func(c string) func(*simulate.Event) { return func(e *simulate.Event) { e.Currency = c } }
	mode := func(m string) func(*simulate.Event) { return func(e *simulate.Event) { e.Mode = m } }
	secondCheckout := func(e *simulate.Event) { e.CheckoutID, e.Reference = "chk2", "o1" }

	cases := []struct {
		name    string
		ds      []simulate.Delivery
		state   sm.State
		kinds   []string
		orphans int
	}{
		{"InOrder", []simulate.Delivery{reg("x"), hook("x", "a", sm.KindCheckoutCreated, 0), hook("x", "b", sm.KindPaid, 1), redirect("success")},
			sm.Paid, nil, 0},
		{"PaidBeforeCreated", []simulate.Delivery{reg("x"), hook("x", "b", sm.KindPaid, 1), hook("x", "a", sm.KindCheckoutCreated, 0)},
			sm.Paid, []string{engine.AnomalyOutOfOrder}, 0},
		{"SameRankEarlierTime", []simulate.Delivery{reg("x"), hook("x", "b", sm.KindPaymentProcessing, 2), hook("x", "a", sm.KindPaymentAttemptFailed, 1), hook("x", "c", sm.KindPaid, 3)},
			sm.Paid, []string{engine.AnomalyOutOfOrder}, 0},
		{"Redelivered", []simulate.Delivery{reg("x"), hook("x", "b", sm.KindPaid, 1), hook("x", "b", sm.KindPaid, 1)},
			sm.Paid, []string{engine.AnomalyDuplicate}, 0},
		{"PaidAfterExpiry", []simulate.Delivery{reg("x"), hook("x", "a", sm.KindExpired, 60), hook("x", "b", sm.KindPaid, 61)},
			sm.Paid, []string{engine.AnomalyLateAfterFinal}, 0},
		{"ExpiryAfterPaidIsStale", []simulate.Delivery{reg("x"), hook("x", "b", sm.KindPaid, 1), hook("x", "a", sm.KindExpired, 60)},
			sm.Paid, nil, 0},
		{"FailedAfterDone", []simulate.Delivery{reg("x"), hook("x", "b", sm.KindPaid, 1), hook("x", "c", sm.KindFailed, 2)},
			sm.NeedsReview, []string{engine.AnomalyConflict, engine.AnomalyLateAfterFinal}, 0},
		{"DoneAfterFailed", []simulate.Delivery{reg("x"), hook("x", "c", sm.KindFailed, 2), hook("x", "b", sm.KindPaid, 1)},
			sm.NeedsReview, []string{engine.AnomalyConflict, engine.AnomalyLateAfterFinal, engine.AnomalyOutOfOrder}, 0},
		{"FailedAfterSettlement", []simulate.Delivery{reg("x"), hook("x", "b", sm.KindPaid, 1), hook("x", "c", sm.KindFailedAfterSettlement, 2)},
			sm.NeedsReview, []string{engine.AnomalyFailedAfterSettlement}, 0},
		{"PartialRefund", []simulate.Delivery{reg("x"), hook("x", "b", sm.KindPaid, 1), hook("x", "r", sm.KindRefunded, 90, amount(400))},
			sm.PartiallyRefunded, nil, 0},
		{"RefundBeforePayment", []simulate.Delivery{reg("x"), hook("x", "r", sm.KindRefunded, 90), hook("x", "b", sm.KindPaid, 1)},
			sm.Refunded, []string{engine.AnomalyOutOfOrder}, 0},
		{"AmountAndMode", []simulate.Delivery{reg("x"), hook("x", "b", sm.KindPaid, 1, amount(990), mode("test"))},
			sm.Paid, []string{engine.AnomalyAmountMismatch, engine.AnomalyModeMismatch}, 0},
		{"CurrencyHidesAmount", []simulate.Delivery{reg("x"), hook("x", "b", sm.KindPaid, 1, amount(990), currency("SGD"))},
			sm.Paid, []string{engine.AnomalyCurrencyMismatch}, 0},
		{"SuccessButNothingCame", []simulate.Delivery{reg("x"), hook("x", "a", sm.KindCheckoutCreated, 0), redirect("success")},
			sm.Pending, []string{engine.AnomalyMissingWebhook, engine.AnomalyStuck}, 0},
		{"CancelButPaid", []simulate.Delivery{reg("x"), redirect("cancel"), hook("x", "b", sm.KindPaid, 1)},
			sm.Paid, []string{engine.AnomalyRedirectMismatch}, 0},
		// The mismatch held while the order was expired; the payment
		// resolved it, as it would never have been raised had the payment
		// come first.
		{"SuccessWhileExpiredThenPaid", []simulate.Delivery{reg("x"), hook("x", "a", sm.KindExpired, 60), redirect("success"), hook("x", "b", sm.KindPaid, 61)},
			sm.Paid, []string{engine.AnomalyLateAfterFinal}, 0},
		{"FailedAfterExpiredIsNotLate", []simulate.Delivery{reg("x"), hook("x", "a", sm.KindExpired, 60), hook("x", "c", sm.KindFailed, 61)},
			sm.Failed, nil, 0},
		{"FailedTwiceIsNoConflict", []simulate.Delivery{reg("x"), hook("x", "c", sm.KindFailed, 2), hook("x", "d", sm.KindFailedAfterSettlement, 3)},
			sm.NeedsReview, []string{engine.AnomalyFailedAfterSettlement}, 0},
		{"PaidLastAfterTwoFailures", []simulate.Delivery{reg("x"), hook("x", "c", sm.KindFailed, 2), hook("x", "d", sm.KindFailedAfterSettlement, 3), hook("x", "b", sm.KindPaid, 4)},
			sm.NeedsReview, []string{engine.AnomalyConflict, engine.AnomalyFailedAfterSettlement, engine.AnomalyOutOfOrder}, 0},
		{"PaidOnACheckoutNeverRegistered", []simulate.Delivery{reg("x"), hook("x", "b", sm.KindPaid, 1, secondCheckout)},
			sm.Paid, []string{engine.AnomalyCheckoutMismatch}, 0},
		{"PaidByReferenceBeforeRegistration", []simulate.Delivery{hook("x", "b", sm.KindPaid, 1, secondCheckout), reg("x")},
			sm.Paid, []string{engine.AnomalyCheckoutMismatch}, 0},
		{"SecondCheckoutTiedToTheFirst", []simulate.Delivery{hook("x", "b", sm.KindPaid, 1, secondCheckout), reg("x"),
			hook("x", "t", sm.KindInformational, 2, func(e *simulate.Event) { e.CheckoutID, e.Refs = "chk", []string{"chk2"} })},
			sm.Paid, nil, 0},
		{"AttemptsBeforeCheckoutJoin", []simulate.Delivery{reg("x"), hook("x", "p", sm.KindPaymentProcessing, 1, payin), hook("x", "b", sm.KindPaid, 2, linked)},
			sm.Paid, nil, 0},
		{"AttemptsNeverJoined", []simulate.Delivery{reg("x"), hook("x", "p", sm.KindPaymentProcessing, 1, payin), redirect("success")},
			sm.Pending, []string{engine.AnomalyMissingWebhook, engine.AnomalyStuck}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := simulate.Expect(tc.ds)
			require.Equal(t, tc.state, got.State)
			want := slices.Clone(tc.kinds)
			slices.Sort(want)
			if want == nil {
				want = []string{}
			}
			require.Equal(t, want, got.Anomalies)
			require.Len(t, got.Orphans, tc.orphans)
			if tc.orphans > 0 {
				require.Equal(t, sm.Processing, got.Orphans[0].State)
				require.Equal(t, []string{engine.AnomalyStuck}, got.Orphans[0].Anomalies)
			}
		})
	}
}

func TestRequestShapes(t *testing.T) {
	t.Parallel()
	secrets := simulate.NewSecrets()
	o := simulate.NewGenerator(simulate.Config{Seed: 3, Orders: 10}).Order(0)
	r := o.Deliveries[0].Request(secrets, time.Now())
	require.Equal(t, http.MethodPut, r.Method)
	require.Equal(t, "/v1/orders/"+o.ID, r.Path)
	require.True(t, bytes.Contains(r.Body, []byte(o.CheckoutID)))
}

// Filler makes every webhook body heavier by the note and changes nothing
// else: the same orders, deliveries, events and truth.
func TestFillerOnlyAddsWeight(t *testing.T) {
	t.Parallel()
	cfg := simulate.Config{Seed: 11, Orders: 400, Faults: simulate.DefaultFaults().Scale(2)}
	plain := simulate.NewGenerator(cfg).Orders()
	cfg.Filler = 2000
	padded := simulate.NewGenerator(cfg).Orders()
	for i, o := range padded {
		p := plain[i]
		require.Equal(t, p.ID, o.ID)
		require.Equal(t, p.Flow, o.Flow)
		require.Equal(t, p.Faults, o.Faults)
		require.Equal(t, p.Want, o.Want)
		require.Len(t, o.Deliveries, len(p.Deliveries))
		for j, d := range o.Deliveries {
			pd := p.Deliveries[j]
			require.Equal(t, pd.Action, d.Action)
			require.Equal(t, pd.At, d.At)
			if d.Action != simulate.Webhook {
				require.Equal(t, pd.Body, d.Body)
				continue
			}
			if d.Provider != simulate.Tweed {
				// Tweed's ids are hashes of the body.
				require.Equal(t, pd.Event, d.Event)
			}
			// 3/4 to 5/4 of the filler, plus the field that holds it.
			extra := len(d.Body) - len(pd.Body)
			require.GreaterOrEqual(t, extra, 1500, "%s %s", o.ID, d.Event.Type)
			require.LessOrEqual(t, extra, 2500+40, "%s %s", o.ID, d.Event.Type)
		}
	}
}

func TestIDPrefix(t *testing.T) {
	t.Parallel()
	g := simulate.NewGenerator(simulate.Config{Seed: 3, Orders: 50, IDPrefix: "run2-"})
	o := g.Order(41)
	require.Equal(t, "run2-000042", o.ID)
	r := o.Deliveries[0].Request(simulate.Secrets{}, time.Now())
	require.Equal(t, "/v1/orders/run2-000042", r.Path)
	require.Equal(t, "SO-000042", simulate.NewGenerator(simulate.Config{Seed: 3, Orders: 50}).Order(41).ID)
}

// A delivery that is not Dated gives the same request whenever it is made;
// a Dated one is signed anew at each moment.
func TestDated(t *testing.T) {
	t.Parallel()
	secrets := simulate.NewSecrets()
	t0 := time.Now()
	t1 := t0.Add(90 * time.Second)
	dated := map[string]bool{}
	for _, o := range simulate.NewGenerator(simulate.Config{Seed: 5, Orders: 200}).Orders() {
		for i := range o.Deliveries {
			d := &o.Deliveries[i]
			a, b := d.Request(secrets, t0), d.Request(secrets, t1)
			if !d.Dated() {
				require.Equal(t, a, b, "%s %s", o.ID, d.Action)
				continue
			}
			require.Equal(t, simulate.Webhook, d.Action)
			require.NotEqual(t, a.Header, b.Header, "%s %s", o.ID, d.Event.Type)
			require.Equal(t, a.Body, b.Body)
			dated[d.Provider] = true
		}
	}
	require.Equal(t, map[string]bool{simulate.Tokenz: true, simulate.Yoco: true}, dated)
}
