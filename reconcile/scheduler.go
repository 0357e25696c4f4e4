package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Watermarks the scheduler keeps in the store: when each job last completed
// (for the report, the end of the period it covered).
const (
	WatermarkSweep  = "reconcile.sweep"
	WatermarkReport = "reconcile.report"
)

// Scheduler runs the sweep and the report on their cron schedules.
type Scheduler struct {
	r       *Reconciler
	cron    *cron.Cron
	ctx     context.Context
	cancel  context.CancelFunc
	stop    sync.Once
	stopErr error
}

// Leader is a store several processes share. It lets one of them at a
// time run a scheduled job, and another take over when that one dies.
type Leader interface {
	// Lead takes the named job's lease, held until release is called or
	// the process holding it dies; ok is false while another holds it.
	Lead(ctx context.Context, job string) (release func(), ok bool, err error)
}

// job is one scheduled job and its watermark.
type job struct {
	name      string
	spec      string
	sched     cron.Schedule
	watermark string
	run       func(ctx context.Context) error
	// runFirst says whether a job that has never completed runs at start.
	// A sweep should (it is how the store becomes current); a first report
	// would cover nothing anyone asked for, so the report records the start
	// as where its first period begins instead.
	runFirst bool
}

// Start schedules the sweep and the report in UTC. A job whose schedule
// fired since its last completed run (while the process was down) runs once
// before Start returns, the sweep first so a caught-up report includes what
// it found; when Start returns the store is current, and nothing written at
// start races the caller. Catch-up runs go through the same chain as
// scheduled ones, so a panic in one is recovered too. Jobs run with a
// context derived from ctx's values but not its cancellation: Stop decides
// when they are interrupted.
func (r *Reconciler) Start(ctx context.Context) (*Scheduler, error) {
	log := cronLogger{r.log}
	jobCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Scheduler{r: r, ctx: jobCtx, cancel: cancel,
		// Recover is innermost so that a panic is caught inside
		// SkipIfStillRunning, which then gives its token back; the other
		// way round, cron v3.0.1 never runs the job again.
		cron: cron.New(cron.WithLocation(time.UTC), cron.WithParser(parser), cron.WithLogger(log),
			cron.WithChain(cron.SkipIfStillRunning(log), cron.Recover(log))),
	}
	jobs := []job{
		{name: "sweep", spec: r.cfg.SweepSchedule, watermark: WatermarkSweep, runFirst: true,
			run: func(ctx context.Context) error { _, err := r.RunSweep(ctx); return err }},
		{name: "report", spec: r.cfg.ReportSchedule, watermark: WatermarkReport,
			run: func(ctx context.Context) error { _, err := r.RunReport(ctx); return err }},
	}
	var due []cron.Job
	for _, j := range jobs {
		sched, err := parser.Parse(j.spec)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("%s schedule %q: %w", j.name, j.spec, err)
		}
		j.sched = sched
		id := s.cron.Schedule(sched, cron.FuncJob(s.wrap(j)))
		late, err := r.missed(ctx, j, sched)
		if err != nil {
			cancel()
			return nil, err
		}
		if late {
			// WrappedJob goes through the chain; Entry.Job would bypass
			// it (cron #551), and with it the panic recovery.
			due = append(due, s.cron.Entry(id).WrappedJob)
			if last, _ := r.store.Watermark(ctx, j.watermark); last.IsZero() {
				r.log.Info("first run on this store", slog.String("job", j.name))
			} else {
				r.log.Info("catching up a run missed while orderstate was down", slog.String("job", j.name), slog.Time("last", last))
			}
		}
	}
	for _, j := range due {
		j.Run()
	}
	s.cron.Start()
	return s, nil
}

// missed reports whether j's schedule fired between its last completed run
// and now.
func (r *Reconciler) missed(ctx context.Context, j job, sched cron.Schedule) (bool, error) {
	last, err := r.store.Watermark(ctx, j.watermark)
	if err != nil {
		return false, err
	}
	now := r.now()
	if last.IsZero() {
		if j.runFirst {
			return true, nil
		}
		return false, r.store.SetWatermark(ctx, j.watermark, now)
	}
	return !sched.Next(last).After(now), nil
}

// wrap turns a job into what cron runs: errors are logged, and the run is
// bounded by the scheduler's context.
func (s *Scheduler) wrap(j job) func() {
	return func() {
		if s.ctx.Err() != nil {
			return
		}
		start := time.Now()
		if on := s.r.cfg.OnRun; on != nil {
			// A panic is reported as a failure, then left to the Recover
			// wrapper outside, which logs it with its stack.
			defer func() {
				if p := recover(); p != nil {
					on(j.name, time.Since(start), fmt.Errorf("panic: %v", p))
					panic(p)
				}
			}()
		}
		if l, ok := s.r.store.(Leader); ok {
			release, run, err := s.lead(l, j)
			if err != nil {
				s.r.log.Warn("cannot tell whether another replica runs this job; it runs again at its next scheduled time",
					slog.String("job", j.name), slog.Any("err", err))
				return
			}
			if !run {
				return
			}
			defer release()
		}
		err := j.run(s.ctx)
		if err != nil {
			s.r.log.Error("reconciler job failed; it runs again at its next scheduled time", slog.String("job", j.name), slog.Any("err", err))
		}
		if on := s.r.cfg.OnRun; on != nil {
			on(j.name, time.Since(start), err)
		}
	}
}

// lead decides, on a store several replicas share, whether this replica
// runs j now: it must hold j's lease, and j must be due, since another
// replica may have run this tick's j a moment before and released it. Cron
// fires at or after a tick, and every replica's ticks fall on the same
// instants (whole seconds for @every, the spec's times otherwise), so j is
// due once the tick after its last run has come; leadSlack only absorbs
// the clocks' grain.
func (s *Scheduler) lead(l Leader, j job) (release func(), run bool, err error) {
	release, ok, err := l.Lead(s.ctx, j.name)
	if err != nil || !ok {
		if err == nil {
			s.r.log.Debug("another replica runs this job", slog.String("job", j.name))
		}
		return nil, false, err
	}
	last, err := s.r.store.Watermark(s.ctx, j.watermark)
	if err != nil {
		release()
		return nil, false, err
	}
	if !last.IsZero() && j.sched.Next(last).After(s.r.now().Add(leadSlack)) {
		release()
		s.r.log.Debug("another replica already ran this job for this tick", slog.String("job", j.name), slog.Time("last", last))
		return nil, false, nil
	}
	return release, true, nil
}

const leadSlack = 10 * time.Millisecond

// Stop stops scheduling and waits for running jobs until ctx is done. Jobs
// still running then are cancelled; that is safe because every job is
// idempotent and the next start catches up from its watermark.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.stop.Do(func() {
		cronDone := s.cron.Stop()
		done := make(chan struct{})
		go func() {
			<-cronDone.Done()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.stopErr = errors.New("reconciler: a job was still running at shutdown; it was cancelled and will be caught up at the next start")
		}
		s.cancel()
	})
	return s.stopErr
}

// cronLogger sends cron's messages to slog. cron logs every wake-up and
// every skipped run at Info, which would drown the sidecar's log, so Info
// becomes Debug; errors (a recovered panic, with its stack) stay errors.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append([]any{slog.Any("err", err)}, kv...)...)
}

var _ cron.Logger = cronLogger{}
