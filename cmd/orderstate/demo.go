package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/yoco"
	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	"github.com/orderstate/orderstate/internal/simulate"
	"github.com/orderstate/orderstate/reconcile"
	sm "github.com/orderstate/orderstate/statemachine"
)

// demoConfig is what one demo run plays.
type demoConfig struct {
	orders  int
	seed    uint64
	faults  simulate.Faults
	scale   string // the --faults text, for the headline
	dir     string
	workers int
	// progress is how often a progress line is printed; none when zero.
	progress time.Duration
}

// demoExit is the exit status of a demo whose self-check failed, apart from
// 1 for a demo that could not run.
const demoExit = 3

func runDemo(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "demo [--orders 3000] [--seed 1] [--faults 1] [--dir demo]", stderr)
	orders := fs.Int("orders", 3000, "how many orders the shop's day has")
	seed := fs.Uint64("seed", 1, "the day to play: the same seed plays the same orders, bodies and delivery sequences")
	faults := fs.String("faults", "1", "fault rates: a multiplier of the defaults (0 for none, 2 for twice as many), and/or "+
		"name=rate overrides, e.g. 1,drop=0.1,forged=0. Faults and default rates (the chance an order that can get one does): "+
		simulate.DemoFaults().String())
	dir := fs.String("dir", "demo", "folder for the demo's store and reports; an earlier demo's store and reports there are removed, "+
		"and the demo refuses to run over a store or reports folder it did not make")
	workers := fs.Int("workers", 24, "orders played at once")
	fs.Usage = demoUsage(fs, stderr)
	if err := parseNoArgs(fs, args, env); err != nil {
		return err
	}
	if *orders < 1 || *workers < 1 {
		return errors.New("--orders and --workers must be at least 1")
	}
	rates, err := simulate.ParseFaultsOver(simulate.DemoFaults(), *faults)
	if err != nil {
		return err
	}
	cfg := demoConfig{orders: *orders, seed: *seed, faults: rates, scale: *faults, dir: *dir, workers: *workers, progress: time.Second}
	res, err := playDemo(ctx, cfg, stdout, stderr)
	if err != nil {
		return err
	}
	if problems := res.failures(); len(problems) > 0 {
		return &exitError{code: demoExit, err: fmt.Errorf("self-check failed: %s", strings.Join(problems, "; "))}
	}
	return nil
}

func demoUsage(fs *flag.FlagSet, stderr io.Writer) func() {
	inner := fs.Usage
	return func() {
		fmt.Fprintln(stderr, "Plays a day of a shop's checkout traffic (Tazapay, Yoco, Tokenz, Tweed) with the faults real providers")
		fmt.Fprintln(stderr, "produce through a fresh orderstate on a SQLite file in --dir, runs the reconciler with the clock moved")
		fmt.Fprintln(stderr, "past the redirect grace and the stuck time-to-live, writes the report, and checks every anomaly")
		fmt.Fprintln(stderr, "orderstate raised against the ones the simulator injected. Fake Tazapay and Yoco APIs hold the payments")
		fmt.Fprintln(stderr, "whose webhooks never came (fault unsent); the demo polls them and expects those orders recovered by poll.")
		fmt.Fprintln(stderr, "Exit status 3: the self-check failed (an anomaly missed, a false alarm, an order in the wrong state,")
		fmt.Fprintln(stderr, "a request answered wrongly, or a payment the provider had and polling did not recover).")
		fmt.Fprintln(stderr)
		inner()
	}
}

// demoResult is what a demo run found.
type demoResult struct {
	orders   []*simulate.Order
	check    simulate.Result
	problems []simulate.Problem
	// held is every order orderstate holds; byID the registered ones.
	held []simulate.Held
	byID map[string]simulate.Held
	// byCheckout is every order by provider/checkout id.
	byCheckout map[string]simulate.Held
	// events and accepted count the webhook events stored and the genuine
	// webhooks sent: a forged request that was stored would show here.
	events, accepted int
	reports          []string
	// reportRejected is what the report counts as refused; -1 without a
	// report.
	reportRejected int
	// unsent counts the orders whose payment only the provider's API
	// had; recovered those polling recovered (a poll's event applied and
	// no missing_webhook left open), polled the events polls stored.
	unsent, recovered, polled int
	unrecovered               []string
}

// failures lists why the run fails its self-check; none when it passes.
func (r *demoResult) failures() []string {
	var out []string
	if n := len(r.check.Missed); n > 0 {
		out = append(out, fmt.Sprintf("%d expected anomalies missed (%s)", n, kindsOf(r.check.Missed)))
	}
	if n := len(r.check.FalseAlarms); n > 0 {
		out = append(out, fmt.Sprintf("%d false alarms (%s)", n, kindsOf(r.check.FalseAlarms)))
	}
	if n := len(r.check.WrongStates); n > 0 {
		out = append(out, fmt.Sprintf("%d orders in the wrong state", n))
	}
	if n := len(r.problems); n > 0 {
		out = append(out, fmt.Sprintf("%d requests answered with the wrong status", n))
	}
	if r.events != r.accepted+r.polled {
		out = append(out, fmt.Sprintf("%d events stored for %d genuine webhooks sent and %d polls that found a payment", r.events, r.accepted, r.polled))
	}
	if n := len(r.unrecovered); n > 0 {
		out = append(out, fmt.Sprintf("%d of %d payments only the provider had were not recovered by poll (%s)", n, r.unsent,
			strings.Join(r.unrecovered[:min(n, 5)], ", ")))
	}
	if forged := forgedCount(r.orders); r.reportRejected >= 0 && r.reportRejected != forged {
		out = append(out, fmt.Sprintf("the report counts %d refused webhooks for %d forged", r.reportRejected, forged))
	}
	return out
}

func kindsOf(fs []simulate.Finding) string {
	n := map[string]int{}
	for _, f := range fs {
		n[f.Kind]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, n[k]))
	}
	return strings.Join(parts, ", ")
}

// demoClock is orderstate's clock in the demo: real time from a base at the
// end of the simulated day, which the demo moves forward to let the grace
// periods pass. It runs at real speed while traffic plays because Tokenz
// and Yoco signatures are dated by it and checked against it within
// minutes.
type demoClock struct {
	base   time.Time
	start  time.Time
	offset atomic.Int64
}

func newDemoClock(base time.Time) *demoClock { return &demoClock{base: base, start: time.Now()} }

func (c *demoClock) Now() time.Time {
	return c.base.Add(time.Since(c.start) + time.Duration(c.offset.Load()))
}

func (c *demoClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// playDemo runs the demo: sidecar, traffic, sweep, report, self-check. It
// prints as it goes and returns what the self-check needs.
func playDemo(ctx context.Context, cfg demoConfig, stdout, stderr io.Writer) (*demoResult, error) {
	started := time.Now()
	dbPath := filepath.Join(cfg.dir, "orderstate.db")
	reportsDir := filepath.Join(cfg.dir, "reports")
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return nil, err
	}
	if err := removePreviousDemo(ctx, dbPath, reportsDir); err != nil {
		return nil, err
	}
	if err := markDemoReports(reportsDir); err != nil {
		return nil, err
	}

	gen := simulate.NewGenerator(simulate.Config{Seed: cfg.seed, Orders: cfg.orders, Faults: cfg.faults})
	day := gen.Config().Day
	clock := newDemoClock(day.Add(gen.Config().DayLength))
	secrets := simulate.NewSecrets()

	var f serveFlags
	fs := newFlagSet("serve", "serve", io.Discard)
	f.register(fs)
	// Schedules that cannot fire while the demo runs: the demo sweeps and
	// reports itself, once the clock has moved.
	if err := parse(fs, []string{"--addr", "127.0.0.1:0", "--db", dbPath, "--sweep-schedule", "@every 24h",
		"--report-schedule", "@every 24h", "--reports-dir", reportsDir}, func(string) string { return "" }); err != nil {
		return nil, err
	}
	f.providers = providerFlags{tokenz: secrets.Tokenz, yoco: secrets.Yoco, tazapay: secrets.Tazapay, tweed: secrets.Tweed}
	// Fake provider APIs: they hold the payments whose webhooks never
	// come (fault unsent), and answer every other checkout still open.
	// The demo polls them itself once the clock has moved, so the
	// background poll waits a day; the fakes are local, so no rate limit
	// to speak of.
	apiKey, apiSecret := "tz_demo_"+simulate.NewSecrets().Tazapay, "tz_demo_"+simulate.NewSecrets().Tazapay
	tzAPI, ycAPI := tazapay.NewFakeAPI(apiKey, apiSecret), yoco.NewFakeAPI(apiKey)
	defer tzAPI.Close()
	defer ycAPI.Close()
	tzAPI.OpenByDefault()
	ycAPI.OpenByDefault()
	f.poll.tazapayKey, f.poll.tazapaySecret, f.poll.tazapayURL = apiKey, apiSecret, tzAPI.URL()
	f.poll.yocoKey, f.poll.yocoURL = apiKey, ycAPI.URL()
	f.poll.interval, f.poll.rate = 24*time.Hour, 10000
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	side, err := startSidecar(ctx, &f, log, clock.Now)
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			_ = side.close(5 * time.Second)
		}
	}()
	if err := side.db.SetWatermark(ctx, demoMark, clock.Now()); err != nil {
		return nil, fmt.Errorf("marking %s as the demo's: %w", dbPath, err)
	}

	fmt.Fprintf(stdout, "orderstate demo: a shop's day of checkout traffic, end to end\n")
	fmt.Fprintf(stdout, "  %d orders on %s (seed %d) through Tazapay, Yoco, Tokenz and Tweed; faults %s\n",
		cfg.orders, day.Format("2006-01-02"), cfg.seed, faultsHeadline(cfg.scale))
	fmt.Fprintf(stdout, "  orderstate on %s, store %s, clock starting at %s\n\n", side.server.URL(), dbPath, clock.Now().Format(time.RFC3339))

	// Orders are generated on the workers that send them, so generation
	// overlaps with the traffic.
	orders := make([]*simulate.Order, cfg.orders)
	sender := &simulate.Sender{BaseURL: side.server.URL(), Secrets: secrets, Now: clock.Now, Workers: cfg.workers}
	playStart := time.Now()
	stopProgress := progress(stdout, cfg, sender, playStart)
	err = sender.Play(ctx, cfg.orders, func(i int) *simulate.Order {
		o := gen.Order(i)
		orders[i] = o
		return o
	})
	stopProgress()
	if err != nil {
		return nil, err
	}
	played := time.Since(playStart)
	p := sender.Progress()
	forged, accepted := 0, 0
	for _, o := range orders {
		for _, d := range o.Deliveries {
			if d.Action != simulate.Webhook {
				continue
			}
			if d.Forged {
				forged++
			} else {
				accepted++
			}
		}
	}
	fmt.Fprintf(stdout, "Played %d orders in %s: %d requests (%d webhooks, %d of them forged), %.0f requests/s.\n",
		p.Orders, played.Round(10*time.Millisecond), p.Requests, p.Webhooks, forged, float64(p.Requests)/played.Seconds())

	// The reconciler's turn: past the grace after the last redirect and
	// the time-to-live of the last order to change state.
	recCfg := f.recon.config()
	recCfg.BeforeReport = side.pipeline.Flush
	recCfg.PollStats = side.poll.Stats
	jump := max(f.recon.stuckAfter, f.recon.redirectGrace) + time.Minute
	clock.Advance(jump)
	rec, err := reconcile.New(side.db, recCfg, clock.Now, log)
	if err != nil {
		return nil, err
	}
	swept, err := rec.RunSweep(ctx)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	fmt.Fprintf(stdout, "Moved the clock %s on and swept: %d anomalies raised, %d resolved.\n",
		jump, swept.Count(reconcile.Raised), swept.Count(reconcile.Resolved))
	unsent := 0
	for _, o := range orders {
		if o.Polled == nil {
			continue
		}
		unsent++
		switch o.Provider {
		case simulate.Tazapay:
			tzAPI.SetCheckout(o.CheckoutID, tazapay.FakeCheckout{PaymentStatus: "paid", Status: "active", Amount: o.Polled.Amount,
				AmountPaid: o.Polled.Amount, Currency: o.Polled.Currency, Payin: o.Polled.Refs[0], Reference: o.Polled.Reference})
		case simulate.Yoco:
			ycAPI.SetCheckout(o.CheckoutID, yoco.FakeCheckout{Status: "completed", Amount: o.Polled.Amount, Currency: o.Polled.Currency,
				PaymentID: o.Polled.Refs[0], Mode: o.Polled.Mode})
		}
	}
	side.poll.Tick(ctx)
	fmt.Fprintf(stdout, "Asked Tazapay's and Yoco's APIs about the orders still waiting: %d calls; %d payments whose webhooks never came were found there.\n",
		tzAPI.Total()+ycAPI.Total(), unsent)
	written, err := rec.RunReport(ctx)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}

	res := &demoResult{orders: orders, problems: sender.Problems(), accepted: accepted, reportRejected: -1, unsent: unsent}
	if err := checkRecovered(ctx, side.db, orders, res); err != nil {
		return nil, err
	}
	if written != nil {
		res.reports = written.Paths
		res.reportRejected = 0
		for _, p := range written.Report.Providers {
			res.reportRejected += p.Rejected
		}
	}
	anomalies, err := side.db.Anomalies(ctx, engine.AnomalyFilter{Limit: 1 << 30})
	if err != nil {
		return nil, err
	}
	held, events, err := demoStore(ctx, dbPath)
	if err != nil {
		return nil, err
	}
	res.events, res.held, res.byID, res.byCheckout = events, held, map[string]simulate.Held{}, map[string]simulate.Held{}
	for _, h := range held {
		if h.OrderID != "" {
			res.byID[h.OrderID] = h
		}
		res.byCheckout[h.Provider+"/"+h.CheckoutID] = h
	}
	reported := make([]simulate.Reported, 0, len(anomalies))
	for _, a := range anomalies {
		// An anomaly names the shop's order id even for an order only a
		// webhook named; the check keys such an order by its checkout.
		id := a.OrderID
		if h, ok := res.byCheckout[a.Provider+"/"+a.CheckoutID]; !ok || h.OrderID == "" {
			id = ""
		}
		reported = append(reported, simulate.Reported{OrderID: id, Provider: a.Provider, CheckoutID: a.CheckoutID, Kind: a.Kind, Status: a.Status})
	}
	res.check = simulate.Check(orders, reported, held)
	closed = true
	if err := side.close(10 * time.Second); err != nil {
		return nil, err
	}

	printSummary(stdout, res.held, anomalies)
	printSelfCheck(stdout, res)
	printNext(stdout, res, dbPath, reportsDir)
	fmt.Fprintf(stdout, "\nThe demo took %s.\n", time.Since(started).Round(10*time.Millisecond))
	return res, nil
}

// checkRecovered checks that every order whose payment only the provider's
// API had was recovered by poll: a poll's event applied in its timeline and
// no missing_webhook left open. It counts the events polls stored.
func checkRecovered(ctx context.Context, db engine.Store, orders []*simulate.Order, res *demoResult) error {
	for _, o := range orders {
		if o.Polled == nil {
			continue
		}
		held, err := db.Order(ctx, o.ID)
		if err != nil {
			return err
		}
		applied, open := false, false
		for _, e := range held.Events {
			if e.Source == engine.SourcePoll {
				res.polled++
				applied = applied || e.Result == sm.Applied
			}
		}
		for _, a := range held.Anomalies {
			open = open || a.Kind == engine.AnomalyMissingWebhook && a.Status == engine.StatusOpen
		}
		if applied && !open {
			res.recovered++
		} else {
			res.unrecovered = append(res.unrecovered, o.ID)
		}
	}
	return nil
}

// demoMark names the watermark that marks a store as the demo's, and
// demoReportsMark the file that marks a reports folder as the demo's.
const (
	demoMark        = "demo"
	demoReportsMark = ".orderstate-demo"
)

// removePreviousDemo removes the store and reports an earlier demo left in
// their places, and refuses, removing nothing, when either is not marked as
// the demo's: orderstate.db and reports are serve's defaults, so a demo run
// in a shop's folder would otherwise delete the shop's store.
func removePreviousDemo(ctx context.Context, dbPath, reportsDir string) error {
	refuse := func(path string) error {
		return fmt.Errorf("%s was not made by the demo, which removes only what an earlier demo made "+
			"(it may be a shop's store or reports: serve uses the same names); choose another --dir, or move it away yourself", path)
	}
	var remove []string
	storeFiles := []string{dbPath, dbPath + "-wal", dbPath + "-shm", dbPath + "-journal"}
	if exists(dbPath) {
		if !isDemoStore(ctx, dbPath) {
			return refuse(dbPath)
		}
		remove = append(remove, storeFiles...)
	} else {
		// Without its database these belong to nobody we know of, and a
		// new store beside a stale -wal could read its frames.
		for _, p := range storeFiles[1:] {
			if exists(p) {
				return refuse(p)
			}
		}
	}
	if exists(reportsDir) {
		if !exists(filepath.Join(reportsDir, demoReportsMark)) {
			return refuse(reportsDir)
		}
		remove = append(remove, reportsDir)
	}
	for _, p := range remove {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("removing the previous demo: %w", err)
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// isDemoStore says whether path is a store an earlier demo marked. Anything
// that cannot be read as one (another file, another program's database) is
// not.
func isDemoStore(ctx context.Context, path string) bool {
	in, err := sqlite.Inspect(ctx, path)
	if err != nil {
		return false
	}
	defer in.Close()
	_, marked, err := in.Watermark(ctx, demoMark)
	return err == nil && marked
}

// markDemoReports creates the reports folder with the file that lets the
// next demo remove it.
func markDemoReports(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, demoReportsMark), []byte("Made by orderstate demo, which removes this folder when it runs here again.\n"), 0o644)
}

func faultsHeadline(scale string) string {
	switch strings.TrimSpace(scale) {
	case "", "1":
		return "at the default rates"
	case "0", "none", "off":
		return "off"
	}
	return "--faults " + scale
}

// progress prints a line every cfg.progress until the returned function is
// called.
func progress(w io.Writer, cfg demoConfig, s *simulate.Sender, start time.Time) func() {
	if cfg.progress <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(cfg.progress)
		defer t.Stop()
		last, lastAt := int64(0), start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				p := s.Progress()
				rate := float64(p.Requests-last) / now.Sub(lastAt).Seconds()
				last, lastAt = p.Requests, now
				fmt.Fprintf(w, "  %5.1fs  %5d/%d orders  %6d webhooks  %6d requests  %5.0f requests/s\n",
					now.Sub(start).Seconds(), p.Orders, cfg.orders, p.Webhooks, p.Requests, rate)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// demoStore reads every order's state and counts the stored webhook events,
// redeliveries included, through the store's inspector: the engine has no
// query for all orders, and the demo's store is small.
func demoStore(ctx context.Context, path string) ([]simulate.Held, int, error) {
	in, err := sqlite.Inspect(ctx, path)
	if err != nil {
		return nil, 0, err
	}
	defer in.Close()
	orders, err := in.Orders(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the demo's orders: %w", err)
	}
	held := make([]simulate.Held, len(orders))
	for i, o := range orders {
		held[i] = simulate.Held{OrderID: o.OrderID, Provider: o.Provider, CheckoutID: o.CheckoutID, State: o.State}
	}
	counts, err := in.Counts(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("counting the demo's events: %w", err)
	}
	return held, int(counts.Events + counts.Duplicates), nil
}

func printSummary(w io.Writer, held []simulate.Held, anomalies []engine.Anomaly) {
	states := map[sm.State]int{}
	registered := 0
	for _, h := range held {
		states[h.State]++
		if h.OrderID != "" {
			registered++
		}
	}
	fmt.Fprintf(w, "\nOrders by state (%d registered by the shop, %d made from webhooks nobody registered):\n", registered, len(held)-registered)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range sm.States {
		if states[s] > 0 {
			fmt.Fprintf(tw, "  %s\t%6d\n", s, states[s])
		}
	}
	tw.Flush()

	byKind := map[string][2]int{}
	for _, a := range anomalies {
		n := byKind[a.Kind]
		n[0]++
		if a.Status == engine.StatusOpen {
			n[1]++
		}
		byKind[a.Kind] = n
	}
	fmt.Fprintf(w, "\nAnomalies by kind (%d in all):\n", len(anomalies))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  kind\tseverity\traised\tstill open\n")
	for _, k := range engine.AnomalyKinds {
		if n := byKind[k]; n[0] > 0 {
			fmt.Fprintf(tw, "  %s\t%s\t%6d\t%6d\n", k, engine.Severity(k), n[0], n[1])
		}
	}
	tw.Flush()
}

func printSelfCheck(w io.Writer, res *demoResult) {
	faults := map[string]int{}
	for _, o := range res.orders {
		for _, f := range o.Faults {
			faults[f]++
		}
	}
	fmt.Fprintf(w, "\nFaults injected (orders): ")
	var parts []string
	for _, f := range simulate.FaultNames {
		if faults[f] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", f, faults[f]))
		}
	}
	if len(parts) == 0 {
		parts = []string{"none"}
	}
	fmt.Fprintln(w, strings.Join(parts, ", "))

	fmt.Fprintf(w, "\nSelf-check: the anomalies each order must have, from what was sent and in which order, against what orderstate raised:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  kind\texpected\tfound\tmissed\tfalse alarms\n")
	for _, k := range res.check.Kinds {
		fmt.Fprintf(tw, "  %s\t%6d\t%6d\t%6d\t%6d\n", k.Kind, k.Expected, k.Found, k.Missed, k.False)
	}
	tw.Flush()
	exp, found, falses := 0, 0, 0
	for _, k := range res.check.Kinds {
		exp, found, falses = exp+k.Expected, found+k.Found, falses+k.False
	}
	states := len(res.held) - len(res.check.WrongStates)
	fmt.Fprintf(w, "  recall %.1f%% (%d of %d found), %d false alarms, %d of %d orders in the expected state",
		100*res.check.Recall(), found, exp, falses, max(states, 0), len(res.held))
	forged, wrong := forgedCount(res.orders), 0
	for _, p := range res.problems {
		if p.Want == http.StatusUnauthorized {
			wrong++
		}
	}
	if wrong == 0 && res.events == res.accepted+res.polled {
		fmt.Fprintf(w, ", %d forged webhooks refused and none stored.\n", forged)
	} else {
		fmt.Fprintf(w, ", %d of %d forged webhooks accepted; %d events stored for %d genuine webhooks and %d polls.\n", wrong, forged, res.events, res.accepted, res.polled)
	}
	if fails := res.failures(); len(fails) > 0 {
		fmt.Fprintf(w, "\nSELF-CHECK FAILED: %s\n", strings.Join(fails, "; "))
		show := func(title string, fs []simulate.Finding) {
			if len(fs) == 0 {
				return
			}
			fmt.Fprintf(w, "  %s:\n", title)
			for i, f := range fs {
				if i == 10 {
					fmt.Fprintf(w, "    ... and %d more\n", len(fs)-10)
					break
				}
				fmt.Fprintf(w, "    %s\n", f)
			}
		}
		show("missed", res.check.Missed)
		show("false alarms", res.check.FalseAlarms)
		show("wrong states", res.check.WrongStates)
		for i, p := range res.problems {
			if i == 10 {
				fmt.Fprintf(w, "    ... and %d more\n", len(res.problems)-10)
				break
			}
			fmt.Fprintf(w, "    %s\n", p)
		}
	} else {
		fmt.Fprintf(w, "  Every injected fault was found and nothing else was flagged.\n")
	}
	if res.unsent > 0 {
		fmt.Fprintf(w, "  Recovered by poll: %d of %d payments whose webhooks never came (the provider had them; orderstate asked).\n",
			res.recovered, res.unsent)
	}
}

func forgedCount(orders []*simulate.Order) int {
	n := 0
	for _, o := range orders {
		for _, d := range o.Deliveries {
			if d.Forged {
				n++
			}
		}
	}
	return n
}

// printNext says where the reports are and how to look at one order,
// suggesting orders whose story is worth reading.
func printNext(w io.Writer, res *demoResult, dbPath, reportsDir string) {
	fmt.Fprintf(w, "\nReports (JSON, Markdown, HTML):\n")
	if len(res.reports) == 0 {
		fmt.Fprintf(w, "  none written to %s\n", reportsDir)
	}
	for _, p := range res.reports {
		fmt.Fprintf(w, "  %s\n", p)
	}
	examples := pickExamples(res.orders)
	fmt.Fprintf(w, "\nOne order, its anomalies and its event timeline:\n")
	for _, o := range examples {
		fmt.Fprintf(w, "  ./bin/orderstate order --db %s %s   # %s %s: %s\n", dbPath, o.ID, o.Provider, o.Flow, describeOrder(o))
	}
	if len(examples) > 0 {
		fmt.Fprintf(w, "The demo's server stopped with the demo; to ask over HTTP, serve the demo's store and:\n")
		fmt.Fprintf(w, "  ./bin/orderstate serve --db %s --addr 127.0.0.1:8080 &\n", dbPath)
		// serve reads the environment the demo ignores: with a token set
		// there, a curl without it gets 401.
		fmt.Fprintf(w, "  curl -s http://127.0.0.1:8080/v1/orders/%s   # with ORDERSTATE_TOKEN set: -H \"Authorization: Bearer $ORDERSTATE_TOKEN\"\n", examples[0].ID)
	}
}

func describeOrder(o *simulate.Order) string {
	s := string(o.Want.State)
	if len(o.Want.Anomalies) > 0 {
		s += ", " + strings.Join(o.Want.Anomalies, " + ")
	}
	if len(o.Faults) > 0 {
		s += " (injected: " + strings.Join(o.Faults, ", ") + ")"
	}
	return s
}

// pickExamples chooses orders that show what orderstate is for: a
// contradiction, a missing webhook, a late payment.
func pickExamples(orders []*simulate.Order) []*simulate.Order {
	var out []*simulate.Order
	for _, want := range []string{simulate.FaultFailedAfterDone, simulate.FaultMissing, simulate.FaultPaidAfterExpiry} {
		for _, o := range orders {
			if o.HasFault(want) && len(o.Faults) <= 2 {
				out = append(out, o)
				break
			}
		}
	}
	return out
}
