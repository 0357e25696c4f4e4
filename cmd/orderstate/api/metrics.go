package api

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
)

// Metrics are the server's Prometheus instruments, on a registry of their
// own so tests and several servers in one process do not collide.
type Metrics struct {
	Registry *prometheus.Registry
	Webhooks *prometheus.CounterVec
	Ingest   *prometheus.HistogramVec
	InFlight prometheus.Gauge
	// Receiving counts webhooks whose bodies are still arriving; they
	// hold no in-flight slot.
	Receiving prometheus.Gauge
	// ReconcilerRuns counts scheduled sweep and report runs by result;
	// ReconcilerSeconds is how long they took.
	ReconcilerRuns    *prometheus.CounterVec
	ReconcilerSeconds *prometheus.HistogramVec
	// Polls counts calls to providers' APIs by provider and result;
	// Pollable says, per provider, whether it can be asked (1) or not (0).
	Polls    *prometheus.CounterVec
	Pollable *prometheus.GaugeVec
}

// NewMetrics creates the instruments and registers them with the Go and
// process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderstate_webhooks_total",
			Help: "Webhooks received, by provider and result (applied, stale, duplicate, conflict, ignored, or the error code of a refusal).",
		}, []string{"provider", "result"}),
		Ingest: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderstate_ingest_seconds",
			Help:    "Time from a webhook's arrival to its durable commit, by provider.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"provider"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderstate_webhooks_in_flight",
			Help: "Webhooks being handled right now, each holding one of the --max-inflight slots.",
		}),
		Receiving: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderstate_webhooks_receiving",
			Help: "Webhooks whose bodies are still arriving; they hold no in-flight slot.",
		}),
		Polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderstate_polls_total",
			Help: "Calls to providers' checkout APIs, by provider and result (recovered, changed, unchanged, conflict, or why no usable answer came: unauthorized, not_found, rate_limited, unavailable, timeout, malformed, error, store_error).",
		}, []string{"provider", "result"}),
		Pollable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderstate_provider_pollable",
			Help: "1 for a provider orderstate polls for missing webhooks, 0 for one it cannot ask (no retrieve API, or no API credentials set).",
		}, []string{"provider"}),
		ReconcilerRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderstate_reconciler_runs_total",
			Help: "Scheduled reconciler runs, by job (sweep, report) and result (ok, failed).",
		}, []string{"job", "result"}),
		ReconcilerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderstate_reconciler_seconds",
			Help:    "How long scheduled reconciler runs took, by job.",
			Buckets: []float64{.001, .01, .1, .5, 1, 5, 30, 120},
		}, []string{"job"}),
	}
	m.Registry.MustRegister(m.Webhooks, m.Ingest, m.InFlight, m.Receiving, m.ReconcilerRuns, m.ReconcilerSeconds, m.Polls, m.Pollable,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The run counters exist from the start at zero: an alert on failed
	// runs, or on runs not growing, needs a series before the first run
	// (up to a day away for the report).
	for _, job := range []string{"sweep", "report"} {
		for _, result := range []string{"ok", "failed"} {
			m.ReconcilerRuns.WithLabelValues(job, result)
		}
	}
	return m
}

// ReconcilerRun records one scheduled run; it fits reconcile.Config.OnRun.
func (m *Metrics) ReconcilerRun(job string, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "failed"
	}
	m.ReconcilerRuns.WithLabelValues(job, result).Inc()
	m.ReconcilerSeconds.WithLabelValues(job).Observe(took.Seconds())
}

// WriterStatser is the part of a store the store counters read; the
// engine's DB is one.
type WriterStatser interface {
	WriterStats() sqlite.WriterStats
}

// CountWrites exports the store writer's counters, read at each scrape.
func (m *Metrics) CountWrites(src WriterStatser) {
	for _, c := range []struct {
		name, help string
		get        func(sqlite.WriterStats) int64
	}{
		{"orderstate_store_commits_total", "Write transactions committed.", func(s sqlite.WriterStats) int64 { return s.Commits }},
		{"orderstate_store_syncs_total", "Flushes of the write-ahead log to disk; each covers every commit made while the one before it ran.", func(s sqlite.WriterStats) int64 { return s.Syncs }},
		{"orderstate_store_writes_total", "Writes committed; divided by commits, the mean number sharing a commit.", func(s sqlite.WriterStats) int64 { return s.Writes }},
		{"orderstate_store_order_lookups_total", "Webhooks that named an order.", func(s sqlite.WriterStats) int64 { return s.OrderLookups }},
		{"orderstate_store_order_cache_hits_total", "Webhooks whose order the writer held in memory.", func(s sqlite.WriterStats) int64 { return s.OrderCacheHits }},
		{"orderstate_store_checkpoints_total", "Passes that copied the write-ahead log into the database file.", func(s sqlite.WriterStats) int64 { return s.Checkpoints }},
	} {
		get := c.get
		f := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help}, func() float64 { return float64(get(src.WriterStats())) })
		var dup prometheus.AlreadyRegisteredError
		if err := m.Registry.Register(f); err != nil && !errors.As(err, &dup) {
			panic(err)
		}
	}
}

// AnomalyCounter is the part of a store the open-anomalies gauge reads;
// the engine's DB is one.
type AnomalyCounter interface {
	OpenAnomalyCounts(ctx context.Context) (map[string]int, error)
}

// CountAnomalies exports the open anomalies of src by kind, read at each
// scrape so the gauge is never stale, including after a restart or an ack
// made by another process on the same file.
func (m *Metrics) CountAnomalies(src AnomalyCounter) {
	c := &anomalyCollector{src: src, desc: prometheus.NewDesc("orderstate_anomalies_open",
		"Open anomalies, by kind.", []string{"kind"}, nil)}
	var dup prometheus.AlreadyRegisteredError
	if err := m.Registry.Register(c); err != nil && !errors.As(err, &dup) {
		panic(err)
	}
}

type anomalyCollector struct {
	src  AnomalyCounter
	desc *prometheus.Desc
}

func (c *anomalyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *anomalyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.src.OpenAnomalyCounts(ctx)
	if err != nil {
		// An invalid metric drops this gauge from the scrape and keeps the
		// rest: the process metrics matter most when the store is failing.
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	// Every known kind is exported, zero included, so an alert on a kind
	// has a series to watch before its first anomaly.
	for _, kind := range engine.AnomalyKinds {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[kind]), kind)
		delete(counts, kind)
	}
	for kind, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), kind)
	}
}

// SetBuild exports orderstate_build_info, 1 with the build's version, the
// commit it was built from and the Go release, in the form Prometheus
// exporters give their build information, so a dashboard can show which
// build each replica runs and an alert can join on it.
func (m *Metrics) SetBuild(version, revision, goVersion string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "orderstate_build_info",
		Help: "The running build: always 1, with its version, revision (commit) and goversion as labels.",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(version, revision, goVersion).Set(1)
	var dup prometheus.AlreadyRegisteredError
	if err := m.Registry.Register(g); err != nil && !errors.As(err, &dup) {
		panic(err)
	}
}
