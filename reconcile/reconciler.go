package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/orderstate/orderstate/engine"
)

// Store is what the reconciler needs from storage; *sqlite.DB is one.
type Store interface {
	// Sweep runs fn in one write transaction.
	Sweep(ctx context.Context, fn func(engine.SweepTx) error) error
	// ReportData returns EINVALID for an empty period.
	ReportData(ctx context.Context, q engine.ReportQuery) (*engine.ReportData, error)
	SaveReport(ctx context.Context, r engine.StoredReport) (int64, error)
	Watermark(ctx context.Context, name string) (time.Time, error)
	SetWatermark(ctx context.Context, name string, at time.Time) error
}

// Defaults, as DESIGN lists them.
const (
	DefaultRedirectGrace  = 15 * time.Minute
	DefaultStuckAfter     = 24 * time.Hour
	DefaultSweepSchedule  = "@every 5m"
	DefaultReportSchedule = "0 3 * * *"
	DefaultReportPeriod   = 24 * time.Hour
	DefaultMaxPerKind     = 200
	// The Markdown and HTML of a day with a thousand orders to act on stay
	// under about 100 KB with these, which mail clients show unclipped.
	DefaultMaxOrdersListed   = 200
	DefaultMaxOrdersDetailed = 15
	// A raise or resolution costs the writer about 50 µs, so a chunk holds
	// webhooks back for about a twentieth of a second.
	DefaultSweepChunk = 1000
)

// Config holds the reconciler's thresholds and schedules; zero fields take
// the defaults.
type Config struct {
	// RedirectGrace is how long after the customer's successful redirect a
	// confirming webhook may take before it is missing.
	RedirectGrace time.Duration
	// StuckAfter is how long an order may stay pending or processing.
	StuckAfter time.Duration
	// PendingTTL and ProcessingTTL override StuckAfter for one state: a
	// checkout nobody paid may linger longer than a payment in flight.
	PendingTTL    time.Duration
	ProcessingTTL time.Duration
	// SweepSchedule and ReportSchedule are five-field cron specs, in UTC,
	// or descriptors such as "@every 10s" and "@daily".
	SweepSchedule  string
	ReportSchedule string
	// ReportsDir receives each scheduled report as JSON, Markdown and HTML;
	// empty keeps reports in the store only.
	ReportsDir string
	// ReportPeriod is what the first report covers when no earlier report
	// marks where it should start.
	ReportPeriod time.Duration
	// MaxPerKind bounds how many open anomalies of each kind a report lists
	// with their evidence, newest first; the older rest are counted. A
	// report a person reads is no use at ten thousand entries, and the API
	// lists them all.
	MaxPerKind int
	// MaxOrdersListed bounds the orders to act on a report lists, one row
	// each in the triage table, and never more than MaxPerKind: past that
	// the newest of each kind no longer cover the most urgent orders.
	// MaxOrdersDetailed bounds how many of them the Markdown and HTML
	// detail, with their anomalies explained and their timeline (fewer
	// when their timelines are long). The rest are counted.
	MaxOrdersListed   int
	MaxOrdersDetailed int
	// SweepChunk bounds how many anomalies one sweep transaction raises or
	// resolves; a sweep with more to do goes on in another transaction.
	SweepChunk int
	// RetainRaw, when above zero, is how long raw requests (the bodies
	// and headers of webhooks, which hold what customers typed) are kept:
	// each sweep purges those received longer ago, SweepChunk to a
	// transaction. The event facts and the timelines stay. The store must
	// be an engine.RawStore.
	RetainRaw time.Duration
	// OnRun, when set, hears of every scheduled run as it ends: the job
	// ("sweep" or "report"), how long it took, and its error (a recovered
	// panic included). The server counts runs and failures with it.
	OnRun func(job string, took time.Duration, err error)
	// BeforeReport, when set, runs before each scheduled report is built:
	// the server writes the counts of refused requests it keeps in memory,
	// so the report's rejections are complete. Its error is logged and the
	// report goes ahead.
	BeforeReport func(ctx context.Context) error
	// PollStats, when set, says what polling did, for the report: the
	// providers it asks and cannot ask, and its calls by result.
	PollStats func() engine.PollStats
}

func (c Config) withDefaults() Config {
	if c.RedirectGrace == 0 {
		c.RedirectGrace = DefaultRedirectGrace
	}
	if c.StuckAfter == 0 {
		c.StuckAfter = DefaultStuckAfter
	}
	if c.PendingTTL == 0 {
		c.PendingTTL = c.StuckAfter
	}
	if c.ProcessingTTL == 0 {
		c.ProcessingTTL = c.StuckAfter
	}
	if c.SweepSchedule == "" {
		c.SweepSchedule = DefaultSweepSchedule
	}
	if c.ReportSchedule == "" {
		c.ReportSchedule = DefaultReportSchedule
	}
	if c.ReportPeriod == 0 {
		c.ReportPeriod = DefaultReportPeriod
	}
	if c.MaxPerKind == 0 {
		c.MaxPerKind = DefaultMaxPerKind
	}
	if c.MaxOrdersListed == 0 {
		c.MaxOrdersListed = DefaultMaxOrdersListed
	}
	if c.MaxOrdersDetailed == 0 {
		c.MaxOrdersDetailed = DefaultMaxOrdersDetailed
	}
	if c.SweepChunk <= 0 {
		c.SweepChunk = DefaultSweepChunk
	}
	return c
}

// parser reads five-field specs (minute first, as crontab and DESIGN write
// them) and descriptors, so "0 3 * * *" and "@every 10s" both work.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func (c Config) validate() error {
	// In a fixed order: the time-to-lives default to stuck after, so one
	// bad value can fail several checks, and the first names the setting
	// the user gave.
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"redirect grace", c.RedirectGrace}, {"stuck after", c.StuckAfter}, {"pending time-to-live", c.PendingTTL},
		{"processing time-to-live", c.ProcessingTTL}, {"report period", c.ReportPeriod}} {
		if d.d < 0 {
			return engine.Errorf(engine.EINVALID, "%s must not be negative; got %s", d.name, d.d)
		}
	}
	if c.MaxPerKind < 0 {
		return engine.Errorf(engine.EINVALID, "the number of anomalies listed per kind must not be negative; got %d", c.MaxPerKind)
	}
	if c.MaxOrdersListed < 0 || c.MaxOrdersDetailed < 0 {
		return engine.Errorf(engine.EINVALID, "the number of orders listed or detailed must not be negative; got %d and %d",
			c.MaxOrdersListed, c.MaxOrdersDetailed)
	}
	if c.RetainRaw < 0 {
		return engine.Errorf(engine.EINVALID, "the raw request retention must not be negative; got %s", c.RetainRaw)
	}
	if err := CheckSchedule(c.SweepSchedule); err != nil {
		return engine.Errorf(engine.EINVALID, "sweep schedule %q: %v", c.SweepSchedule, err)
	}
	if err := CheckSchedule(c.ReportSchedule); err != nil {
		return engine.Errorf(engine.EINVALID, "report schedule %q: %v", c.ReportSchedule, err)
	}
	return nil
}

// CheckSchedule says why spec is not a schedule the reconciler can run: a
// five-field cron spec in UTC or a descriptor such as "@every 5m". An
// interval under a second is refused: cron would run it every second
// without a word.
func CheckSchedule(spec string) error {
	if _, err := parser.Parse(spec); err != nil {
		return err
	}
	// A time zone may lead ("CRON_TZ=UTC @every 1m"); cron reads past it.
	if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") {
		if _, rest, ok := strings.Cut(spec, " "); ok {
			spec = strings.TrimSpace(rest)
		}
	}
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(rest)); err == nil && d < time.Second {
			return fmt.Errorf("an interval of %s; the shortest is 1s", d)
		}
	}
	return nil
}

// Reconciler runs the sweep and builds reports over a store.
type Reconciler struct {
	store Store
	cfg   Config
	now   func() time.Time
	log   *slog.Logger
}

// New returns a reconciler over store. now is the clock reports are dated
// by and schedules are caught up against (time.Now when nil); the sweep
// uses the store's clock, which stamped the times it compares. Returns
// EINVALID for a negative threshold or a schedule that does not parse.
func New(store Store, cfg Config, now func() time.Time, log *slog.Logger) (*Reconciler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	if _, ok := store.(engine.RawStore); cfg.RetainRaw > 0 && !ok {
		return nil, engine.Errorf(engine.EINVALID, "this store cannot purge raw requests")
	}
	return &Reconciler{store: store, cfg: cfg, now: func() time.Time { return now().UTC() }, log: log}, nil
}

// Config is the configuration in effect, defaults filled in.
func (r *Reconciler) Config() Config { return r.cfg }

// human shows a duration the way a person says it: its largest unit and,
// when not zero, the next one or two below it ("1d 30m", "2h 5m", "47s").
func human(d time.Duration) string {
	if d < 0 {
		return "-" + human(-d)
	}
	d = d.Round(time.Second)
	units := []struct {
		d    time.Duration
		name string
		// reach is how many smaller units may follow this one.
		reach int
	}{{24 * time.Hour, "d", 2}, {time.Hour, "h", 1}, {time.Minute, "m", 1}, {time.Second, "s", 0}}
	for i, u := range units {
		n := d / u.d
		if n == 0 {
			continue
		}
		out := fmt.Sprintf("%d%s", n, u.name)
		rest := d - n*u.d
		for _, v := range units[i+1 : i+1+u.reach] {
			if m := rest / v.d; m > 0 {
				return out + fmt.Sprintf(" %d%s", m, v.name)
			}
		}
		return out
	}
	return "0s"
}

// stamp shows a time to a person: UTC, to the second.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " UTC" }
