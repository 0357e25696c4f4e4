package api

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the server's Prometheus instruments, on a registry of their
// own so tests and several servers in one process do not collide.
type Metrics struct {
	Registry *prometheus.Registry
	Webhooks *prometheus.CounterVec
	Ingest   *prometheus.HistogramVec
	InFlight prometheus.Gauge
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
			Help: "Webhooks being handled right now.",
		}),
	}
	m.Registry.MustRegister(m.Webhooks, m.Ingest, m.InFlight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
