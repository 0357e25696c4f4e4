package main

import (
	"flag"
	"time"
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
