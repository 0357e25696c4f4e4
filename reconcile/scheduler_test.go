package reconcile_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	"github.com/orderstate/orderstate/reconcile"
)

// hookedStore replaces the store's Sweep, to make a run slow or panic.
type hookedStore struct {
	*sqlite.DB
	sweep func(ctx context.Context, fn func(engine.SweepTx) error) error
}

func (h hookedStore) Sweep(ctx context.Context, fn func(engine.SweepTx) error) error {
	return h.sweep(ctx, fn)
}

// logs records log messages.
type logs struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logs) WithGroup(string) slog.Handler      { return l }

func (l *logs) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

func stop(t *testing.T, s *reconcile.Scheduler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Stop(ctx))
}

// TestScheduler_CatchesUpMissedReportOnce: the process was down over the
// nightly run; the first start runs it once, later starts do not.
func TestScheduler_CatchesUpMissedReportOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	dir := t.TempDir()
	cfg := reconcile.Config{ReportsDir: dir}
	e.register("o", "tazapay", "c", 100, "USD")
	lastReport := time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	require.NoError(t, e.db.SetWatermark(e.ctx, reconcile.WatermarkReport, lastReport))
	e.clock.Set(time.Date(2026, 3, 2, 9, 17, 0, 0, time.UTC)) // slept through 03:00

	for range 3 {
		rec, err := reconcile.New(e.db, cfg, e.clock.Now, quiet())
		require.NoError(t, err)
		s, err := rec.Start(e.ctx)
		require.NoError(t, err)
		stop(t, s)
		e.clock.Add(time.Hour)
	}
	reports, err := e.db.Reports(e.ctx, 10)
	require.NoError(t, err)
	require.Len(t, reports, 1, "caught up exactly once")
	require.Equal(t, lastReport, reports[0].PeriodStart, "the caught-up report starts where the last one ended")
	require.Equal(t, time.Date(2026, 3, 2, 9, 17, 0, 0, time.UTC), reports[0].PeriodEnd)
	wm, err := e.db.Watermark(e.ctx, reconcile.WatermarkReport)
	require.NoError(t, err)
	require.Equal(t, reports[0].PeriodEnd, wm)
	for _, ext := range []string{"json", "md", "html"} {
		_, err := os.Stat(filepath.Join(dir, "report-2026-03-02T0917Z."+ext))
		require.NoError(t, err, ext)
	}
	sweptAt, err := e.db.Watermark(e.ctx, reconcile.WatermarkSweep)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 3, 2, 11, 17, 0, 0, time.UTC), sweptAt, "the sweep, every 5 minutes, was due at each start")

	// The next night came and went while it was down again.
	e.clock.Set(time.Date(2026, 3, 3, 4, 0, 0, 0, time.UTC))
	rec, err := reconcile.New(e.db, cfg, e.clock.Now, quiet())
	require.NoError(t, err)
	s, err := rec.Start(e.ctx)
	require.NoError(t, err)
	stop(t, s)
	reports, err = e.db.Reports(e.ctx, 10)
	require.NoError(t, err)
	require.Len(t, reports, 2)
	require.Equal(t, time.Date(2026, 3, 2, 9, 17, 0, 0, time.UTC), reports[0].PeriodStart, "no gap, no overlap")
}

func TestScheduler_FirstStartRecordsWhereReportsBegin(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	rec, err := reconcile.New(e.db, reconcile.Config{}, e.clock.Now, quiet())
	require.NoError(t, err)
	s, err := rec.Start(e.ctx)
	require.NoError(t, err)
	stop(t, s)
	reports, err := e.db.Reports(e.ctx, 10)
	require.NoError(t, err)
	require.Empty(t, reports, "a new store has no missed report")
	wm, err := e.db.Watermark(e.ctx, reconcile.WatermarkReport)
	require.NoError(t, err)
	require.Equal(t, start, wm)
}

// The next two run on real time with one-second schedules, in parallel;
// each takes about two seconds.

func TestScheduler_SlowRunIsNeverOverlapped(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	require.NoError(t, e.db.SetWatermark(e.ctx, reconcile.WatermarkSweep, e.clock.Now()))
	var running, most, runs atomic.Int32
	store := hookedStore{DB: e.db, sweep: func(ctx context.Context, fn func(engine.SweepTx) error) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		runs.Add(1)
		time.Sleep(1300 * time.Millisecond)
		return e.db.Sweep(ctx, fn)
	}}
	l := &logs{}
	rec, err := reconcile.New(store, reconcile.Config{SweepSchedule: "@every 1s"}, e.clock.Now, slog.New(l))
	require.NoError(t, err)
	s, err := rec.Start(e.ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return l.count("DEBUG cron: skip") > 0 }, 4*time.Second, 20*time.Millisecond,
		"the tick during the slow run is skipped")
	stop(t, s)
	require.Equal(t, int32(1), most.Load(), "runs never overlap")
	require.GreaterOrEqual(t, runs.Load(), int32(1))
}

func TestScheduler_PanicDoesNotStopLaterRuns(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	require.NoError(t, e.db.SetWatermark(e.ctx, reconcile.WatermarkSweep, e.clock.Now()))
	var calls atomic.Int32
	store := hookedStore{DB: e.db, sweep: func(ctx context.Context, fn func(engine.SweepTx) error) error {
		if calls.Add(1) == 1 {
			panic("sweep exploded")
		}
		return e.db.Sweep(ctx, fn)
	}}
	l := &logs{}
	var mu sync.Mutex
	var results []string
	onRun := func(job string, _ time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, fmt.Sprintf("%s:%v", job, err))
	}
	rec, err := reconcile.New(store, reconcile.Config{SweepSchedule: "@every 1s", OnRun: onRun}, e.clock.Now, slog.New(l))
	require.NoError(t, err)
	s, err := rec.Start(e.ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return calls.Load() >= 2 }, 4*time.Second, 20*time.Millisecond,
		"the run after a panic still happens")
	stop(t, s)
	require.Equal(t, 1, l.count("ERROR cron: panic"))
	mu.Lock()
	require.Equal(t, "sweep:panic: sweep exploded", results[0], "the panicking run is reported as failed")
	require.Equal(t, "sweep:<nil>", results[1])
	mu.Unlock()
	require.Eventually(t, func() bool { return l.count("DEBUG sweep done") >= 1 }, time.Second, 10*time.Millisecond)
}

func TestScheduler_StopCancelsARunThatOverstays(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	require.NoError(t, e.db.SetWatermark(e.ctx, reconcile.WatermarkSweep, e.clock.Now()))
	started := make(chan struct{})
	var once sync.Once
	store := hookedStore{DB: e.db, sweep: func(ctx context.Context, fn func(engine.SweepTx) error) error {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return ctx.Err()
	}}
	rec, err := reconcile.New(store, reconcile.Config{SweepSchedule: "@every 1s"}, e.clock.Now, quiet())
	require.NoError(t, err)
	s, err := rec.Start(e.ctx)
	require.NoError(t, err)
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = s.Stop(ctx)
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "caught up at the next start"))
	wm, werr := e.db.Watermark(e.ctx, reconcile.WatermarkSweep)
	require.NoError(t, werr)
	require.Equal(t, start, wm, "an interrupted run leaves the watermark where it was, so it is caught up")
}
