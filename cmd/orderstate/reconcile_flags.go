package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/reconcile"
)

// reconcileFlags configure the reconciler (serve, reconcile, report, demo).
type reconcileFlags struct {
	redirectGrace  time.Duration
	stuckAfter     time.Duration
	sweepSchedule  string
	reportSchedule string
	reportsDir     string
	retainRaw      retention
	report         reportFlags
}

func (r *reconcileFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&r.redirectGrace, "redirect-grace", 15*time.Minute, "how long after the customer's redirect a confirming webhook may take before it is missing")
	fs.DurationVar(&r.stuckAfter, "stuck-after", 24*time.Hour, "how long an order may stay pending or processing before it is stuck")
	fs.StringVar(&r.sweepSchedule, "sweep-schedule", "@every 5m", "when the sweep runs: a cron spec (UTC) or @every <duration>")
	fs.StringVar(&r.reportSchedule, "report-schedule", "0 3 * * *", "when the anomaly report is written: a cron spec (UTC) or @every <duration>")
	fs.StringVar(&r.reportsDir, "reports-dir", "reports", "directory the reports are written to (JSON, Markdown and HTML)")
	fs.Var(&r.retainRaw, "retain-raw", "how long raw webhook requests (bodies and headers) are kept, such as 90d; the sweep purges older ones, the event facts and timelines stay (empty: kept until purged on request)")
	r.report.register(fs)
}

// serveOnly are the reconciler settings only serve's scheduler uses.
var serveOnly = []string{"sweep-schedule", "report-schedule", "reports-dir"}

// reportOnly are the settings only a report uses: serve's and the report
// command's.
var reportOnly = []string{"report-max-per-kind", "report-max-orders", "report-max-detailed"}

// registerSweep registers the flags for a sweep run now. The schedules and
// the reports directory are accepted, so that one configuration (and one
// environment) serves both serve and reconcile, but the help says they do
// nothing here, and sweepConfig leaves them out.
func (r *reconcileFlags) registerSweep(fs *flag.FlagSet) {
	r.register(fs)
	for _, name := range serveOnly {
		f := fs.Lookup(name)
		f.Usage += "; used by serve only (accepted here so that serve and reconcile can share one configuration)"
	}
	for _, name := range reportOnly {
		f := fs.Lookup(name)
		f.Usage += "; used by serve and report only (accepted here so that they and reconcile can share one configuration)"
	}
}

// sweepConfig is config without the settings a sweep run now does not use,
// so that a value only serve would refuse does not fail the sweep.
func (r *reconcileFlags) sweepConfig() reconcile.Config {
	c := r.config()
	c.SweepSchedule, c.ReportSchedule, c.ReportsDir = "", "", ""
	c.MaxPerKind, c.MaxOrdersListed, c.MaxOrdersDetailed = 0, 0, 0
	return c
}

// retention is --retain-raw: a number of days ("90d") or a Go duration
// ("720h"); empty or 0 keeps raw requests until purged on request.
type retention time.Duration

func (r *retention) String() string {
	if *r == 0 {
		return ""
	}
	return reconcile.FormatRetention(time.Duration(*r))
}

func (r *retention) Set(v string) error {
	v = strings.TrimSpace(v)
	if v == "" || v == "0" {
		*r = 0
		return nil
	}
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 1 {
			return fmt.Errorf("want a number of days such as 90d")
		}
		*r = retention(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a number of days such as 90d, or a duration such as 720h")
	}
	*r = retention(d)
	return nil
}

// want says what the flag takes, for a variable that does not parse.
func (r *retention) want() string {
	return "want a number of days such as 90d, or a duration such as 720h"
}

// reportFlags size a report for the person who reads it: past a few
// hundred rows a report is no longer read, and what it leaves out is
// counted, and listed in full by GET /v1/anomalies.
type reportFlags struct {
	maxPerKind, maxOrders, maxDetailed int
}

func (r *reportFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&r.maxPerKind, "report-max-per-kind", reconcile.DefaultMaxPerKind, "open anomalies of each kind a report lists with their evidence, newest first; the rest are counted")
	fs.IntVar(&r.maxOrders, "report-max-orders", reconcile.DefaultMaxOrdersListed, "orders a report lists to act on, most urgent first, in its triage table (never more than --report-max-per-kind); the rest are counted")
	fs.IntVar(&r.maxDetailed, "report-max-detailed", reconcile.DefaultMaxOrdersDetailed, "orders of the triage table (--report-max-orders) the Markdown and HTML explain one by one, with their timelines")
}

// check refuses a size below one, which the reconciler would otherwise
// replace with its default.
func (r *reportFlags) check() error {
	for _, f := range []struct {
		name string
		v    int
		def  int
	}{{"report-max-per-kind", r.maxPerKind, reconcile.DefaultMaxPerKind}, {"report-max-orders", r.maxOrders, reconcile.DefaultMaxOrdersListed},
		{"report-max-detailed", r.maxDetailed, reconcile.DefaultMaxOrdersDetailed}} {
		if f.v < 1 {
			return fmt.Errorf("--%s (%s) %d: want %s of at least 1, such as %d", f.name, envName(f.name), f.v, numberKinds[f.name], f.def)
		}
	}
	return nil
}

func (r *reportFlags) apply(c *reconcile.Config) {
	c.MaxPerKind, c.MaxOrdersListed, c.MaxOrdersDetailed = r.maxPerKind, r.maxOrders, r.maxDetailed
}

// check refuses the reconciler settings it cannot use, naming the flag and
// its variable: a zero duration would otherwise become the default without
// a word. Schedules are checked only where they run (serve).
func (r *reconcileFlags) check(schedules bool) error {
	for _, d := range []struct {
		name    string
		v       time.Duration
		example string
	}{{"redirect-grace", r.redirectGrace, "15m"}, {"stuck-after", r.stuckAfter, "24h"}} {
		if err := positive(d.name, d.v, d.example); err != nil {
			return err
		}
	}
	if !schedules {
		return nil
	}
	for _, sc := range []struct{ name, v string }{{"sweep-schedule", r.sweepSchedule}, {"report-schedule", r.reportSchedule}} {
		if err := reconcile.CheckSchedule(sc.v); err != nil {
			return engine.Errorf(engine.EINVALID, "--%s (%s) %q: %v; want a cron spec in UTC such as \"0 3 * * *\", or an interval such as \"@every 5m\"",
				sc.name, envName(sc.name), sc.v, err)
		}
	}
	return nil
}
