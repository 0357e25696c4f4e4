package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// How the API finds orders and anomalies.

// testAnomalyFilter: each field of AnomalyFilter selects what it says, the
// fields combine, and the list is newest first in pages of Limit that go
// on from Before.
func testAnomalyFilter(t *testing.T, open Opener) {
	t.Parallel()
	h := newShop(t, open)
	t0 := h.c.Now()
	hour := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }

	h.register("a", "tazapay", "chk_a", 100, "USD")
	h.ingest(event("a_paid", sm.KindPaid, "chk_a", 150)) // amount_mismatch: open, action, paid

	h.c.Set(hour(1))
	h.register("b", "yoco", "chk_b", 100, "USD")
	h.ingest(h.webhook("yoco", "b_paid", sm.KindPaid, "chk_b", 100, 0, func(e *engine.Event) { e.Mode = engine.ModeTest }))
	_, err := h.s.AckAnomaly(h.ctx, h.anomaly("b", engine.AnomalyModeMismatch).ID, "QA") // acknowledged
	require.NoError(t, err)

	h.c.Set(hour(2))
	h.register("c", "tazapay", "chk_c", 100, "USD")
	dup := event("c_paid", sm.KindPaid, "chk_c", 100)
	h.ingest(dup)
	h.ingest(dup) // duplicate: open, info

	h.c.Set(hour(3))
	d := h.register("d", "tweed", "tw_d", 100, "USD")
	h.ingest(h.webhook("tweed", "d_done", sm.KindPaid, "tw_d", 100, 0))
	h.ingest(h.webhook("tweed", "d_failed", sm.KindFailed, "tw_d", 0, 0)) // late_after_final and conflict; needs_review

	h.c.Set(hour(4))
	e := h.register("e", "tazapay", "chk_e", 100, "USD")
	require.True(t, raise(t, h.s, e.Ref, engine.AnomalyStuck)) // pending
	h.c.Set(hour(5))
	require.True(t, resolve(t, h.s, e.Ref, engine.AnomalyStuck)) // resolved

	list := func(f engine.AnomalyFilter) []engine.Anomaly {
		t.Helper()
		as, err := h.s.Anomalies(h.ctx, f)
		require.NoError(t, err)
		return as
	}
	names := func(as []engine.Anomaly) []string {
		out := []string{}
		for _, a := range as {
			out = append(out, a.OrderID+" "+a.Kind)
		}
		return out
	}
	all := list(engine.AnomalyFilter{})
	require.ElementsMatch(t, []string{"a amount_mismatch", "b mode_mismatch", "c duplicate", "d late_after_final", "d conflict", "e stuck"}, names(all))
	for i := 1; i < len(all); i++ {
		require.Greater(t, all[i-1].ID, all[i].ID, "newest first")
	}
	for _, a := range all {
		o := order(t, h.s, a.OrderID)
		require.Equal(t, o.Provider, a.Provider, a.OrderID)
		require.Equal(t, o.CheckoutID, a.CheckoutID, a.OrderID)
		require.Equal(t, o.State, a.State, a.OrderID)
		require.Equal(t, engine.Severity(a.Kind), a.Severity, a.Kind)
	}
	// The list's order is what each filtered list keeps.
	want := func(keep ...string) []string {
		out := []string{}
		for _, n := range names(all) {
			for _, k := range keep {
				if n == k {
					out = append(out, n)
				}
			}
		}
		return out
	}

	for name, tc := range map[string]struct {
		f    engine.AnomalyFilter
		want []string
	}{
		"Kind":         {engine.AnomalyFilter{Kind: engine.AnomalyAmountMismatch}, want("a amount_mismatch")},
		"Provider":     {engine.AnomalyFilter{Provider: "tazapay"}, want("a amount_mismatch", "c duplicate", "e stuck")},
		"Open":         {engine.AnomalyFilter{Status: engine.StatusOpen}, want("a amount_mismatch", "c duplicate", "d late_after_final", "d conflict")},
		"Acknowledged": {engine.AnomalyFilter{Status: engine.StatusAcknowledged}, want("b mode_mismatch")},
		"Resolved":     {engine.AnomalyFilter{Status: engine.StatusResolved}, want("e stuck")},
		"Info":         {engine.AnomalyFilter{Severity: engine.SeverityInfo}, want("c duplicate")},
		"Action":       {engine.AnomalyFilter{Severity: engine.SeverityAction}, want("a amount_mismatch", "b mode_mismatch", "d late_after_final", "d conflict", "e stuck")},
		"StateNow":     {engine.AnomalyFilter{State: sm.NeedsReview}, want("d late_after_final", "d conflict")},
		"StatePending": {engine.AnomalyFilter{State: sm.Pending}, want("e stuck")},
		"Order":        {engine.AnomalyFilter{OrderRef: d.Ref}, want("d late_after_final", "d conflict")},
		"Since":        {engine.AnomalyFilter{Since: hour(2)}, want("c duplicate", "d late_after_final", "d conflict", "e stuck")},
		"Until":        {engine.AnomalyFilter{Until: hour(2)}, want("a amount_mismatch", "b mode_mismatch")},
		"SinceUntil":   {engine.AnomalyFilter{Since: hour(1), Until: hour(3)}, want("b mode_mismatch", "c duplicate")},
		"Combined": {engine.AnomalyFilter{Provider: "tazapay", Status: engine.StatusOpen, Severity: engine.SeverityAction},
			want("a amount_mismatch")},
		"NoMatch": {engine.AnomalyFilter{Kind: engine.AnomalyCheckoutMismatch}, want()},
	} {
		got := list(tc.f)
		require.Equal(t, tc.want, names(got), name)
		require.NotNil(t, got, "%s: the API lists none as [], not null", name)
	}

	for _, limit := range []int{1, 2, 4} {
		var paged []int64
		f := engine.AnomalyFilter{Limit: limit}
		for range len(all) + 1 {
			got := list(f)
			require.LessOrEqual(t, len(got), limit)
			if len(got) == 0 {
				break
			}
			for _, a := range got {
				paged = append(paged, a.ID)
			}
			f.Before = got[len(got)-1].ID
		}
		var ids []int64
		for _, a := range all {
			ids = append(ids, a.ID)
		}
		require.Equal(t, ids, paged, "pages of %d neither skip nor repeat", limit)
	}
	page := list(engine.AnomalyFilter{Provider: "tazapay", Before: all[0].ID + 1, Limit: 2})
	require.Equal(t, want("a amount_mismatch", "c duplicate", "e stuck")[:2], names(page), "paging keeps the other fields")
}

// testOrderByCheckoutFindsEveryAlias: an order is found by any provider id
// it was registered with or a webhook named it by, and only under its own
// provider.
func testOrderByCheckoutFindsEveryAlias(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	find := func(provider, id string) *engine.Order {
		t.Helper()
		o, err := s.OrderByCheckout(ctx, provider, id)
		require.NoError(t, err, "%s %s", provider, id)
		return o
	}
	_, err := s.RegisterOrder(ctx, engine.Registration{OrderID: "o1", Provider: "tazapay", CheckoutID: "chk_1", Amount: 100,
		Currency: "USD", OtherIDs: []string{"pay_1"}})
	require.NoError(t, err)
	att := event("att", sm.KindPaymentProcessing, "pay_1", 0)
	att.Refs = []string{"pat_1"}
	ingest(t, s, att)
	for _, id := range []string{"chk_1", "pay_1", "pat_1"} {
		o := find("tazapay", id)
		require.Equal(t, "o1", o.OrderID, id)
		require.Equal(t, "chk_1", o.CheckoutID, "%s: the order's checkout is the registered one", id)
		require.Equal(t, sm.Processing, o.State, id)
	}

	// An order nobody registered is found by each id its webhooks named.
	paid := event("paid_2", sm.KindPaid, "chk_2", 100)
	paid.Refs = []string{"pay_2"}
	ingest(t, s, paid)
	byCheckout, byPayin := find("tazapay", "chk_2"), find("tazapay", "pay_2")
	require.Equal(t, byCheckout.Ref, byPayin.Ref)
	require.False(t, byPayin.Registered)
	require.Empty(t, byPayin.OrderID)

	// Ids are per provider: the same id at another provider is another
	// order, or none.
	_, err = s.RegisterOrder(ctx, engine.Registration{OrderID: "o3", Provider: "yoco", CheckoutID: "chk_1", Amount: 100, Currency: "ZAR"})
	require.NoError(t, err)
	require.Equal(t, "o3", find("yoco", "chk_1").OrderID)
	require.Equal(t, "o1", find("tazapay", "chk_1").OrderID)
	_, err = s.OrderByCheckout(ctx, "yoco", "pay_1")
	requireCode(t, engine.ENOTFOUND, err, "tazapay's payin id at yoco")
}
