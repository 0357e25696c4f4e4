package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderstate/orderstate/engine/postgres/pgtest"
	"github.com/orderstate/orderstate/engine/sqlite"
)

// The secrets every subprocess is started with, through the environment as
// an operator would set them.
const (
	tokenzSecret  = "tokenz-endpoint-secret-5f1c"
	yocoSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	tazapaySecret = "tzp_live_secret_0123456789abcdef"
	tweedSecret   = "tweed-merchant-secret-7c2e"
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := pgtest.Run(m)
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary builds cmd/orderstate once per test run, without the race
// detector even when the tests have it: under it SQLite is an order of
// magnitude slower, and the subprocess is the system under test, not the
// code being checked for races.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "orderstate-reliability-")
		if buildErr != nil {
			return
		}
		// Readable by all, for the test that runs the binary as another user.
		_ = os.Chmod(buildDir, 0o755)
		binPath = filepath.Join(buildDir, "orderstate")
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		cmd := exec.Command(goBin, "build", "-o", binPath, "github.com/orderstate/orderstate/cmd/orderstate")
		// Static, as the Dockerfile builds it; cmd/orderstate's tests build
		// it so too, and the two builds share their compiled packages.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// syncBuffer collects a subprocess's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is one running `orderstate serve`.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	exited chan struct{}
	err    error // what Wait returned, once exited is closed
	client *http.Client
}

// procOpts are what differ between the tests' subprocesses.
type procOpts struct {
	args []string // more flags for serve
	env  []string // more NAME=value pairs
	// noWait returns as soon as the process is started, before it serves.
	noWait bool
	// sysProc is set on the command (to run as another user).
	sysProc *syscall.SysProcAttr
	// dir is the working directory, which holds the reports; the SQLite
	// file's directory when empty.
	dir string
}

// baseEnv is the test's environment without any ORDERSTATE_* variable a
// developer may have set, plus the four secrets.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ORDERSTATE_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"ORDERSTATE_TOKENZ_SECRET="+tokenzSecret,
		"ORDERSTATE_YOCO_SECRET="+yocoSecret,
		"ORDERSTATE_TAZAPAY_SECRET="+tazapaySecret,
		"ORDERSTATE_TWEED_SECRET="+tweedSecret,
	)
}

// startProc runs `orderstate serve` on the store db (a SQLite file or a
// postgres:// URL), on a port the
// kernel picks, and waits until it answers /readyz (unless opts.noWait).
func startProc(t testing.TB, db string, opts procOpts) *proc {
	t.Helper()
	dir := opts.dir
	if dir == "" {
		dir = filepath.Dir(db)
	}
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db, "--log-format", "json",
		"--reports-dir", filepath.Join(dir, "reports"), "--sweep-schedule", "@every 1h", "--report-schedule", "@every 24h"},
		opts.args...)
	p := &proc{t: t, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(baseEnv(), opts.env...)
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = opts.sysProc
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start orderstate: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	p.client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(func() { p.kill() })
	if opts.noWait {
		return p
	}
	if err := p.waitServing(30 * time.Second); err != nil {
		p.kill()
		t.Fatalf("orderstate did not start: %v\n%s", err, p.stderr.String())
	}
	return p
}

// waitServing reads the address from the "orderstate serving" log line and
// polls /readyz until it answers 200.
func (p *proc) waitServing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for p.url == "" {
		if addr := servingAddr(p.stderr.String()); addr != "" {
			p.url = addr
			break
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited: %v", p.err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("no \"orderstate serving\" line in its log")
		}
	}
	for {
		if st, _, err := p.get("/readyz"); err == nil && st == http.StatusOK {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited: %v", p.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("/readyz never answered 200")
		}
	}
}

func servingAddr(log string) string {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "orderstate serving" {
			return line.Addr
		}
	}
	return ""
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.client.CloseIdleConnections()
}

// term sends SIGTERM and returns the exit code once the process is gone.
func (p *proc) term(timeout time.Duration) int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(timeout)
}

// wait returns the exit code once the process exits on its own.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.kill()
		p.t.Fatalf("orderstate still running after %s\n%s", timeout, p.stderr.String())
	}
	p.client.CloseIdleConnections()
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) get(path string) (int, []byte, error) {
	return p.do(context.Background(), http.MethodGet, path, nil, nil)
}

func (p *proc) do(ctx context.Context, method, path string, body []byte, h http.Header) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, p.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// post delivers one webhook, signed afresh as a provider's retry is.
func (p *proc) post(ctx context.Context, h *hook) (int, ingestResult, error) {
	st, b, err := p.do(ctx, http.MethodPost, "/webhooks/"+h.provider, h.body, h.header(time.Now()))
	var res ingestResult
	if err == nil && st == http.StatusOK {
		err = json.Unmarshal(b, &res)
	} else if err == nil {
		res.Error = string(b)
	}
	return st, res, err
}

// ingestResult is the body of a 2xx webhook answer, or the error body.
type ingestResult struct {
	Seq    int64  `json:"seq"`
	Result string `json:"result"`
	Error  string `json:"-"`
}

// errorBody is every error answer's shape.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// openStore opens the SQLite file read-only with the store package's
// Inspector, the way an auditor would: plain queries of what the file
// holds, through none of the server's ingest or read paths.
func openStore(t testing.TB, path string) *sqlite.Inspector {
	t.Helper()
	in, err := sqlite.Inspect(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

// runReplay runs `orderstate replay --db` and returns how many orders it
// says would change, and its output.
func runReplay(t testing.TB, db string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary(t), "replay", "--db", db)
	cmd.Env = baseEnv()
	cmd.Dir = filepath.Dir(db)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("orderstate replay: %v\n%s", err, out)
	}
	var orders, diffs int
	for _, line := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(line, "replayed %d orders: %d would change", &orders, &diffs); err == nil {
			return diffs, string(out)
		}
	}
	t.Fatalf("orderstate replay printed no summary:\n%s", out)
	return 0, ""
}
