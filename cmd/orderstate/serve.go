package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/orderstate/orderstate/cmd/orderstate/api"
	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/poll"
	"github.com/orderstate/orderstate/reconcile"
)

// serveFlags is everything `serve` (and the in-process server of `demo`)
// is configured with.
type serveFlags struct {
	store     storeFlags
	logs      logFlags
	providers providerFlags
	recon     reconcileFlags
	poll      pollFlags

	addr            string
	token           string
	maxBody         int64
	maxInFlight     int
	bodyTimeout     time.Duration
	shutdownTimeout time.Duration
	pprofAddr       string
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	f.store.register(fs)
	f.logs.register(fs)
	f.providers.register(fs)
	f.recon.register(fs)
	f.poll.register(fs)
	fs.StringVar(&f.addr, "addr", api.DefaultAddr, "address to listen on; the default keeps the sidecar private to its host")
	fs.StringVar(&f.token, "token", "", "bearer token required on /v1/* (empty: no token)")
	fs.Int64Var(&f.maxBody, "max-body", api.DefaultMaxBody, "largest request body accepted, in bytes")
	fs.IntVar(&f.maxInFlight, "max-inflight", api.DefaultMaxInFlight, "webhooks handled at once; more get 503 and are retried by the provider")
	fs.DurationVar(&f.bodyTimeout, "body-timeout", api.DefaultBodyTimeout, "how long a webhook's body may take to arrive after its headers; a slower one gets 408")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 20*time.Second, "how long SIGTERM waits for in-flight requests to finish")
	fs.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go's profiler on this address (e.g. 127.0.0.1:6060); empty: off")
}

func runServe(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	var f serveFlags
	fs := newFlagSet("serve", "serve [flags]", stderr)
	f.register(fs)
	if err := parseNoArgs(fs, args, env); err != nil {
		return err
	}
	log, err := f.logs.logger(stderr)
	if err != nil {
		return err
	}
	s, err := startSidecar(ctx, &f, log, time.Now)
	if err != nil {
		return err
	}
	// Only once it serves: a serve that refuses to start needs no tuning.
	tuneGC(env)
	log.Info("orderstate serving", slog.String("addr", s.server.URL()), slog.String("db", f.store.db),
		slog.Any("providers", s.pipeline.Providers()), slog.String("version", thisBuild().Version))
	if f.token == "" && !loopback(s.server.Addr()) {
		log.Warn("serving /v1 with no token on an address other hosts can reach: anyone who can connect can read orders and register them; set --token (ORDERSTATE_TOKEN) or bind to 127.0.0.1",
			slog.String("addr", s.server.Addr()))
	}
	<-ctx.Done()
	log.Info("signal received, finishing in-flight requests", slog.String("timeout", f.shutdownTimeout.String()))
	return s.close(f.shutdownTimeout)
}

// loopback reports whether a listening address takes connections from this
// host only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// validate refuses the limits the server would otherwise replace with its
// defaults: whoever set them meant something else, and should hear so at
// start rather than find out under load.
func (f *serveFlags) validate() error {
	if f.maxBody < 1 {
		return fmt.Errorf("--max-body (%s) %d: want a size in bytes of at least 1, such as %d", envName("max-body"), f.maxBody, api.DefaultMaxBody)
	}
	if f.maxInFlight < 1 {
		return fmt.Errorf("--max-inflight (%s) %d: want a number of webhooks of at least 1, such as %d", envName("max-inflight"), f.maxInFlight, api.DefaultMaxInFlight)
	}
	if err := positive("shutdown-timeout", f.shutdownTimeout, "20s"); err != nil {
		return err
	}
	if err := positive("body-timeout", f.bodyTimeout, "5s"); err != nil {
		return err
	}
	// The body is part of the request: a body allowed longer than the whole
	// request would break that request's limit, and the answer's write
	// deadline, counted from the request's start, could pass first.
	if f.bodyTimeout > api.DefaultReadTimeout {
		return fmt.Errorf("--body-timeout (%s) %s: want at most %s, the limit on a whole request", envName("body-timeout"), f.bodyTimeout, api.DefaultReadTimeout)
	}
	if err := f.recon.check(true); err != nil {
		return err
	}
	if err := f.poll.check(); err != nil {
		return err
	}
	return f.recon.report.check()
}

// sidecar is a running server with its store, pipeline and reconciler.
type sidecar struct {
	db       store
	pipeline *engine.Pipeline
	server   *api.Server
	log      *slog.Logger
	recon    *reconcile.Scheduler
	poll     *poll.Service
	stopBg   context.CancelFunc
	bgDone   chan struct{}
}

// startSidecar opens the store and starts the HTTP server and background
// jobs. now is the clock the store and adapters use.
func startSidecar(ctx context.Context, f *serveFlags, log *slog.Logger, now func() time.Time) (*sidecar, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	adapters, err := f.providers.adapters(log)
	if err != nil {
		return nil, err
	}
	if len(adapters) == 0 {
		log.Warn("no provider secret is configured, so every webhook will be refused; set ORDERSTATE_TOKENZ_SECRET, ORDERSTATE_YOCO_SECRET, ORDERSTATE_TAZAPAY_SECRET or ORDERSTATE_TWEED_SECRET")
	}
	// The port first: a taken one must fail before a store file is made.
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", f.addr, err)
	}
	started := false
	defer func() {
		if !started {
			ln.Close()
		}
	}()
	db, err := openWritable(ctx, &f.store, log, now)
	if err != nil {
		return nil, err
	}
	if err := checkReportsDir(f.recon.reportsDir); err != nil {
		db.Close()
		return nil, err
	}
	metrics := api.NewMetrics()
	b := thisBuild()
	metrics.SetBuild(b.Version, b.Revision, b.GoVersion)
	pipeline := engine.NewPipeline(db, now, adapters...)
	poller := f.poll.service(db, f.providers.tazapayMode, now, log, func(provider, result string) {
		metrics.Polls.WithLabelValues(provider, result).Inc()
	})
	var orderPoller api.OrderPoller
	for _, p := range knownProviders {
		metrics.Pollable.WithLabelValues(p).Set(0)
	}
	rcfg := f.recon.config()
	rcfg.OnRun = metrics.ReconcilerRun
	rcfg.BeforeReport = pipeline.Flush
	rcfg.PollStats = func() engine.PollStats { return engine.PollStats{Unpollable: unpollable} }
	if poller != nil {
		orderPoller = poller
		for _, p := range poller.Pollable() {
			metrics.Pollable.WithLabelValues(p).Set(1)
		}
		rcfg.PollStats = poller.Stats
	}
	rec, err := reconcile.New(db, rcfg, now, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	server := api.New(api.Config{Addr: f.addr, Listener: ln, Token: f.token, MaxBody: f.maxBody, MaxInFlight: f.maxInFlight,
		BodyTimeout: f.bodyTimeout, Providers: knownProviders, Poller: orderPoller},
		db, db, pipeline, metrics, log)
	if err := server.Open(); err != nil {
		db.Close()
		return nil, err
	}
	if f.pprofAddr != "" {
		if err := servePprof(f.pprofAddr, log); err != nil {
			server.Close(ctx)
			db.Close()
			return nil, err
		}
	}
	sched, err := rec.Start(ctx)
	if err != nil {
		_ = server.Close(ctx)
		db.Close()
		return nil, err
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &sidecar{db: db, pipeline: pipeline, server: server, log: log, recon: sched, poll: poller, stopBg: stop, bgDone: make(chan struct{})}
	go s.background(bg)
	started = true
	return s, nil
}

// background runs polling, on goroutines of its own, and the flush of
// rejection counts until ctx ends.
func (s *sidecar) background(ctx context.Context) {
	defer close(s.bgDone)
	if s.poll != nil {
		done := make(chan struct{})
		go func() { defer close(done); s.poll.Run(ctx) }()
		defer func() { <-done }()
	}
	s.flushRejections(ctx)
}

// flushRejections writes the counts of refused requests once a minute.
func (s *sidecar) flushRejections(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.pipeline.Flush(ctx); err != nil {
				s.log.Warn("cannot record rejected requests; will retry", slog.Any("err", err))
			}
		}
	}
}

// close drains the server (each in-flight webhook finishes and commits),
// stops background jobs and closes the store.
func (s *sidecar) close(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := s.server.Close(ctx)
	if err != nil {
		err = fmt.Errorf("shutting down the server: %w", err)
	}
	err = errors.Join(err, s.recon.Stop(ctx))
	s.stopBg()
	<-s.bgDone
	if ferr := s.pipeline.Flush(ctx); ferr != nil {
		err = errors.Join(err, ferr)
	}
	return errors.Join(err, s.db.Close())
}

// tuneGC trades a little memory for CPU: ingest allocates per webhook, and
// with Go's default the collector ran often enough to cost a fifth of the
// throughput at high concurrency (make bench: 2,546 against 3,081 webhooks/s
// at concurrency 64, peak RSS 37 MB against 58 MB). The soft memory limit
// keeps the sidecar well under its 150 MB budget whatever the heap does.
// GOGC and GOMEMLIMIT, when set, win.
func tuneGC(env func(string) string) {
	if env("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if env("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(100 << 20)
	}
}
