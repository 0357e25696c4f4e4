package engine_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

var reg = &engine.Registration{OrderID: "SO-1", Provider: "tazapay", CheckoutID: "chk", Amount: 1000, Currency: "USD",
	Mode: engine.ModeLive, OtherIDs: []string{"pay"}}

func fact(seq int64, kind sm.Kind, ids ...string) engine.Fact {
	return engine.Fact{Seq: seq, Provider: "tazapay", Type: "t." + string(kind), Kind: kind, Currency: "USD",
		Mode: engine.ModeLive, IDs: ids}
}

func with(f engine.Fact, mod func(*engine.Fact)) engine.Fact { mod(&f); return f }

func kindsOf(fs []engine.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Kind)
	}
	return out
}

func TestAssess(t *testing.T) {
	t.Parallel()
	paid := with(fact(1, sm.KindPaid, "chk"), func(f *engine.Fact) { f.Amount = 1000 })
	cases := []struct {
		name   string
		facts  engine.Facts
		want   []string
		seqsOf map[string][]int64
	}{
		{"Nothing", engine.Facts{State: sm.Paid, Registration: reg, Events: []engine.Fact{paid}}, nil, nil},
		{"FailedTwiceIsNoConflict", engine.Facts{State: sm.NeedsReview, Registration: reg,
			Events: []engine.Fact{fact(1, sm.KindFailed, "chk"), fact(2, sm.KindFailedAfterSettlement, "chk")}},
			[]string{engine.AnomalyFailedAfterSettlement}, nil},
		{"PaidAndFailedConflict", engine.Facts{State: sm.NeedsReview, Registration: reg,
			Events: []engine.Fact{fact(2, sm.KindFailed, "chk"), fact(3, sm.KindFailedAfterSettlement, "chk"), paid}},
			[]string{engine.AnomalyConflict, engine.AnomalyFailedAfterSettlement},
			map[string][]int64{engine.AnomalyConflict: {1, 2}, engine.AnomalyFailedAfterSettlement: {3}}},
		{"RefundImpliesCapture", engine.Facts{State: sm.NeedsReview,
			Events: []engine.Fact{fact(1, sm.KindRefunded, "pay"), fact(2, sm.KindFailed, "pay")}},
			[]string{engine.AnomalyConflict}, nil},
		{"AmountDiffers", engine.Facts{State: sm.Paid, Registration: reg,
			Events: []engine.Fact{with(paid, func(f *engine.Fact) { f.Amount = 990 })}},
			[]string{engine.AnomalyAmountMismatch}, nil},
		{"CurrencyHidesAmount", engine.Facts{State: sm.Paid, Registration: reg,
			Events: []engine.Fact{with(paid, func(f *engine.Fact) { f.Amount, f.Currency = 1350, "SGD" })}},
			[]string{engine.AnomalyCurrencyMismatch}, nil},
		{"RefundInAnotherCurrency", engine.Facts{State: sm.PartiallyRefunded, Registration: reg,
			Events: []engine.Fact{paid, with(fact(2, sm.KindRefunded, "chk"), func(f *engine.Fact) { f.Amount, f.Currency = 10, "EUR" })}},
			[]string{engine.AnomalyCurrencyMismatch}, nil},
		{"StalePaidStillCounts", engine.Facts{State: sm.Paid, Registration: reg,
			Events: []engine.Fact{paid, with(fact(2, sm.KindPaid, "chk"), func(f *engine.Fact) { f.Amount = 5 })}},
			[]string{engine.AnomalyAmountMismatch}, map[string][]int64{engine.AnomalyAmountMismatch: {2}}},
		{"TestModeOnLive", engine.Facts{State: sm.Paid, Registration: reg,
			Events: []engine.Fact{with(paid, func(f *engine.Fact) { f.Mode = engine.ModeTest })}},
			[]string{engine.AnomalyModeMismatch}, nil},
		{"IgnoredAndInformationalRaiseNothing", engine.Facts{State: sm.Pending, Registration: reg,
			Events: []engine.Fact{
				with(fact(1, sm.KindUnknown, "chk"), func(f *engine.Fact) { f.Mode = engine.ModeTest }),
				with(fact(2, sm.KindInformational, "zzz"), func(f *engine.Fact) { f.Mode, f.Currency = engine.ModeTest, "EUR" }),
			}}, nil, nil},
		{"PaidOnAnUnregisteredCheckout", engine.Facts{State: sm.Paid, Registration: reg,
			Events: []engine.Fact{with(paid, func(f *engine.Fact) { f.IDs = []string{"chk2", "pay2"} })}},
			[]string{engine.AnomalyCheckoutMismatch}, nil},
		{"PaidOnTheRegisteredPayin", engine.Facts{State: sm.Paid, Registration: reg,
			Events: []engine.Fact{with(paid, func(f *engine.Fact) { f.IDs = []string{"pay", "pat"} })}}, nil, nil},
		{"TiedToTheRegisteredCheckoutByAnotherEvent", engine.Facts{State: sm.Paid, Registration: reg,
			Events: []engine.Fact{with(paid, func(f *engine.Fact) { f.IDs = []string{"pat9"} }),
				fact(2, sm.KindCheckoutCreated, "chk2", "pat9"), fact(3, sm.KindInformational, "chk", "chk2")}}, nil, nil},
		{"IDsNotKeptAreTakenOnTrust", engine.Facts{State: sm.Paid, Registration: reg,
			Events: []engine.Fact{with(paid, func(f *engine.Fact) { f.IDs = nil })}}, nil, nil},
		{"NoRegistrationNoMismatch", engine.Facts{State: sm.Paid,
			Events: []engine.Fact{with(paid, func(f *engine.Fact) { f.IDs, f.Amount, f.Mode = []string{"x"}, 1, engine.ModeTest })}}, nil, nil},
		{"RedirectSuccessButExpired", engine.Facts{State: sm.Expired, Registration: reg,
			Redirect: &engine.Redirect{Outcome: engine.RedirectSuccess}}, []string{engine.AnomalyRedirectMismatch}, nil},
		{"RedirectCancelButPaid", engine.Facts{State: sm.Paid, Registration: reg, Events: []engine.Fact{paid},
			Redirect: &engine.Redirect{Outcome: engine.RedirectCancel}}, []string{engine.AnomalyRedirectMismatch}, nil},
		{"RedirectAgrees", engine.Facts{State: sm.Paid, Registration: reg, Events: []engine.Fact{paid},
			Redirect: &engine.Redirect{Outcome: engine.RedirectSuccess}}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := engine.Assess(tc.facts)
			want := tc.want
			if want == nil {
				want = []string{}
			}
			require.Equal(t, want, kindsOf(got))
			for _, f := range got {
				require.NotEmpty(t, f.Detail)
				require.True(t, engine.IsOrderFree(f.Kind))
				if seqs, ok := tc.seqsOf[f.Kind]; ok {
					require.Equal(t, seqs, f.Seqs, f.Kind)
				}
			}
		})
	}
}

// TestAssess_TheOrderOfFactsIsIrrelevant: the findings, their evidence and
// their words are the same however the facts are listed.
func TestAssess_TheOrderOfFactsIsIrrelevant(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	kinds := []sm.Kind{sm.KindPaid, sm.KindFailed, sm.KindRefunded, sm.KindFailedAfterSettlement, sm.KindExpired, sm.KindInformational}
	idSets := [][]string{{"chk"}, {"pay"}, {"chk2"}, {"chk2", "pay"}, {"x", "chk2"}}
	for range 500 {
		var events []engine.Fact
		for i := range 1 + r.IntN(6) {
			f := fact(int64(i+1), kinds[r.IntN(len(kinds))], idSets[r.IntN(len(idSets))]...)
			f.Amount = []int64{0, 1000, 990}[r.IntN(3)]
			f.Currency = []string{"USD", "USD", "EUR"}[r.IntN(3)]
			f.Mode = []string{engine.ModeLive, engine.ModeLive, engine.ModeTest}[r.IntN(3)]
			events = append(events, f)
		}
		facts := engine.Facts{State: sm.Paid, Registration: reg, Events: events}
		want := engine.Assess(facts)
		for range 5 {
			shuffled := slices.Clone(events)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			facts.Events = shuffled
			require.Equal(t, want, engine.Assess(facts))
		}
	}
}

func TestArrivalFindings(t *testing.T) {
	t.Parallel()
	ev := engine.Event{Provider: "tweed", Type: "FAILED", Kind: sm.KindFailed}
	require.Empty(t, engine.ArrivalFindings(ev, 3, sm.Outcome{From: sm.Paid, To: sm.Paid, Result: sm.Stale}, false))
	got := engine.ArrivalFindings(ev, 3, sm.Outcome{From: sm.Paid, To: sm.NeedsReview, Result: sm.Conflict, LateAfterFinal: true}, true)
	require.Equal(t, []string{engine.AnomalyOutOfOrder, engine.AnomalyLateAfterFinal}, kindsOf(got))
	for _, f := range got {
		require.Equal(t, []int64{3}, f.Seqs)
		require.False(t, engine.IsOrderFree(f.Kind))
	}
}

// TestLateAfterFinal_OnlyAChangeOfOutcome: one "not paid" outcome after
// another is no change; paid after not paid, or a contradiction, is.
func TestLateAfterFinal_OnlyAChangeOfOutcome(t *testing.T) {
	t.Parallel()
	cases := []struct {
		from sm.State
		kind sm.Kind
		late bool
	}{
		{sm.Expired, sm.KindFailed, false},
		{sm.Failed, sm.KindExpired, false},
		{sm.Expired, sm.KindPaid, true},
		{sm.Paid, sm.KindFailed, true},
		{sm.Paid, sm.KindExpired, false},
		{sm.Paid, sm.KindRefunded, false},
		{sm.Failed, sm.KindFailedAfterSettlement, false},
	}
	for _, tc := range cases {
		totals := sm.Totals{Registered: 1000, Captured: 1000}
		out, err := sm.Apply(tc.from, &totals, tc.kind, 0)
		require.NoError(t, err)
		require.Equal(t, tc.late, out.LateAfterFinal, "%s after %s", tc.kind, tc.from)
	}
}

func TestSettledResolutions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ev := engine.Event{Provider: "yoco", Type: "payment.succeeded", Kind: sm.KindPaid}
	require.Empty(t, engine.SettledResolutions(ev, sm.Outcome{From: sm.Pending, To: sm.Processing}, nil, now))
	got := engine.SettledResolutions(ev, sm.Outcome{From: sm.Pending, To: sm.Paid},
		&engine.Redirect{Outcome: engine.RedirectSuccess, At: now.Add(-20 * time.Minute)}, now)
	require.Len(t, got, 2)
	require.Equal(t, engine.AnomalyMissingWebhook, got[0].Kind)
	require.Contains(t, got[0].Why, "20m0s after the redirect")
	require.Equal(t, engine.AnomalyStuck, got[1].Kind)
}

// TestUnchanged_NeverHidesAChange: whenever Unchanged says an event leaves
// the findings as they were, Assess over the facts with it finds the same
// kinds, shown by the same events, as without it.
func TestUnchanged_NeverHidesAChange(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	kinds := []sm.Kind{sm.KindCheckoutCreated, sm.KindPaymentProcessing, sm.KindPaymentAttemptFailed, sm.KindPaid, sm.KindFailed,
		sm.KindExpired, sm.KindRefunded, sm.KindFailedAfterSettlement, sm.KindInformational, sm.KindUnknown}
	idSets := [][]string{{"chk"}, {"pay"}, {"chk2"}, {"chk2", "pay"}, {"x", "chk2"}, {"chk", "pay"}, nil}
	draw := func(seq int64) engine.Fact {
		f := fact(seq, kinds[r.IntN(len(kinds))], idSets[r.IntN(len(idSets))]...)
		f.Amount = []int64{0, 1000, 990}[r.IntN(3)]
		f.Currency = []string{"USD", "USD", "EUR", ""}[r.IntN(4)]
		f.Mode = []string{engine.ModeLive, engine.ModeLive, engine.ModeTest, ""}[r.IntN(4)]
		return f
	}
	state := func(reg *engine.Registration, fs []engine.Fact) sm.State {
		var facts []sm.Fact
		for _, f := range fs {
			facts = append(facts, sm.Fact{Kind: f.Kind, Amount: f.Amount})
		}
		var registered int64
		if reg != nil {
			registered = reg.Amount
		}
		return sm.Decide(registered, facts)
	}
	shown := func(fs []engine.Finding) map[string][]int64 {
		out := map[string][]int64{}
		for _, f := range fs {
			out[f.Kind] = f.Seqs
		}
		return out
	}
	skipped := 0
	for range 20000 {
		var r0 *engine.Registration
		if r.IntN(4) > 0 {
			r0 = reg
		}
		var redirect *engine.Redirect
		if r.IntN(3) == 0 {
			redirect = &engine.Redirect{Outcome: []string{engine.RedirectSuccess, engine.RedirectCancel}[r.IntN(2)]}
		}
		var events []engine.Fact
		for i := range r.IntN(5) {
			events = append(events, draw(int64(i+1)))
		}
		ev := draw(int64(len(events) + 1))
		from, to := state(r0, events), state(r0, append(slices.Clone(events), ev))
		if !engine.Unchanged(r0, redirect, from, to, ev) {
			continue
		}
		skipped++
		before := engine.Assess(engine.Facts{State: from, Registration: r0, Redirect: redirect, Events: events})
		after := engine.Assess(engine.Facts{State: to, Registration: r0, Redirect: redirect, Events: append(slices.Clone(events), ev)})
		require.Equal(t, shown(before), shown(after), "%+v after %+v (registered %v, redirect %+v)", ev, events, r0 != nil, redirect)
	}
	require.Greater(t, skipped, 2000, "the fast path is taken often enough to matter")
}

func TestNameOrders(t *testing.T) {
	stored := map[string]int64{"chk_1": 1, "payin_1": 1, "payin_2": 2, "pay_3": 3}
	lookup := func(id string) (int64, bool) { ref, ok := stored[id]; return ref, ok }
	self := func(ref int64) int64 { return ref }

	n := engine.NameOrders([]string{"chk_1", "payin_1", "new_1"}, lookup, self)
	require.Equal(t, engine.Named[int64]{First: 1, Found: true, Missing: []string{"new_1"}}, n, "one order by two ids, one id new")

	n = engine.NameOrders([]string{"new_1", "payin_2", "chk_1", "pay_3", "payin_1"}, lookup, self)
	require.Equal(t, engine.Named[int64]{First: 2, Found: true, Others: []int64{1, 3}, Missing: []string{"new_1"}}, n,
		"the first known id names the order; the others merge into it, each once")

	n = engine.NameOrders([]string{"new_1", "new_2"}, lookup, self)
	require.Equal(t, engine.Named[int64]{Missing: []string{"new_1", "new_2"}}, n, "no order yet")
}
