package reconcile_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/reconcile"
	sm "github.com/orderstate/orderstate/statemachine"
)

var update = flag.Bool("update", false, "rewrite the golden reports in testdata/golden")

var (
	periodStart = time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	periodEnd   = time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)
)

// day plays a day of a shop's traffic with one of most things an operator
// must hear about, and returns the report for it.
func day(t *testing.T) (*env, *reconcile.Report) {
	t.Helper()
	e := setup(t, reconcile.Config{})
	c := e.clock
	clock := func(h, m int) { c.Set(time.Date(2026, 3, 1, h, m, 0, 0, time.UTC)) }
	late := func(d time.Duration) func(*engine.Event) {
		return func(ev *engine.Event) { ev.OccurredAt = c.Now().Add(-d) }
	}
	typ := func(s string) func(*engine.Event) { return func(ev *engine.Event) { ev.Type = s } }

	clock(2, 0) // before the period: a checkout nobody finishes
	e.register("ord_stuck", "tazapay", "chk_stuck", 1200, "USD")
	e.ingest(e.ev("tazapay", "chk_stuck", sm.KindCheckoutCreated, 0, late(1500*time.Millisecond), typ("checkout.created")))
	require.NoError(t, e.db.RecordRejections(e.ctx, c.Now(), map[[2]string]int{{"tokenz", "signature"}: 5}))

	clock(5, 10)
	require.NoError(t, e.db.RecordRejections(e.ctx, c.Now(), map[[2]string]int{{"tazapay", "signature"}: 3, {"yoco", "malformed"}: 1}))

	clock(8, 0) // the happy path
	e.register("ord_paid", "tazapay", "chk_paid", 4999, "USD")
	clock(8, 1)
	e.ingest(e.ev("tazapay", "chk_paid", sm.KindCheckoutCreated, 0, late(800*time.Millisecond), typ("checkout.created")))
	clock(8, 2)
	e.ingest(e.ev("tazapay", "chk_paid", sm.KindPaymentProcessing, 0, late(1200*time.Millisecond), typ("payment_attempt.processing")))
	clock(8, 3)
	e.redirect("ord_paid", engine.RedirectSuccess)
	e.ingest(e.ev("tazapay", "chk_paid", sm.KindPaid, 4999, late(2500*time.Millisecond), typ("checkout.paid")))

	clock(9, 0) // paid at the redirect, never confirmed
	e.register("ord_missing", "yoco", "chk_missing", 2500, "ZAR")
	clock(9, 5)
	e.redirect("ord_missing", engine.RedirectSuccess)

	clock(10, 0) // confirmed late
	e.register("ord_late", "tokenz", "chk_late", 1000, "USD")
	clock(10, 2)
	e.redirect("ord_late", engine.RedirectSuccess)
	clock(10, 30)
	e.sweep()
	clock(11, 9)
	e.ingest(e.ev("tokenz", "chk_late", sm.KindPaid, 1000, late(45*time.Second), typ("order.succeeded")))

	clock(12, 0) // funds moved, order failed
	e.register("ord_fas", "tweed", "tw_fas", 7500, "USD")
	clock(12, 1)
	e.ingest(e.ev("tweed", "tw_fas", sm.KindPaid, 7500, late(3*time.Second), typ("DONE")))
	clock(12, 40)
	e.ingest(e.ev("tweed", "tw_fas", sm.KindFailedAfterSettlement, 0, late(4*time.Second), typ("FAILED_AFTER_TX_COMPLETED")))

	clock(12, 50) // paid, then failed: two anomalies on one order
	e.register("ord_twice", "tweed", "tw_twice", 4200, "USD")
	clock(12, 51)
	e.ingest(e.ev("tweed", "tw_twice", sm.KindPaid, 4200, late(2*time.Second), typ("DONE")))
	clock(12, 58)
	e.ingest(e.ev("tweed", "tw_twice", sm.KindFailed, 0, late(2*time.Second), typ("FAILED")))

	clock(13, 0) // captured less than the order
	e.register("ord_amount", "tazapay", "chk_amount", 3000, "USD")
	clock(13, 1)
	e.ingest(e.ev("tazapay", "chk_amount", sm.KindPaid, 2900, late(time.Second), typ("checkout.paid")))

	clock(14, 0) // redelivered and out of order: absorbed
	e.register("ord_dup", "yoco", "chk_dup", 1500, "ZAR")
	clock(14, 1)
	paidTwice := e.ev("yoco", "chk_dup", sm.KindPaid, 1500, late(600*time.Millisecond), typ("payment.succeeded"), withCurrency("ZAR"))
	e.ingest(paidTwice)
	clock(14, 3)
	e.ingest(paidTwice)
	clock(14, 5)
	e.ingest(e.ev("yoco", "chk_dup", sm.KindCheckoutCreated, 0, at(time.Date(2026, 3, 1, 13, 59, 0, 0, time.UTC)), typ("checkout.created"), withCurrency("ZAR")))

	clock(15, 0) // a checkout nobody registered, an undocumented type
	e.ingest(e.ev("tazapay", "chk_ghost", sm.KindPaid, 700, late(2*time.Second), typ("checkout.paid")))
	clock(15, 30)
	e.ingest(e.ev("tazapay", "", sm.KindUnknown, 0, late(time.Second), typ("payout.created")))

	clock(16, 0) // a test-mode event on a live order, looked at by a person
	e.register("ord_mode", "tokenz", "chk_mode", 800, "USD")
	clock(16, 1)
	e.ingest(e.ev("tokenz", "chk_mode", sm.KindPaid, 800, late(time.Second), typ("order.succeeded"), withMode(engine.ModeTest)))
	clock(17, 0)
	mode := e.anomalies("ord_mode")[engine.AnomalyModeMismatch]
	_, err := e.db.AckAnomaly(e.ctx, mode.ID, "QA used the live checkout with a test card")
	require.NoError(t, err)

	clock(18, 0) // accepted unsigned, as the operator allows for yoco
	e.register("ord_unsigned", "yoco", "chk_unsigned", 990, "ZAR")
	clock(18, 2)
	e.ingest(e.ev("yoco", "chk_unsigned", sm.KindPaid, 990, late(700*time.Millisecond), typ("payment.succeeded"), withCurrency("ZAR"),
		func(ev *engine.Event) { ev.Unsigned = true }))

	c.Set(time.Date(2026, 3, 2, 2, 30, 0, 0, time.UTC))
	e.sweep() // ord_stuck has been pending 24h30m
	c.Set(periodEnd)

	rep, err := e.rec.BuildReport(e.ctx, periodStart, periodEnd)
	require.NoError(t, err)
	return e, rep
}

func TestReport_Golden(t *testing.T) {
	t.Parallel()
	_, rep := day(t)
	for _, f := range []string{reconcile.FormatJSON, reconcile.FormatMarkdown} {
		got, err := rep.Render(f)
		require.NoError(t, err)
		path := filepath.Join("..", "testdata", "golden", "report."+f)
		if *update {
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
			require.NoError(t, os.WriteFile(path, got, 0o644))
			continue
		}
		want, err := os.ReadFile(path)
		require.NoError(t, err, "run go test ./reconcile -run TestReport_Golden -update to create it")
		require.Equal(t, string(want), string(got), "%s differs from %s; if the change is intended, rerun with -update", f, path)
	}
}

func TestReport_Content(t *testing.T) {
	t.Parallel()
	_, rep := day(t)
	open := map[string][]string{}
	for _, f := range rep.Open {
		open[f.OrderID] = append(open[f.OrderID], f.Kind)
		require.NotEmpty(t, f.Action, f.Kind)
		require.NotEmpty(t, f.Explanation, f.Kind)
	}
	require.Equal(t, map[string][]string{
		"ord_fas": {engine.AnomalyFailedAfterSettlement}, "ord_twice": {engine.AnomalyConflict, engine.AnomalyLateAfterFinal},
		"ord_missing": {engine.AnomalyMissingWebhook}, "ord_amount": {engine.AnomalyAmountMismatch}, "ord_stuck": {engine.AnomalyStuck},
	}, open)
	require.Equal(t, engine.AnomalyFailedAfterSettlement, rep.Open[0].Kind, "money that moved wrongly comes first")

	// Each order once, most urgent first, with every kind it has.
	var triage []string
	for _, o := range rep.ActionOrders {
		var kinds []string
		for _, a := range o.Anomalies {
			kinds = append(kinds, a.Kind)
		}
		triage = append(triage, o.OrderID+" "+strings.Join(kinds, ","))
		require.Equal(t, o.Kind, o.Anomalies[0].Kind)
		require.NotEmpty(t, o.Action)
	}
	require.Equal(t, []string{"ord_fas failed_after_settlement", "ord_twice conflict,late_after_final", "ord_missing missing_webhook",
		"ord_amount amount_mismatch", "ord_stuck stuck"}, triage)
	require.Equal(t, 5, rep.Summary.OrdersNeedAction)
	require.Equal(t, 6, rep.Summary.NeedAction)

	resolved := map[string]string{}
	for _, r := range rep.Resolved {
		resolved[r.OrderID] = r.Status + " " + r.Kind
	}
	require.Equal(t, map[string]string{"ord_late": "resolved missing_webhook", "ord_mode": "acknowledged mode_mismatch"}, resolved)

	absorbed := map[string]int{}
	for _, k := range rep.Absorbed {
		absorbed[k.Kind] = k.Count
	}
	require.Equal(t, map[string]int{engine.AnomalyDuplicate: 1, engine.AnomalyOutOfOrder: 1}, absorbed)

	by := map[string]reconcile.ProviderHealth{}
	for _, p := range rep.Providers {
		by[p.Provider] = p
	}
	require.Equal(t, 3, by["tazapay"].Rejected, "the 02:00 rejections are before the period")
	require.Equal(t, 1, by["tazapay"].Unknown)
	require.Equal(t, 1, by["tazapay"].Unregistered)
	require.Equal(t, 1, by["yoco"].Duplicates)
	require.Equal(t, 1, by["yoco"].Unsigned)
	require.Equal(t, int64(45000), by["tokenz"].Lag.MaxMs)
	pending := 0
	for _, o := range rep.Orders {
		pending += o.InFlight[sm.Pending]
	}
	require.Equal(t, 2, pending, "ord_stuck and ord_missing")
	require.Equal(t, 2, rep.Summary.InFlight)
}

func TestReport_HTMLIsSelfContainedAndEscaped(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	e.register("o<1>", "tazapay", "c", 100, "USD")
	e.ingest(e.ev("tazapay", "c", sm.KindPaid, 150, func(ev *engine.Event) { ev.Type = `<script>alert("x")</script>` }))
	e.clock.Add(time.Hour)
	rep, err := e.rec.BuildReport(e.ctx, start, e.clock.Now())
	require.NoError(t, err)
	html, err := rep.Render(reconcile.FormatHTML)
	require.NoError(t, err)
	s := string(html)
	require.True(t, strings.HasPrefix(s, "<!DOCTYPE html>"))
	require.NotContains(t, s, "<script>")
	require.Contains(t, s, "&lt;script&gt;")
	require.Contains(t, s, "o&lt;1&gt;")
	require.NotContains(t, s, "src=")
	require.NotContains(t, s, "<link")
	require.Regexp(t, `<code>POST /v1/anomalies/\d+/ack</code> for #\d+`, s, "the reader is told how to close what was handled")

	md, err := rep.Render(reconcile.FormatMarkdown)
	require.NoError(t, err)
	require.NotContains(t, string(md), "<script>", "Markdown renderers pass raw HTML through")

	_, err = rep.Render("pdf")
	require.Equal(t, engine.EINVALID, engine.ErrorCode(err))
}

func TestRunReport_StoresWritesAndMovesTheWatermark(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	dir := t.TempDir()
	rec, err := reconcile.New(e.db, reconcile.Config{ReportsDir: dir}, e.clock.Now, quiet())
	require.NoError(t, err)
	e.register("o", "tazapay", "c", 100, "USD")
	e.clock.Set(time.Date(2026, 3, 2, 3, 0, 0, 250e6, time.UTC))

	w, err := rec.RunReport(e.ctx)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 3, 1, 3, 0, 0, 250e6, time.UTC), w.Report.PeriodStart, "the first report covers the configured period")
	require.Equal(t, []string{
		filepath.Join(dir, "report-2026-03-02T0300Z.json"), filepath.Join(dir, "report-2026-03-02T0300Z.md"),
		filepath.Join(dir, "report-2026-03-02T0300Z.html"),
	}, w.Paths)
	stored, err := e.db.Report(e.ctx, w.ID)
	require.NoError(t, err)
	file, err := os.ReadFile(w.Paths[1])
	require.NoError(t, err)
	require.Equal(t, stored.Markdown, string(file))

	again, err := rec.RunReport(e.ctx)
	require.NoError(t, err)
	require.Nil(t, again, "nothing new to cover within the same second")
}

// The nightly report and a sweep often fire together: what the sweep
// found a moment before the report is new in that report.
func TestRunReport_CountsWhatASweepJustFound(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	rec, err := reconcile.New(e.db, reconcile.Config{}, e.clock.Now, quiet())
	require.NoError(t, err)
	e.register("o", "tazapay", "c", 100, "USD")
	e.clock.Add(25*time.Hour + 600*time.Millisecond)
	require.Equal(t, []string{"o/stuck"}, changes(e.sweep(), reconcile.Raised))
	e.clock.Add(300 * time.Millisecond)

	w, err := rec.RunReport(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, w.Report.Summary.NeedAction)
	require.Equal(t, 1, w.Report.Summary.NewInPeriod, "the stuck order the sweep just raised is new in this report")
}

// The server keeps the counts of refused requests in memory and writes
// them once a minute; the report has it write them first, or the last
// minute's would be left out.
func TestRunReport_WritesPendingRejectionsFirst(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	e.clock.Set(time.Date(2026, 3, 2, 3, 0, 0, 250e6, time.UTC))
	// Refused at 02:59:20, in the hour this report closes.
	rec, err := reconcile.New(e.db, reconcile.Config{BeforeReport: func(ctx context.Context) error {
		return e.db.RecordRejections(ctx, e.clock.Now().Add(-40*time.Second), map[[2]string]int{{"tazapay", "signature"}: 3})
	}}, e.clock.Now, quiet())
	require.NoError(t, err)
	w, err := rec.RunReport(e.ctx)
	require.NoError(t, err)
	rejected := map[string]int{}
	for _, p := range w.Report.Providers {
		rejected[p.Provider] = p.Rejected
	}
	require.Equal(t, 3, rejected["tazapay"])
}

// Checkouts nobody finishes stay stuck for days; listed oldest first they
// would fill the list and hide what went wrong today.
func TestReport_ListsTheNewestFirst(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{MaxPerKind: 2})
	for i, id := range []string{"ord_old", "ord_older", "ord_new"} {
		e.clock.Set(start.Add(time.Duration([]int{1, 0, 30}[i]) * time.Hour))
		e.register(id, "tazapay", "chk_"+id, 100, "USD")
	}
	for _, h := range []int{25, 26, 55} {
		e.clock.Set(start.Add(time.Duration(h) * time.Hour))
		e.sweep()
	}
	e.clock.Add(time.Minute)
	rep, err := e.rec.BuildReport(e.ctx, start.Add(48*time.Hour), e.clock.Now())
	require.NoError(t, err)
	var listed []string
	for _, f := range rep.Open {
		listed = append(listed, f.OrderID)
	}
	require.Equal(t, []string{"ord_new", "ord_old"}, listed)
	require.True(t, rep.Open[0].NewInPeriod)
	require.False(t, rep.Open[1].NewInPeriod)
	md, err := rep.Render(reconcile.FormatMarkdown)
	require.NoError(t, err)
	require.Contains(t, string(md), "Not listed: 1 more order, each older or less urgent than the last row.")
}

// The triage table and the details are bounded, and say what they leave
// out and where to find it.
func TestReport_BoundsTheOrdersShown(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{MaxOrdersListed: 3, MaxOrdersDetailed: 1})
	for i := range 5 {
		e.register(fmt.Sprintf("ord_%d", i), "tazapay", fmt.Sprintf("chk_%d", i), 100, "USD")
		e.clock.Add(time.Minute)
	}
	e.clock.Add(25 * time.Hour)
	e.sweep()
	e.clock.Add(time.Minute)
	rep, err := e.rec.BuildReport(e.ctx, start, e.clock.Now())
	require.NoError(t, err)
	require.Len(t, rep.ActionOrders, 3)
	require.Equal(t, 5, rep.Summary.OrdersNeedAction)
	for _, f := range []string{reconcile.FormatMarkdown, reconcile.FormatHTML} {
		out, err := rep.Render(f)
		require.NoError(t, err)
		s := string(out)
		require.Contains(t, s, "Not listed: 2 more orders", f)
		require.Contains(t, s, "Not detailed here: 4 more orders", f)
		require.Contains(t, s, "The first 1 order of the table", f)
		require.Equal(t, 1, strings.Count(s, "Order ord_"), "%s: one order detailed", f)
		for i := range 5 {
			require.Equal(t, i < 3, strings.Contains(s, fmt.Sprintf("chk_%d", 4-i)), "%s: chk_%d listed, newest first", f, 4-i)
		}
	}
}

// An order is placed by its most urgent anomaly and shows every kind it
// has, also one whose kind has more open than a report lists.
func TestReport_GroupsEachOrdersAnomalies(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{MaxPerKind: 1})
	e.register("ord_both", "yoco", "chk_both", 2500, "ZAR")
	e.redirect("ord_both", engine.RedirectSuccess)
	e.clock.Add(time.Hour)
	e.register("ord_stuck", "yoco", "chk_stuck", 900, "ZAR")
	e.sweep() // ord_both: missing_webhook
	e.clock.Add(24*time.Hour + time.Minute)
	e.sweep() // ord_both: stuck
	e.clock.Add(time.Hour)
	e.sweep() // ord_stuck: stuck, newer, so the only stuck one listed
	e.clock.Add(time.Minute)
	rep, err := e.rec.BuildReport(e.ctx, start, e.clock.Now())
	require.NoError(t, err)
	require.Len(t, rep.ActionOrders, 1, "no more orders than anomalies of a kind are listed")
	both := rep.ActionOrders[0]
	require.Equal(t, "ord_both", both.OrderID)
	require.Equal(t, engine.AnomalyMissingWebhook, both.Kind)
	require.Len(t, both.Anomalies, 2)
	require.Equal(t, engine.AnomalyStuck, both.Anomalies[1].Kind, "its stuck anomaly is not among the listed ones but is its own")
	md, err := rep.Render(reconcile.FormatMarkdown)
	require.NoError(t, err)
	require.Regexp(t, `\| ord_both \| yoco \| chk_both \| ZAR 25.00 \| pending \| missing_webhook #\d+, stuck #\d+ \|`, string(md))
	require.Equal(t, 1, strings.Count(string(md), "#### Order ord_both"), "the order is detailed once")
}

// Refused requests are counted per hour. The hour a report runs in is still
// being counted into, so it belongs to the next report, whole: nothing
// refused after a report is lost between two.
func TestRunReport_CountsEveryRefusedRequestOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	p := engine.NewPipeline(e.db, e.clock.Now)
	rec, err := reconcile.New(e.db, reconcile.Config{BeforeReport: p.Flush}, e.clock.Now, quiet())
	require.NoError(t, err)
	rejected := func(w *reconcile.Written) int {
		n := 0
		for _, pr := range w.Report.Providers {
			n += pr.Rejected
		}
		return n
	}
	refuse := func(n int) {
		for range n {
			p.Reject("tazapay", "signature")
		}
	}

	e.clock.Set(time.Date(2026, 3, 2, 2, 59, 30, 0, time.UTC))
	refuse(3)
	e.clock.Set(time.Date(2026, 3, 2, 3, 0, 0, 250e6, time.UTC))
	first, err := rec.RunReport(e.ctx)
	require.NoError(t, err)
	refuse(2) // written by the same flush, in the hour that has just begun
	e.clock.Set(time.Date(2026, 3, 2, 3, 20, 0, 0, time.UTC))
	refuse(5)
	require.NoError(t, p.Flush(e.ctx))
	e.clock.Set(time.Date(2026, 3, 3, 3, 0, 0, 250e6, time.UTC))
	second, err := rec.RunReport(e.ctx)
	require.NoError(t, err)

	require.Equal(t, 3, rejected(first))
	require.Equal(t, 7, rejected(second), "the hour the first report ran in is counted whole by the next")
}

// TestReport_NamesUnregisteredOrdersByTheirReference: an order the shop
// never registered is listed by the shop id its webhooks named, marked as
// not registered; with no id named, it stays "(not registered)".
func TestReport_NamesUnregisteredOrdersByTheirReference(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	start := e.clock.Now()
	ref := func(r string) func(*engine.Event) { return func(ev *engine.Event) { ev.Reference = r } }
	e.ingest(e.ev("tweed", "tw_1", sm.KindPaid, 1080, ref("SO-9")))
	e.ingest(e.ev("tweed", "tw_1", sm.KindFailedAfterSettlement, 1080, ref("SO-9")))
	e.ingest(e.ev("tweed", "tw_2", sm.KindPaid, 500))
	e.ingest(e.ev("tweed", "tw_2", sm.KindFailedAfterSettlement, 500))
	e.clock.Add(time.Minute)
	rep, err := e.rec.BuildReport(e.ctx, start, e.clock.Now())
	require.NoError(t, err)
	require.Len(t, rep.ActionOrders, 2)
	md, err := rep.Render(reconcile.FormatMarkdown)
	require.NoError(t, err)
	require.Contains(t, string(md), "| SO-9 (not registered) | tweed | tw_1 |")
	require.Contains(t, string(md), "| (not registered) | tweed | tw_2 |")
	html, err := rep.Render(reconcile.FormatHTML)
	require.NoError(t, err)
	require.Contains(t, string(html), "<td>SO-9 (not registered)</td>")
}

// TestReport_HostileTextIsInert: text from webhooks (event ids, types,
// checkout ids, the shop reference) and from people (acknowledgement
// notes) reaches terminals and Markdown viewers through the report. No
// control character may reach either in any format, and no link may be
// made of it in the Markdown.
func TestReport_HostileTextIsInert(t *testing.T) {
	t.Parallel()
	const (
		esc  = "\x1b[2J\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\u009b31m\x7f\u202e"
		link = " [pay](javascript:alert(1)) <javascript:alert(2)> https://evil.example www.evil.example ![i](http://t/p.png)"
	)
	e := setup(t, reconcile.Config{})
	from := e.clock.Now()
	hostile := func(ev *engine.Event) {
		ev.EventID = "evt" + esc + link + ev.EventID
		ev.Type = "type" + esc + link
		ev.Reference = "SO" + esc + link
	}
	checkout := "chk" + esc + link
	e.ingest(e.ev("tweed", checkout, sm.KindPaid, 1080, hostile))
	e.ingest(e.ev("tweed", checkout, sm.KindFailedAfterSettlement, 1080, hostile))
	e.ingest(e.ev("tazapay", "", sm.KindUnknown, 0, hostile))
	e.register("ord_note", "tazapay", "chk_note", 100, "USD")
	e.ingest(e.ev("tazapay", "chk_note", sm.KindPaid, 90))
	mismatch := e.anomalies("ord_note")[engine.AnomalyAmountMismatch]
	_, err := e.db.AckAnomaly(e.ctx, mismatch.ID, "note"+esc+link)
	require.NoError(t, err)
	e.clock.Add(time.Minute)
	rep, err := e.rec.BuildReport(e.ctx, from, e.clock.Now())
	require.NoError(t, err)
	require.Len(t, rep.ActionOrders, 1, "the hostile order is listed, and detailed with its timeline")
	require.Len(t, rep.Resolved, 1, "the note is shown")

	for _, format := range reconcile.Formats {
		out, err := rep.Render(format)
		require.NoError(t, err)
		s := string(out)
		for _, c := range []string{"\x1b", "\x07", "\x7f", "\u202e"} {
			require.NotContains(t, s, c, "%s report", format)
		}
		for r := rune(0x80); r <= 0x9f; r++ {
			require.NotContains(t, s, string(r), "%s report", format)
		}
		require.Contains(t, s, "click", "%s report: the text is shown, not dropped", format)
	}

	md, err := rep.Render(reconcile.FormatMarkdown)
	require.NoError(t, err)
	s := string(md)
	for i := range len(s) {
		if s[i] == '[' || s[i] == ']' {
			slashes := 0
			for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
				slashes++
			}
			require.Equal(t, 1, slashes%2, "a bracket that can open a link: %q", s[max(0, i-30):min(len(s), i+30)])
		}
	}
	require.NotRegexp(t, `<(?i:javascript|https?):`, s, "an autolink or raw HTML")
	require.NotRegexp(t, `[^\\]://`, s, "a bare URL GitHub would link")
	require.NotRegexp(t, `(?i)www\.`, s, "a bare www. address GitHub would link")
	require.Contains(t, s, `\[pay\](javascript:alert(1))`, "shown as written")
	require.Contains(t, s, `type\\x1b\[2J\\x1b\]8;;http\://evil.example\\x07click`, "the escape shown for what it was")

	html, err := rep.Render(reconcile.FormatHTML)
	require.NoError(t, err)
	require.NotContains(t, string(html), "<a ")
	require.NotContains(t, string(html), "href")
	require.Contains(t, string(html), "&lt;javascript:alert(2)&gt;")

	// The JSON loses nothing: the same text comes back from it.
	js, err := rep.Render(reconcile.FormatJSON)
	require.NoError(t, err)
	var back struct {
		Open []struct {
			CheckoutID string `json:"checkout_id"`
			Timeline   []struct {
				Type string `json:"type"`
			} `json:"timeline"`
		} `json:"open"`
	}
	require.NoError(t, json.Unmarshal(js, &back))
	require.Len(t, back.Open, 1)
	require.Equal(t, checkout, back.Open[0].CheckoutID)
	require.NotEmpty(t, back.Open[0].Timeline)
	require.Equal(t, "type"+esc+link, back.Open[0].Timeline[0].Type)
}
