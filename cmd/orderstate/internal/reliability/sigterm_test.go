package reliability

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// gauge reads one of the server's gauges, orderstate_webhooks_<name>.
func (p *proc) gauge(t *testing.T, name string) int {
	t.Helper()
	st, body, err := p.get("/metrics")
	if err != nil || st != http.StatusOK {
		t.Fatalf("/metrics: %d %v", st, err)
	}
	m := regexp.MustCompile(`(?m)^orderstate_webhooks_` + name + ` (\d+)`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no orderstate_webhooks_%s:\n%s", name, body)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// slowPost starts delivering h over a raw connection and sends only half
// the body; finish sends the rest and reads the answer.
func (p *proc) slowPost(t *testing.T, h *hook) (finish func() (*http.Response, error)) {
	t.Helper()
	u, err := url.Parse(p.url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /webhooks/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", h.provider, u.Host, len(h.body))
	for k, vs := range h.header(time.Now()) {
		for _, v := range vs {
			fmt.Fprintf(conn, "%s: %s\r\n", k, v)
		}
	}
	half := len(h.body) / 2
	if _, err := fmt.Fprintf(conn, "\r\n%s", h.body[:half]); err != nil {
		t.Fatal(err)
	}
	return func() (*http.Response, error) {
		if _, err := conn.Write(h.body[half:]); err != nil {
			return nil, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		return http.ReadResponse(bufio.NewReader(conn), nil)
	}
}

// TestSIGTERMDrainsInFlight sends SIGTERM while webhooks are in flight,
// one of them with its body still arriving. serve must stop taking new
// connections, finish and commit every request it already has, and exit 0;
// nothing it acknowledged may be missing from the file.
func TestSIGTERMDrainsInFlight(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "term.db")
	p := startProc(t, dbPath, procOpts{})
	l := &ledger{prefix: "t", rng: rand.New(rand.NewPCG(3, 4))}

	var slow *hook
	for slow == nil || slow.provider != "tazapay" {
		slow = l.newHook()
	}
	finish := p.slowPost(t, slow)
	deadline := time.Now().Add(10 * time.Second)
	// A body still arriving holds no in-flight slot yet: it is receiving.
	for p.gauge(t, "receiving") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the slow webhook never reached the server")
		}
		time.Sleep(5 * time.Millisecond)
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				h := l.newHook()
				st, res, err := p.post(ctx, h)
				if l.record(t, h, st, res, err) {
					mu.Lock()
					acked++
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(150 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Give the server time to stop listening, then let the slow body in:
	// a drain that did not wait for it would have exited already.
	time.Sleep(200 * time.Millisecond)
	resp, err := finish()
	if err != nil {
		t.Fatalf("the webhook in flight at SIGTERM got no answer: %v\n%s", err, p.stderr.String())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the webhook in flight at SIGTERM: %d; want 200", resp.StatusCode)
	}
	slow.attempts, slow.acked = 1, true
	t0 := time.Now()
	code := p.wait(30 * time.Second)
	t.Logf("exit took %s", time.Since(t0))
	stop()
	wg.Wait()
	if code != 0 {
		t.Errorf("serve exited %d after SIGTERM; want 0\n%s", code, p.stderr.String())
	}
	lost := lostAcked(t, dbPath, l)
	if diffs, out := runReplay(t, dbPath); diffs != 0 {
		t.Errorf("replay: %d orders would change\n%s", diffs, out)
	}
	t.Logf("SIGTERM under load: %d webhooks acknowledged, %d lost, exit code %d", acked+1, lost, code)
}
