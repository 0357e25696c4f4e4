package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/orderstate/orderstate/engine/sqlite"
	"github.com/orderstate/orderstate/internal/simulate"
)

type config struct {
	bin         string
	dir         string
	duration    time.Duration
	largeOrders int
	skipLarge   bool
	readers     int
	skipReads   bool
	skipPG      bool
	onlyPG      bool
	conc        []int
	out         string
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin/orderstate", "the orderstate binary to measure")
	flag.StringVar(&c.dir, "dir", ".bench", "working directory; the large store is built here once and reused")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "how long each ingest measurement runs")
	flag.IntVar(&c.largeOrders, "large-orders", 1_000_000, "orders in the large store (three events each)")
	flag.BoolVar(&c.skipLarge, "skip-large", false, "skip the large-store measurements")
	flag.IntVar(&c.readers, "readers", 8, "concurrent order readers during the read measurement")
	flag.BoolVar(&c.skipReads, "skip-reads", false, "skip the reads-during-ingest measurement")
	flag.BoolVar(&c.skipPG, "skip-postgres", false, "skip the PostgreSQL measurements (they start a throwaway server of their own)")
	flag.BoolVar(&c.onlyPG, "only-postgres", false, "measure PostgreSQL alone")
	concurrency := flag.String("concurrency", "1,8,64", "comma-separated concurrencies of the fresh-store ingest runs")
	flag.StringVar(&c.out, "out", "", "also write the table to this file")
	flag.Parse()
	for _, f := range strings.Split(*concurrency, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "orderstate-bench: -concurrency: %q is not a positive number\n", f)
			os.Exit(2)
		}
		c.conc = append(c.conc, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "orderstate-bench:", err)
		os.Exit(1)
	}
}

// row is one line of the results table.
type row struct {
	what, value, ratio, note string
}

func run(ctx context.Context, c config) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	var rows []row
	add := func(r row) {
		rows = append(rows, r)
		fmt.Fprintf(os.Stderr, "  %-58s %s %s %s\n", r.what, r.value, r.ratio, r.note)
	}
	fmt.Fprintf(os.Stderr, "orderstate-bench: %d CPUs, %s each measurement, working in %s\n", runtime.NumCPU(), c.duration, c.dir)
	stolen0 := readCPUTimes()
	// The providers' secrets, which the server is started with and the
	// webhooks signed with.
	secrets := simulate.NewSecrets()

	var peakRSS int64
	if !c.onlyPG {
		rss, err := benchSQLite(ctx, c, secrets, add)
		if err != nil {
			return err
		}
		peakRSS = rss
	}
	// 5. PostgreSQL: the ceiling this machine's PostgreSQL sets, then
	// ingest through one replica and through two sharing one database.
	if !c.skipPG {
		pgRows, rss, err := benchPostgres(ctx, c, secrets)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		for _, r := range pgRows {
			add(r)
		}
		peakRSS = max(peakRSS, rss)
	}
	add(row{"server peak RSS (VmHWM) over all runs", fmt.Sprintf("%.0f MB", float64(peakRSS)/1e6), "", ""})
	if share, ok := stolenShare(stolen0, readCPUTimes()); ok {
		add(row{"CPU time the hypervisor gave to other guests", fmt.Sprintf("%.0f%% of the machine's CPU time over the run", 100*share), "",
			"steal, from /proc/stat: cores this run could not use"})
	}

	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "| measurement\t| result\t| ratio\t| note\t|")
	fmt.Fprintln(tw, "|---\t|---\t|---\t|---\t|")
	for _, r := range rows {
		fmt.Fprintf(tw, "| %s\t| %s\t| %s\t| %s\t|\n", r.what, r.value, r.ratio, r.note)
	}
	tw.Flush()
	fmt.Print(buf.String())
	if c.out != "" {
		return os.WriteFile(c.out, buf.Bytes(), 0o644)
	}
	return nil
}

// ordersFor sizes a workload so it does not run out before the duration.
func ordersFor(conc int, d time.Duration) int {
	perSec := map[int]int{1: 1500, 8: 4000, 64: 6000}[conc]
	return int(d.Seconds()*float64(perSec)) + 2000
}

func removeDB(path string) {
	for _, s := range []string{"", "-wal", "-shm"} {
		os.Remove(path + s)
	}
}

// bareInsertRate commits one 2 KB row per transaction, as durably as the
// store does, for d.
func bareInsertRate(ctx context.Context, path string, d time.Duration) (float64, error) {
	removeDB(path)
	defer removeDB(path)
	return sqlite.BareCommitRate(ctx, path, 2048, d)
}

func ensureLarge(ctx context.Context, path string, orders int) (time.Duration, error) {
	done := path + ".complete"
	if _, err := os.Stat(done); err == nil {
		return 0, nil
	}
	removeDB(path)
	fmt.Fprintf(os.Stderr, "  building the large store (%d orders, once; reused by later runs)\n", orders)
	start := time.Now()
	last := time.Now()
	err := sqlite.BulkLoad(ctx, path, sqlite.BulkSpec{Orders: orders, EventsPerOrder: 3, BodyBytes: 2300, Seed: 1}, func(n, total int) {
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "    %d/%d orders (%s)\n", n, total, time.Since(start).Round(time.Second))
		}
	})
	if err != nil {
		return 0, err
	}
	took := time.Since(start)
	return took, os.WriteFile(done, []byte(took.String()+"\n"), 0o644)
}

// bytesPerEvent is what the events and their raw bodies take in the file,
// indexes included, per stored event. Orders are left out: the benchmark
// registers more orders than it sends webhooks for.
func bytesPerEvent(ctx context.Context, path string) (float64, error) {
	in, err := sqlite.Inspect(ctx, path)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	counts, err := in.Counts(ctx)
	if err != nil {
		return 0, err
	}
	size, err := in.EventBytes(ctx)
	if err != nil {
		return 0, err
	}
	return float64(size) / float64(max(counts.Events, 1)), nil
}

// storeSize counts a store's orders and open anomalies.
func storeSize(ctx context.Context, path string) (orders, anomalies int64, err error) {
	in, err := sqlite.Inspect(ctx, path)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	counts, err := in.Counts(ctx)
	return counts.Orders, counts.OpenAnomalies, err
}

// markStore returns where a run starts in the reused large store. What the
// run adds past it (its orders, events and aliases, the anomalies and
// report of the reconcile and report runs, the sweep watermarks) is taken
// out again afterwards with sqlite.TrimTo, so every run measures the store
// as it was built rather than one grown by the runs before it.
func markStore(ctx context.Context, path string) (sqlite.Mark, error) {
	in, err := sqlite.Inspect(ctx, path)
	if err != nil {
		return sqlite.Mark{}, err
	}
	defer in.Close()
	return in.Mark(ctx)
}

func timeCommand(ctx context.Context, bin, cmd, db string) (time.Duration, error) {
	args := []string{cmd, "--db", db}
	if cmd == "report" {
		args = append(args, "--since", "24h", "--format", "json")
	}
	start := time.Now()
	c := exec.CommandContext(ctx, bin, args...)
	c.Stdout = io.Discard
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		return 0, fmt.Errorf("%s: %w: %s", cmd, err, stderr.String())
	}
	return time.Since(start), nil
}

// server is `orderstate serve` running as a child process.
type server struct {
	cmd     *exec.Cmd
	base    string
	client  *http.Client
	secrets simulate.Secrets
	stderr  bytes.Buffer
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startServer(ctx context.Context, bin, db string, secrets simulate.Secrets) (*server, error) {
	return startServerIn(ctx, bin, db, filepath.Dir(db), secrets)
}

// startServerIn starts serve on db (a file or a postgres:// URL), with its
// reports in dir.
func startServerIn(ctx context.Context, bin, db, dir string, secrets simulate.Secrets) (*server, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{base: "http://" + addr, secrets: secrets, client: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, MaxConnsPerHost: 0},
	}}
	s.cmd = exec.CommandContext(ctx, bin, "serve", "--addr", addr, "--db", db, "--log-level", "warn",
		"--sweep-schedule", "@every 1h", "--report-schedule", "@every 24h", "--reports-dir", filepath.Join(dir, "reports"),
		"--max-inflight", "1024")
	if p := os.Getenv("ORDERSTATE_BENCH_PPROF"); p != "" && !strings.HasSuffix(dir, "-1") {
		// One profiled server at a time: the second replica would find
		// the address taken.
		s.cmd.Args = append(s.cmd.Args, "--pprof-addr", p)
	}
	s.cmd.Env = append(os.Environ(), "ORDERSTATE_TOKENZ_SECRET="+secrets.Tokenz, "ORDERSTATE_YOCO_SECRET="+secrets.Yoco,
		"ORDERSTATE_TAZAPAY_SECRET="+secrets.Tazapay, "ORDERSTATE_TWEED_SECRET="+secrets.Tweed)
	s.cmd.Stderr = &s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := s.client.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd.Process.Kill()
	return nil, fmt.Errorf("server did not become ready: %s", s.stderr.String())
}

func (s *server) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	err := s.cmd.Wait()
	if err != nil {
		return fmt.Errorf("server exit: %w: %s", err, s.stderr.String())
	}
	return nil
}

// peakRSS is the server's high-water resident set, from /proc.
func (s *server) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func (s *server) register(ctx context.Context, w *workload) error {
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(w.registrations) || ctx.Err() != nil {
					return
				}
				r := w.registrations[i]
				req, err := http.NewRequestWithContext(ctx, r.Method, s.base+r.Path, bytes.NewReader(r.Body))
				if err != nil {
					errs <- err
					return
				}
				req.Header = r.Header.Clone()
				resp, err := s.client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("%s %s: status %d", r.Method, r.Path, resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

type result struct {
	// serverCPU and clientCPU are the processes' CPU time over the run, in
	// cores: on two cores they say who the limit is.
	serverCPU, clientCPU float64
	n, errors            int
	elapsed              time.Duration
	rate                 float64
	p50, p99, max        time.Duration
	firstErr             string
}

// String also gives the server's CPU per webhook: the machine's speed
// swings from run to run with its neighbours, that figure far less, so it
// is the one to compare changes by.
func (r result) String() string {
	perHook := 0.0
	if r.rate > 0 {
		perHook = r.serverCPU / r.rate * 1e6
	}
	return fmt.Sprintf("%.0f webhooks/s, p50 %s, p99 %s, max %s (CPU: server %.2f cores, %.0f µs a webhook; load generator %.2f cores)",
		r.rate, ms(r.p50), ms(r.p99), ms(r.max), r.serverCPU, perHook, r.clientCPU)
}

func (r result) errNote() string {
	if r.errors == 0 {
		return ""
	}
	return fmt.Sprintf("%d errors (%s)", r.errors, r.firstErr)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// ingest posts w's webhooks with conc workers for at most d; side runs
// alongside for as long.
func (s *server) ingest(ctx context.Context, w *workload, conc int, d time.Duration, side func(context.Context)) result {
	return ingest(ctx, []*server{s}, w, conc, d, side)
}

// ingest posts w's webhooks to servers with conc workers, worker i to
// server i mod len(servers), as a load balancer in front of replicas
// would, for at most d; the server CPU is theirs summed.
func ingest(ctx context.Context, servers []*server, w *workload, conc int, d time.Duration, side func(context.Context)) result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var errCount int
	var firstErr string
	var wg sync.WaitGroup
	if side != nil {
		wg.Add(1)
		go func() { defer wg.Done(); side(ctx) }()
	}
	cpu := func() time.Duration {
		var sum time.Duration
		for _, s := range servers {
			sum += s.cpu()
		}
		return sum
	}
	start := time.Now()
	srvCPU0, cliCPU0 := cpu(), selfCPU()
	for worker := range conc {
		s := servers[worker%len(servers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := newHookConn(strings.TrimPrefix(s.base, "http://"))
			defer hc.close()
			local := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(w.webhooks) {
					break
				}
				req := w.webhooks[i].request(s.secrets, time.Now())
				t0 := time.Now()
				status, body, err := hc.do(req.Method, req.Path, req.Header, req.Body)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						errCount++
						firstErr = err.Error()
						mu.Unlock()
					}
					continue
				}
				if status != http.StatusOK {
					mu.Lock()
					errCount++
					if firstErr == "" {
						firstErr = fmt.Sprintf("%d %s", status, bytes.TrimSpace(body))
					}
					mu.Unlock()
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	srvCPU, cliCPU := cpu()-srvCPU0, selfCPU()-cliCPU0
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := result{n: len(lat), errors: errCount, elapsed: elapsed, firstErr: firstErr,
		serverCPU: srvCPU.Seconds() / elapsed.Seconds(), clientCPU: cliCPU.Seconds() / elapsed.Seconds()}
	if len(lat) > 0 {
		r.rate = float64(len(lat)) / elapsed.Seconds()
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return r
}

// read asks for path(i), i counting up from a start of its own for each
// reader, until ctx ends.
func (s *server) read(ctx context.Context, path func(i int) string, readers int, count *atomic.Int64) {
	var wg sync.WaitGroup
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := newHookConn(strings.TrimPrefix(s.base, "http://"))
			defer hc.close()
			for i := r; ctx.Err() == nil; i += 7919 {
				status, _, err := hc.do("GET", path(i), nil, nil)
				if err == nil && status == http.StatusOK && ctx.Err() == nil {
					count.Add(1)
				}
			}
		}()
	}
	wg.Wait()
}

// profile saves the server's CPU profile over most of a measurement, when
// ORDERSTATE_BENCH_PPROF names the server's --pprof-addr.
func profile(ctx context.Context, addr string, d time.Duration, path string) {
	secs := max(int(d.Seconds())-1, 1)
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
	if err != nil {
		fmt.Fprintln(os.Stderr, "  profile:", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := os.WriteFile(path, b, 0o644); err == nil {
		fmt.Fprintln(os.Stderr, "  CPU profile of the server:", path)
	}
}

// cpu is the server's user+system CPU time so far, from /proc.
func (s *server) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th of them.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuTimes is the machine's CPU time so far, in clock ticks: all of it, and
// the part stolen by the hypervisor for other guests.
type cpuTimes struct{ total, steal int64 }

// readCPUTimes reads the machine's first /proc/stat line; zero where there
// is none.
func readCPUTimes() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}
	}
	var t cpuTimes
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i < 8 { // guest times are already counted in user and nice
			t.total += n
		}
		if i == 7 {
			t.steal = n
		}
	}
	return t
}

// stolenShare is the share of CPU time stolen between two readings. On a
// shared virtual machine it tells a slow run from a slow build.
func stolenShare(a, b cpuTimes) (float64, bool) {
	if b.total <= a.total {
		return 0, false
	}
	return float64(b.steal-a.steal) / float64(b.total-a.total), true
}

// benchSQLite measures the embedded store: the disk's yardstick, ingest
// on a fresh store, reads during ingest and the large store.
func benchSQLite(ctx context.Context, c config, secrets simulate.Secrets, add func(row)) (int64, error) {
	// 1. The yardstick: what this disk commits with the store's pragmas.
	bare, err := bareInsertRate(ctx, filepath.Join(c.dir, "bare.db"), c.duration)
	if err != nil {
		return 0, fmt.Errorf("bare insert: %w", err)
	}
	add(row{"bare durable insert, one 2 KB row per transaction", fmt.Sprintf("%.0f tx/s", bare), "1.00", "the limit"})

	// 2. Ingest on a fresh store.
	fresh := filepath.Join(c.dir, "fresh.db")
	removeDB(fresh)
	srv, err := startServer(ctx, c.bin, fresh, secrets)
	if err != nil {
		return 0, err
	}
	var peakRSS int64
	freshRates := map[int]result{}
	var meanBody float64
	for i, conc := range c.conc {
		w := newWorkload(fmt.Sprintf("f%d", conc), ordersFor(conc, c.duration), uint64(i+1), secrets)
		meanBody = w.meanBodyBytes()
		if err := srv.register(ctx, w); err != nil {
			return 0, err
		}
		var side func(context.Context)
		if pp := os.Getenv("ORDERSTATE_BENCH_PPROF"); pp != "" {
			path := filepath.Join(c.dir, fmt.Sprintf("cpu-c%d.prof", conc))
			side = func(ctx context.Context) { profile(ctx, pp, c.duration, path) }
		}
		res := srv.ingest(ctx, w, conc, c.duration, side)
		freshRates[conc] = res
		add(row{fmt.Sprintf("ingest, fresh store, concurrency %d", conc), res.String(), fmt.Sprintf("%.2f", res.rate/bare), res.errNote()})
	}

	// 3. Reads during ingest, and beside them the same load of requests
	// that do no store work at all: what HTTP alone costs on this machine,
	// with the load generator on the same cores, bounds what any read path
	// could reach.
	if !c.skipReads {
		w := newWorkload("r", ordersFor(8, c.duration)*3/2, 9, secrets)
		if err := srv.register(ctx, w); err != nil {
			return 0, err
		}
		third := len(w.webhooks) / 3
		parts := []*workload{{webhooks: w.webhooks[:third]}, {webhooks: w.webhooks[third : 2*third]}, {webhooks: w.webhooks[2*third:]}}
		alone := srv.ingest(ctx, parts[0], 8, c.duration, nil)
		withReads := func(part *workload, prof string, path func(i int) string) (result, float64) {
			var reads atomic.Int64
			res := srv.ingest(ctx, part, 8, c.duration, func(ctx context.Context) {
				if pp := os.Getenv("ORDERSTATE_BENCH_PPROF"); pp != "" {
					go profile(ctx, pp, c.duration, filepath.Join(c.dir, prof))
				}
				srv.read(ctx, path, c.readers, &reads)
			})
			return res, float64(reads.Load()) / res.elapsed.Seconds()
		}
		withOrders, readRate := withReads(parts[1], "cpu-reads.prof", func(i int) string { return "/v1/orders/" + w.orderIDs[i%len(w.orderIDs)] })
		withHealth, healthRate := withReads(parts[2], "cpu-healthz.prof", func(int) string { return "/healthz" })
		add(row{"ingest, concurrency 8, no readers", alone.String(), "", ""})
		add(row{fmt.Sprintf("ingest, concurrency 8, with %d readers", c.readers), withOrders.String(), fmt.Sprintf("%.2f", withOrders.rate/alone.rate), "ratio to no readers; the server CPU includes the reads"})
		add(row{"GET /v1/orders/{id} during that ingest", fmt.Sprintf("%.0f reads/s", readRate), "", ""})
		add(row{fmt.Sprintf("ingest, concurrency 8, with %d readers of GET /healthz", c.readers), withHealth.String(), fmt.Sprintf("%.2f", withHealth.rate/alone.rate),
			"ratio to no readers: the cost of HTTP alone"})
		add(row{"GET /healthz during that ingest", fmt.Sprintf("%.0f requests/s", healthRate), "", "no store work: the ceiling of any read here"})
	}
	peakRSS = max(peakRSS, srv.peakRSS())
	if err := srv.stop(); err != nil {
		return 0, err
	}
	perEvent, err := bytesPerEvent(ctx, fresh)
	if err != nil {
		return 0, err
	}
	add(row{"store bytes per event, with its raw body and indexes", fmt.Sprintf("%.0f B", perEvent), fmt.Sprintf("%.2f", perEvent/meanBody), fmt.Sprintf("ratio to the mean raw body (%.0f B)", meanBody)})

	// 4. The large store.
	if !c.skipLarge {
		large := filepath.Join(c.dir, fmt.Sprintf("large-%d.db", c.largeOrders))
		took, err := ensureLarge(ctx, large, c.largeOrders)
		if err != nil {
			return 0, err
		}
		note := "reused"
		if took > 0 {
			note = fmt.Sprintf("built in %s", took.Round(time.Second))
		}
		if orders, anomalies, err := storeSize(ctx, large); err == nil {
			note += fmt.Sprintf("; holds %d orders, %d open anomalies", orders, anomalies)
		}
		add(row{fmt.Sprintf("large store: %d orders, 3 events each", c.largeOrders), note, "", ""})
		mark, err := markStore(ctx, large)
		if err != nil {
			return 0, err
		}
		srv, err := startServer(ctx, c.bin, large, secrets)
		if err != nil {
			return 0, err
		}
		tag := fmt.Sprintf("L%d", time.Now().Unix())
		w := newWorkload(tag, ordersFor(64, c.duration), 77, secrets)
		if err := srv.register(ctx, w); err != nil {
			return 0, err
		}
		res := srv.ingest(ctx, w, 64, c.duration, nil)
		ratio := ""
		if fresh, ok := freshRates[64]; ok {
			ratio = fmt.Sprintf("%.2f", res.rate/fresh.rate)
		}
		add(row{"ingest, large store, concurrency 64", res.String(), ratio, "ratio to fresh, concurrency 64"})
		peakRSS = max(peakRSS, srv.peakRSS())
		if err := srv.stop(); err != nil {
			return 0, err
		}
		for _, job := range []string{"reconcile", "report"} {
			d, err := timeCommand(ctx, c.bin, job, large)
			if err != nil {
				return 0, err
			}
			add(row{fmt.Sprintf("orderstate %s on the large store (whole command)", job), d.Round(time.Millisecond).String(), "", ""})
		}
		fmt.Fprintln(os.Stderr, "  taking this run's orders out of the large store again")
		if err := sqlite.TrimTo(ctx, large, mark); err != nil {
			return 0, fmt.Errorf("trim %s back (rm %s* to rebuild it): %w", large, large, err)
		}
	}
	return peakRSS, nil
}
