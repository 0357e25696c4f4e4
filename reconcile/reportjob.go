package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/orderstate/orderstate/engine"
)

// Written is a report the scheduled job produced.
type Written struct {
	ID     int64
	Report *Report
	// Paths are the files written, one per format; none without a
	// reports directory.
	Paths []string
}

// RunReport builds the report for the period since the last one (or the
// configured period, for the first), stores it, records the period's end
// as the watermark and writes the files. It returns nil, nil when the
// period is shorter than a second (the files are named to the second).
func (r *Reconciler) RunReport(ctx context.Context) (*Written, error) {
	// The period ends now, to the instant. Cut to the second, it left out
	// whatever a sweep found a moment before (the five-minute sweep and
	// the nightly report fire together): listed as open, yet counted as
	// new in neither this report nor the next.
	if r.cfg.BeforeReport != nil {
		if err := r.cfg.BeforeReport(ctx); err != nil {
			r.log.Warn("the report may miss the latest refused requests", slog.Any("err", err))
		}
	}
	until := r.now()
	since, err := r.store.Watermark(ctx, WatermarkReport)
	if err != nil {
		return nil, err
	}
	if since.IsZero() {
		since = until.Add(-r.cfg.ReportPeriod)
	}
	if until.Sub(since) < time.Second {
		return nil, nil
	}
	rep, err := r.BuildReport(ctx, since, until)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, f := range Formats {
		if out[f], err = rep.Render(f); err != nil {
			return nil, err
		}
	}
	id, err := r.store.SaveReport(ctx, engine.StoredReport{CreatedAt: rep.GeneratedAt, PeriodStart: rep.PeriodStart,
		PeriodEnd: rep.PeriodEnd, JSON: out[FormatJSON], Markdown: string(out[FormatMarkdown]), HTML: string(out[FormatHTML])})
	if err != nil {
		return nil, err
	}
	// The store holds the report now, so the period is done even if the
	// files below cannot be written: a retry would store it twice.
	if err := r.store.SetWatermark(ctx, WatermarkReport, until); err != nil {
		return nil, err
	}
	w := &Written{ID: id, Report: rep}
	if r.cfg.ReportsDir != "" {
		if w.Paths, err = WriteFiles(r.cfg.ReportsDir, rep.PeriodEnd, out); err != nil {
			return w, err
		}
	}
	r.log.Info("anomaly report written", slog.Int64("id", id), slog.Time("period_start", rep.PeriodStart),
		slog.Time("period_end", rep.PeriodEnd), slog.Int("need_action", rep.Summary.NeedAction), slog.Any("files", w.Paths))
	return w, nil
}

// WriteFiles writes rendered reports, keyed by format, as
// dir/report-<period end>.<format>, each atomically so a reader never sees
// half a report, and durably: each file's data is flushed before it takes
// its name, and the directory after, so a power cut leaves a report whole
// or absent, never a name with nothing behind it.
func WriteFiles(dir string, periodEnd time.Time, rendered map[string][]byte) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("reports directory: %w", err)
	}
	var paths []string
	for _, f := range Formats {
		body, ok := rendered[f]
		if !ok {
			continue
		}
		path := filepath.Join(dir, "report-"+FileStamp(periodEnd)+"."+f)
		tmp, err := os.CreateTemp(dir, ".report-*")
		if err != nil {
			return paths, fmt.Errorf("write report: %w", err)
		}
		_, werr := tmp.Write(body)
		if werr == nil {
			werr = tmp.Sync()
		}
		if cerr := tmp.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Chmod(tmp.Name(), 0o644)
		}
		if werr == nil {
			werr = os.Rename(tmp.Name(), path)
		}
		if werr != nil {
			os.Remove(tmp.Name())
			return paths, fmt.Errorf("write report %s: %w", path, werr)
		}
		paths = append(paths, path)
	}
	if err := syncDir(dir); err != nil {
		return paths, fmt.Errorf("write report: flush the reports directory %s: %w", dir, err)
	}
	return paths, nil
}

// syncDir flushes a directory's entries, so names just made in it survive
// a power cut.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// FileStamp names a report by its period end: 2026-03-02T0300Z, with
// seconds only when a schedule finer than a minute needs them.
func FileStamp(t time.Time) string {
	t = t.UTC()
	if t.Second() != 0 {
		return t.Format("2006-01-02T150405Z")
	}
	return t.Format("2006-01-02T1504Z")
}
