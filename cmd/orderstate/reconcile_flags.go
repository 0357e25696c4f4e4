package main

import (
	"flag"
	"time"

	"github.com/orderstate/orderstate/reconcile"
)

// reconcileFlags configure the reconciler (serve, reconcile, report, demo).
type reconcileFlags struct {
	redirectGrace  time.Duration
	stuckAfter     time.Duration
	sweepSchedule  string
	reportSchedule string
	reportsDir     string
}

func (r *reconcileFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&r.redirectGrace, "redirect-grace", 15*time.Minute, "how long after the customer's redirect a confirming webhook may take before it is missing")
	fs.DurationVar(&r.stuckAfter, "stuck-after", 24*time.Hour, "how long an order may stay pending or processing before it is stuck")
	fs.StringVar(&r.sweepSchedule, "sweep-schedule", "@every 5m", "when the sweep runs: a cron spec (UTC) or @every <duration>")
	fs.StringVar(&r.reportSchedule, "report-schedule", "0 3 * * *", "when the anomaly report is written: a cron spec (UTC) or @every <duration>")
	fs.StringVar(&r.reportsDir, "reports-dir", "reports", "directory the reports are written to (JSON, Markdown and HTML)")
}

// serveOnly are the reconciler settings only serve's scheduler uses.
var serveOnly = []string{"sweep-schedule", "report-schedule", "reports-dir"}

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
}

// sweepConfig is config without the settings a sweep run now does not use,
// so that a value only serve would refuse does not fail the sweep.
func (r *reconcileFlags) sweepConfig() reconcile.Config {
	c := r.config()
	c.SweepSchedule, c.ReportSchedule, c.ReportsDir = "", "", ""
	return c
}
