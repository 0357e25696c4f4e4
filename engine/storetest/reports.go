package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// What the nightly report is built from, the reports kept, the
// reconciler's watermarks and the open-anomaly gauge.

// shop is a store with a clock, and the calls a day of traffic makes.
type shop struct {
	t   *testing.T
	ctx context.Context
	c   *Clock
	s   Store
}

func newShop(t *testing.T, open Opener) *shop {
	c := NewClock()
	return &shop{t: t, ctx: context.Background(), c: c, s: open(t, c.Now)}
}

func (h *shop) register(orderID, provider, checkout string, amount int64, currency string) *engine.Order {
	h.t.Helper()
	o, err := h.s.RegisterOrder(h.ctx, engine.Registration{OrderID: orderID, Provider: provider, CheckoutID: checkout,
		Amount: amount, Currency: currency, Mode: engine.ModeLive})
	require.NoError(h.t, err)
	return o
}

func (h *shop) redirect(orderID, outcome string) {
	h.t.Helper()
	_, err := h.s.ReportRedirect(h.ctx, orderID, outcome)
	require.NoError(h.t, err)
}

// webhook is an event of provider about checkout, its provider time lag
// before now.
func (h *shop) webhook(provider, id string, kind sm.Kind, checkout string, amount int64, lag time.Duration, mods ...func(*engine.Event)) engine.Event {
	e := event(id, kind, checkout, amount)
	e.Provider, e.OccurredAt = provider, h.c.Now().Add(-lag)
	for _, m := range mods {
		m(&e)
	}
	return e
}

func (h *shop) ingest(e engine.Event) engine.IngestResult {
	h.t.Helper()
	return ingest(h.t, h.s, e)
}

func (h *shop) reject(counts map[[2]string]int) {
	h.t.Helper()
	require.NoError(h.t, h.s.RecordRejections(h.ctx, h.c.Now(), counts))
}

func (h *shop) anomaly(orderID, kind string) engine.Anomaly {
	h.t.Helper()
	a, ok := byKind(order(h.t, h.s, orderID).Anomalies)[kind]
	require.True(h.t, ok, "%s has no %s anomaly", orderID, kind)
	return a
}

func currency(cur string) func(*engine.Event) { return func(e *engine.Event) { e.Currency = cur } }

// activity is a provider's traffic with empty maps and lags where a store
// may leave them nil.
func activity(a engine.ProviderActivity) engine.ProviderActivity {
	if a.UnknownTypes == nil {
		a.UnknownTypes = map[string]int{}
	}
	if a.Rejected == nil {
		a.Rejected = map[string]int{}
	}
	if a.Lags == nil {
		a.Lags = []time.Duration{}
	}
	return a
}

// testReportData plays a day with one of most things a report tells, and
// checks each number and list the report is built from.
func testReportData(t *testing.T, open Opener) {
	t.Parallel()
	h := newShop(t, open)
	day := func(d, hh, mm int) time.Time { return time.Date(2026, 3, d, hh, mm, 0, 0, time.UTC) }
	at := func(hh, mm int) { h.c.Set(day(1, hh, mm)) }
	since, until := day(1, 3, 0), day(2, 3, 0)

	at(2, 0) // before the period: a checkout nobody finishes
	old := h.register("old", "tazapay", "chk_old", 1200, "USD")
	at(2, 10)
	h.reject(map[[2]string]int{{"tazapay", "signature"}: 5}) // the hour that ends as the period starts
	at(2, 30)
	require.True(t, raise(t, h.s, old.Ref, engine.AnomalyStuck))
	at(3, 0) // as the period starts: in it
	h.register("early", "tokenz", "chk_early", 500, "USD")

	at(5, 10)
	h.reject(map[[2]string]int{{"tazapay", "signature"}: 3, {"yoco", "malformed"}: 1, {"nopay", "signature"}: 4})
	at(5, 50)
	h.reject(map[[2]string]int{{"yoco", "malformed"}: 1}) // adds to the hour's count

	at(8, 0) // the happy path, one webhook redelivered
	h.register("paid", "tazapay", "chk_paid", 4999, "USD")
	at(8, 1)
	h.ingest(h.webhook("tazapay", "paid_created", sm.KindCheckoutCreated, "chk_paid", 0, 800*time.Millisecond))
	at(8, 3)
	paid := h.webhook("tazapay", "paid_paid", sm.KindPaid, "chk_paid", 4999, 2500*time.Millisecond)
	h.ingest(paid)
	at(8, 4)
	require.Equal(t, sm.Duplicate, h.ingest(paid).Result)

	at(9, 0) // captured less than the order
	h.register("amount", "yoco", "chk_amount", 3000, "ZAR")
	at(9, 1)
	h.ingest(h.webhook("yoco", "amount_paid", sm.KindPaid, "chk_amount", 2900, time.Second, currency("ZAR")))

	at(10, 0) // a test-mode payment on a live order, looked at by a person
	h.register("mode", "tokenz", "chk_mode", 800, "USD")
	at(10, 1)
	h.ingest(h.webhook("tokenz", "mode_paid", sm.KindPaid, "chk_mode", 800, 45*time.Second,
		func(e *engine.Event) { e.Mode = engine.ModeTest }))
	at(11, 0)
	_, err := h.s.AckAnomaly(h.ctx, h.anomaly("mode", engine.AnomalyModeMismatch).ID, "QA used a test card")
	require.NoError(t, err)

	at(12, 0) // a redirect whose webhook was missing for a while
	missing := h.register("missing", "yoco", "chk_missing", 2500, "ZAR")
	at(12, 5)
	h.redirect("missing", engine.RedirectSuccess)
	at(12, 30)
	require.True(t, raise(t, h.s, missing.Ref, engine.AnomalyMissingWebhook))
	at(13, 0)
	require.True(t, resolve(t, h.s, missing.Ref, engine.AnomalyMissingWebhook))

	at(14, 0) // a checkout nobody registered, an undocumented type naming no order
	h.ingest(h.webhook("tazapay", "ghost_paid", sm.KindPaid, "chk_ghost", 700, 2*time.Second))
	at(15, 0)
	h.ingest(h.webhook("tazapay", "orphan", sm.KindUnknown, "", 0, time.Second, func(e *engine.Event) { e.Type = "payout.created" }))

	at(16, 0) // funds moved, order failed; a created event out of order
	h.register("fas", "tweed", "tw_fas", 7500, "USD")
	at(16, 1)
	h.ingest(h.webhook("tweed", "fas_done", sm.KindPaid, "tw_fas", 7500, 3*time.Second))
	at(16, 2)
	h.ingest(h.webhook("tweed", "fas_created", sm.KindCheckoutCreated, "tw_fas", 0, 2*time.Minute))
	at(16, 40)
	h.ingest(h.webhook("tweed", "fas_fas", sm.KindFailedAfterSettlement, "tw_fas", 0, 4*time.Second))

	at(17, 0) // accepted unsigned
	h.register("unsigned", "yoco", "chk_unsigned", 990, "ZAR")
	at(17, 2)
	h.ingest(h.webhook("yoco", "unsigned_paid", sm.KindPaid, "chk_unsigned", 990, 700*time.Millisecond, currency("ZAR"),
		func(e *engine.Event) { e.Unsigned = true }))

	h.c.Set(day(2, 2, 30))
	h.reject(map[[2]string]int{{"tazapay", "signature"}: 2}) // the hour that ends as the period does
	// As the period ends: after it.
	h.c.Set(until)
	h.ingest(h.webhook("tazapay", "ghost_late", sm.KindPaid, "chk_late", 700, time.Second))
	h.c.Set(day(2, 3, 10))
	h.reject(map[[2]string]int{{"tazapay", "signature"}: 7})

	d, err := h.s.ReportData(h.ctx, engine.ReportQuery{Since: since, Until: until})
	require.NoError(t, err)
	require.True(t, since.Equal(d.Since))
	require.True(t, until.Equal(d.Until))

	require.ElementsMatch(t, []engine.StateCount{
		{Provider: "tazapay", State: sm.Paid, Count: 2}, {Provider: "tokenz", State: sm.Paid, Count: 1},
		{Provider: "tokenz", State: sm.Pending, Count: 1},
		{Provider: "tweed", State: sm.NeedsReview, Count: 1}, {Provider: "yoco", State: sm.Paid, Count: 2},
		{Provider: "yoco", State: sm.Pending, Count: 1},
	}, d.Reached, "orders that reached their state in the period; old has been pending since before it")
	require.ElementsMatch(t, []engine.StateCount{
		{Provider: "tazapay", State: sm.Pending, Count: 1}, {Provider: "tokenz", State: sm.Pending, Count: 1},
		{Provider: "yoco", State: sm.Pending, Count: 1},
	}, d.InFlight, "in flight now, however long ago they started")

	var listed []string
	for _, oa := range d.Open {
		listed = append(listed, oa.Anomaly.Kind+" "+oa.Order.OrderID)
		require.Equal(t, engine.StatusOpen, oa.Anomaly.Status)
		require.Equal(t, engine.SeverityAction, oa.Anomaly.Severity)
		require.Equal(t, oa.Order.OrderID, oa.Anomaly.OrderID)
		var kinds []string
		for _, a := range oa.Order.Anomalies {
			kinds = append(kinds, a.Kind)
		}
		require.Equal(t, []string{oa.Anomaly.Kind}, kinds, "%s: its open action anomalies, not the info ones", oa.Order.OrderID)
	}
	require.Equal(t, []string{"stuck old", "failed_after_settlement fas", "amount_mismatch amount"}, listed,
		"open action anomalies, in the order of engine.AnomalyKinds")
	fas := d.Open[1].Order
	require.Equal(t, sm.NeedsReview, fas.State)
	require.Equal(t, "tw_fas", fas.CheckoutID)
	require.Len(t, fas.Events, 3, "with its timeline")
	require.Empty(t, d.Open[0].Order.Events)
	require.ElementsMatch(t, []engine.KindCount{
		{Kind: engine.AnomalyStuck, Provider: "tazapay", Count: 1, New: 0},
		{Kind: engine.AnomalyFailedAfterSettlement, Provider: "tweed", Count: 1, New: 1},
		{Kind: engine.AnomalyAmountMismatch, Provider: "yoco", Count: 1, New: 1},
	}, d.OpenCounts)
	require.Equal(t, 3, d.OpenOrders)
	require.ElementsMatch(t, []engine.KindCount{
		{Kind: engine.AnomalyDuplicate, Provider: "tazapay", Count: 1, New: 1},
		{Kind: engine.AnomalyOutOfOrder, Provider: "tweed", Count: 1, New: 1},
	}, d.Info)

	var closed []string
	for _, a := range d.Resolved {
		closed = append(closed, a.Kind+" "+a.Status+" "+a.OrderID)
	}
	require.Equal(t, []string{"mode_mismatch acknowledged mode", "missing_webhook resolved missing"}, closed, "in the order they were closed")
	require.Equal(t, "QA used a test card", d.Resolved[0].Note)
	require.Equal(t, "cleared", d.Resolved[1].Resolution)
	require.Equal(t, 2, d.ResolvedTotal)

	var got []engine.ProviderActivity
	for _, a := range d.Activity {
		got = append(got, activity(a))
	}
	none := map[string]int{}
	require.Equal(t, []engine.ProviderActivity{
		{Provider: "nopay", UnknownTypes: none, Rejected: map[string]int{"signature": 4}, Lags: []time.Duration{}},
		{Provider: "tazapay", Events: 5, Duplicates: 1, Unknown: 1, UnknownTypes: map[string]int{"payout.created": 1}, Unregistered: 1,
			Rejected: map[string]int{"signature": 5},
			Lags:     []time.Duration{800 * time.Millisecond, time.Second, 2 * time.Second, 2500 * time.Millisecond}},
		{Provider: "tokenz", Events: 1, UnknownTypes: none, Rejected: none, Lags: []time.Duration{45 * time.Second}},
		{Provider: "tweed", Events: 3, OutOfOrder: 1, UnknownTypes: none, Rejected: none,
			Lags: []time.Duration{3 * time.Second, 4 * time.Second, 2 * time.Minute}},
		{Provider: "yoco", Events: 2, Unsigned: 1, UnknownTypes: none, Rejected: map[string]int{"malformed": 2},
			Lags: []time.Duration{700 * time.Millisecond, time.Second}},
	}, got, "per provider, sorted; a redelivery is counted but has no lag; rejections by the hour they end in")

	_, err = h.s.ReportData(h.ctx, engine.ReportQuery{Since: until, Until: until})
	requireCode(t, engine.EINVALID, err, "an empty period")
	_, err = h.s.ReportData(h.ctx, engine.ReportQuery{Since: until, Until: since})
	requireCode(t, engine.EINVALID, err, "a period that ends before it starts")
}

// testReportDataBounds: a report lists the newest open anomalies of each
// kind up to a bound and counts the rest; an order listed shows all its
// open action anomalies, listed or not, and is one *Order however many of
// its anomalies are listed; the resolved list is bounded and counted too.
func testReportDataBounds(t *testing.T, open Opener) {
	t.Parallel()
	h := newShop(t, open)
	since := h.c.Now()
	refs := map[string]int64{}
	for _, id := range []string{"a", "b", "c"} {
		refs[id] = h.register(id, "tazapay", "chk_"+id, 100, "USD").Ref
	}
	for _, r := range []struct {
		order, kind string
	}{{"a", engine.AnomalyStuck}, {"b", engine.AnomalyStuck}, {"c", engine.AnomalyStuck},
		{"a", engine.AnomalyMissingWebhook}, {"c", engine.AnomalyMissingWebhook}} {
		h.c.Add(10 * time.Minute)
		require.True(t, raise(t, h.s, refs[r.order], r.kind))
	}
	h.c.Add(10 * time.Minute)
	until := h.c.Now().Add(time.Hour)
	listed := func(d *engine.ReportData) []string {
		var out []string
		for _, oa := range d.Open {
			out = append(out, oa.Anomaly.Kind+" "+oa.Order.OrderID)
		}
		return out
	}

	d, err := h.s.ReportData(h.ctx, engine.ReportQuery{Since: since, Until: until, MaxPerKind: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"missing_webhook c", "missing_webhook a", "stuck c", "stuck b"}, listed(d), "newest first within a kind")
	require.Same(t, d.Open[0].Order, d.Open[2].Order, "c is one order in the report")
	var aKinds []string
	for _, an := range d.Open[1].Order.Anomalies {
		aKinds = append(aKinds, an.Kind)
	}
	require.ElementsMatch(t, []string{engine.AnomalyMissingWebhook, engine.AnomalyStuck}, aKinds, "a's stuck is not listed but is its own")
	require.ElementsMatch(t, []engine.KindCount{
		{Kind: engine.AnomalyStuck, Provider: "tazapay", Count: 3, New: 3},
		{Kind: engine.AnomalyMissingWebhook, Provider: "tazapay", Count: 2, New: 2},
	}, d.OpenCounts, "every open anomaly is counted, listed or not")
	require.Equal(t, 3, d.OpenOrders)

	d, err = h.s.ReportData(h.ctx, engine.ReportQuery{Since: since, Until: until, MaxPerKind: 1})
	require.NoError(t, err)
	require.Equal(t, []string{"missing_webhook c", "stuck c"}, listed(d))

	require.True(t, resolve(t, h.s, refs["b"], engine.AnomalyStuck))
	h.c.Add(10 * time.Minute)
	require.True(t, resolve(t, h.s, refs["a"], engine.AnomalyMissingWebhook))
	d, err = h.s.ReportData(h.ctx, engine.ReportQuery{Since: since, Until: until, MaxResolved: 1})
	require.NoError(t, err)
	require.Len(t, d.Resolved, 1)
	require.Equal(t, engine.AnomalyStuck, d.Resolved[0].Kind, "the first closed")
	require.Equal(t, "b", d.Resolved[0].OrderID)
	require.Equal(t, 2, d.ResolvedTotal)
	require.Equal(t, 2, d.OpenOrders, "b has nothing open now; a still has its stuck")
}

func testStoredReports(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	empty, err := s.Reports(ctx, 10)
	require.NoError(t, err)
	require.Empty(t, empty)
	require.NotNil(t, empty, "the API lists no reports as [], not null")

	day := time.Date(2026, 3, 2, 3, 0, 0, 250e6, time.UTC)
	first := engine.StoredReport{CreatedAt: day, PeriodStart: day.Add(-24 * time.Hour), PeriodEnd: day,
		JSON: []byte(`{"summary":{"need_action":1}}`), Markdown: "# Report\n\n| a | b |\n", HTML: "<!DOCTYPE html><p>1</p>"}
	second := engine.StoredReport{CreatedAt: day.Add(24 * time.Hour), PeriodStart: day, PeriodEnd: day.Add(24 * time.Hour),
		JSON: []byte(`{"summary":{"need_action":2},"note":"é\u2028"}`), Markdown: strings.Repeat("| ord_é | stuck |\n", 5000),
		HTML: "<!DOCTYPE html>" + strings.Repeat("<tr><td>β</td></tr>", 5000)}
	id1, err := s.SaveReport(ctx, first)
	require.NoError(t, err)
	id2, err := s.SaveReport(ctx, second)
	require.NoError(t, err)
	require.Positive(t, id1)
	require.NotEqual(t, id1, id2)

	list, err := s.Reports(ctx, 10)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, []int64{id2, id1}, []int64{list[0].ID, list[1].ID}, "newest first")
	for i, want := range []engine.StoredReport{second, first} {
		got := list[i]
		require.True(t, want.CreatedAt.Equal(got.CreatedAt), "created at %s, listed %s", want.CreatedAt, got.CreatedAt)
		require.True(t, want.PeriodStart.Equal(got.PeriodStart))
		require.True(t, want.PeriodEnd.Equal(got.PeriodEnd))
		require.Empty(t, got.JSON, "listed without its bodies")
		require.Empty(t, got.Markdown)
		require.Empty(t, got.HTML)
	}
	one, err := s.Reports(ctx, 1)
	require.NoError(t, err)
	require.Len(t, one, 1)
	require.Equal(t, id2, one[0].ID)
	all, err := s.Reports(ctx, 0)
	require.NoError(t, err)
	require.Len(t, all, 2, "no limit takes the default")

	for id, want := range map[int64]engine.StoredReport{id1: first, id2: second} {
		got, err := s.Report(ctx, id)
		require.NoError(t, err)
		require.Equal(t, id, got.ID)
		require.Equal(t, string(want.JSON), string(got.JSON))
		require.Equal(t, want.Markdown, got.Markdown)
		require.Equal(t, want.HTML, got.HTML)
		require.True(t, want.CreatedAt.Equal(got.CreatedAt))
		require.True(t, want.PeriodStart.Equal(got.PeriodStart))
		require.True(t, want.PeriodEnd.Equal(got.PeriodEnd))
	}
	_, err = s.Report(ctx, id1+id2+100)
	requireCode(t, engine.ENOTFOUND, err, "a report that does not exist")
}

func testWatermarks(t *testing.T, open Opener) {
	t.Parallel()
	ctx, c := context.Background(), NewClock()
	s := open(t, c.Now)
	mark := func(name string) time.Time {
		t.Helper()
		at, err := s.Watermark(ctx, name)
		require.NoError(t, err)
		return at
	}
	require.True(t, mark("report").IsZero(), "zero until set")
	t1 := time.Date(2026, 3, 2, 3, 0, 0, 250e6, time.UTC)
	require.NoError(t, s.SetWatermark(ctx, "report", t1))
	require.True(t, t1.Equal(mark("report")), "kept to the millisecond: %s", mark("report"))
	require.True(t, mark("sweep").IsZero(), "each job has its own")
	t0 := t1.Add(-24 * time.Hour)
	require.NoError(t, s.SetWatermark(ctx, "report", t0))
	require.True(t, t0.Equal(mark("report")), "set back: what was set last")
	require.NoError(t, s.SetWatermark(ctx, "sweep", t1))
	require.True(t, t1.Equal(mark("sweep")))
	require.True(t, t0.Equal(mark("report")))
}

// testOpenAnomalyCounts: the gauge counts open anomalies of every kind,
// info ones included, and not the acknowledged or resolved.
func testOpenAnomalyCounts(t *testing.T, open Opener) {
	t.Parallel()
	h := newShop(t, open)
	counts := func() map[string]int {
		t.Helper()
		m, err := h.s.OpenAnomalyCounts(h.ctx)
		require.NoError(t, err)
		out := map[string]int{}
		for k, n := range m {
			if n != 0 {
				out[k] = n
			}
		}
		return out
	}
	require.Empty(t, counts())

	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		h.register(id, "tazapay", "chk_"+id, 100, "USD")
	}
	h.ingest(event("a_paid", sm.KindPaid, "chk_a", 150))
	h.ingest(event("b_paid", sm.KindPaid, "chk_b", 150))
	dup := event("c_paid", sm.KindPaid, "chk_c", 100)
	h.ingest(dup)
	h.ingest(dup)
	h.ingest(event("d_paid", sm.KindPaid, "chk_d", 100))
	h.ingest(event("d_fas", sm.KindFailedAfterSettlement, "chk_d", 0))
	mode := event("e_paid", sm.KindPaid, "chk_e", 100)
	mode.Mode = engine.ModeTest
	h.ingest(mode)
	_, err := h.s.AckAnomaly(h.ctx, h.anomaly("e", engine.AnomalyModeMismatch).ID, "")
	require.NoError(t, err)
	f := order(t, h.s, "f").Ref
	require.True(t, raise(t, h.s, f, engine.AnomalyStuck))
	require.True(t, raise(t, h.s, f, engine.AnomalyMissingWebhook))
	require.True(t, resolve(t, h.s, f, engine.AnomalyMissingWebhook))

	require.Equal(t, map[string]int{engine.AnomalyAmountMismatch: 2, engine.AnomalyDuplicate: 1,
		engine.AnomalyFailedAfterSettlement: 1, engine.AnomalyStuck: 1}, counts())
	_, err = h.s.AckAnomaly(h.ctx, h.anomaly("a", engine.AnomalyAmountMismatch).ID, "")
	require.NoError(t, err)
	require.True(t, resolve(t, h.s, f, engine.AnomalyStuck))
	require.Equal(t, map[string]int{engine.AnomalyAmountMismatch: 1, engine.AnomalyDuplicate: 1,
		engine.AnomalyFailedAfterSettlement: 1}, counts())
}
