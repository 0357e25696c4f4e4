package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/reconcile"
)

// config is the reconciler configuration the flags describe.
func (r *reconcileFlags) config() reconcile.Config {
	c := reconcile.Config{RedirectGrace: r.redirectGrace, StuckAfter: r.stuckAfter, SweepSchedule: r.sweepSchedule,
		ReportSchedule: r.reportSchedule, ReportsDir: r.reportsDir, RetainRaw: time.Duration(r.retainRaw)}
	r.report.apply(&c)
	return c
}

// runReconcile runs one sweep now. It is safe beside a running serve on the
// same file: the sweep commits in short write transactions (a chunk of at
// most about a thousand changes each), and each side waits its busy timeout
// for the other's lock.
func runReconcile(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reconcile", "reconcile [--db PATH] [--redirect-grace 15m] [--stuck-after 24h] [--retain-raw 90d] [--json]", stderr)
	var sf storeFlags
	var rf reconcileFlags
	sf.registerExisting(fs)
	rf.registerSweep(fs)
	asJSON := fs.Bool("json", false, "print what the sweep did as JSON")
	if err := parseNoArgs(fs, args, env); err != nil {
		return err
	}
	if err := rf.check(false); err != nil {
		return err
	}
	db, err := sf.openExisting(ctx, discardLogger(), time.Now)
	if err != nil {
		return err
	}
	defer db.Close()
	rec, err := reconcile.New(db, rf.sweepConfig(), time.Now, discardLogger())
	if err != nil {
		return err
	}
	res, err := rec.RunSweep(ctx)
	if err != nil {
		if res.Transactions > 0 {
			// The chunks that committed stay; say so, or the operator
			// would read the error as "nothing happened".
			return fmt.Errorf("%w (before it stopped, the sweep committed %d raised and %d resolved in %d transactions; run it again to go on)",
				err, res.Count(reconcile.Raised), res.Count(reconcile.Resolved), res.Transactions)
		}
		return err
	}
	if *asJSON {
		return printJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "swept at %s: %d raised, %d resolved, %d orders checked", res.At.Format(time.RFC3339),
		res.Count(reconcile.Raised), res.Count(reconcile.Resolved), res.Checked)
	if res.Transactions > 1 {
		fmt.Fprintf(stdout, ", in %d transactions", res.Transactions)
	}
	fmt.Fprintln(stdout)
	if p := res.RawPurged; p != nil {
		fmt.Fprintf(stdout, "purged %d raw requests (%d bytes) received before %s", p.Requests, p.Bytes, p.Before.Format(time.RFC3339))
		if p.More {
			fmt.Fprint(stdout, "; more remain, which the next sweep purges")
		}
		fmt.Fprintln(stdout)
	}
	for _, c := range res.Changes {
		id := c.OrderID
		if id == "" {
			id = "(not registered)"
		}
		fmt.Fprintf(stdout, "%-8s %-17s %s (%s %s): %s\n", c.Action, c.Kind, term(id), term(c.Provider), term(c.CheckoutID), term(c.Text))
	}
	return nil
}

// runReport prints the anomaly report for a period. It reads only: the
// scheduled report in serve is what stores reports and moves the watermark.
func runReport(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", "report [--db PATH] [--since 24h|RFC3339] [--until RFC3339] [--format json|md|html]", stderr)
	var sf storeFlags
	sf.registerExisting(fs)
	since := fs.String("since", "24h", "start of the period: a duration before --until, or an RFC 3339 time")
	until := fs.String("until", "", "end of the period, RFC 3339 (default now)")
	format := fs.String("format", reconcile.FormatMarkdown, "output format: json, md or html")
	var size reportFlags
	size.register(fs)
	if err := parseNoArgs(fs, args, env); err != nil {
		return err
	}
	if err := size.check(); err != nil {
		return err
	}
	end := time.Now().UTC()
	if *until != "" {
		t, err := time.Parse(time.RFC3339, *until)
		if err != nil {
			return fmt.Errorf("--until %q: want an RFC 3339 time such as 2026-03-02T03:00:00Z", *until)
		}
		end = t.UTC()
	}
	begin, err := periodStart(*since, end)
	if err != nil {
		return err
	}
	db, err := sf.openExisting(ctx, discardLogger(), time.Now)
	if err != nil {
		return err
	}
	defer db.Close()
	var cfg reconcile.Config
	size.apply(&cfg)
	rec, err := reconcile.New(db, cfg, time.Now, discardLogger())
	if err != nil {
		return err
	}
	rep, err := rec.BuildReport(ctx, begin, end)
	if err != nil {
		return err
	}
	out, err := rep.Render(*format)
	if err != nil {
		return errors.New(engine.ErrorMessage(err))
	}
	_, err = stdout.Write(out)
	return err
}

// periodStart reads --since: a duration back from end, or a time.
func periodStart(since string, end time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(since); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--since %q: the duration must be positive", since)
		}
		return end.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, since)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want a duration such as 24h or an RFC 3339 time", since)
	}
	if !t.Before(end) {
		return time.Time{}, fmt.Errorf("--since %s is not before --until %s", t.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	return t.UTC(), nil
}
