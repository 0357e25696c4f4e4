package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tokenz"
)

// inFlight reads the orderstate_webhooks_in_flight gauge.
func (s *testSidecar) inFlight() int {
	s.t.Helper()
	_, body := s.do("GET", "/metrics", nil, nil)
	m := regexp.MustCompile(`(?m)^orderstate_webhooks_in_flight (\d+)`).FindSubmatch(body)
	require.NotNil(s.t, m, "no in-flight gauge")
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestSlowClients_Slowloris opens many connections that send their headers
// a few bytes at a time and never finish. Every other client must still be
// served promptly, and the server must drop the slow ones once the
// read-header timeout (5s) has passed.
func TestSlowClients_Slowloris(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	const slow = 200
	var wg sync.WaitGroup
	closed := make(chan time.Duration, slow)
	start := time.Now()
	for i := range slow {
		conn, err := net.Dial("tcp", s.server.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := fmt.Fprintf(conn, "POST /webhooks/tazapay HTTP/1.1\r\nHost: x\r\n"); err != nil {
				return
			}
			for j := 0; ; j++ {
				if _, err := fmt.Fprintf(conn, "X-Slow-%d-%d: a\r\n", i, j); err != nil {
					closed <- time.Since(start)
					return
				}
				// A read with a short deadline notices the server hanging up.
				_ = conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
				if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
					closed <- time.Since(start)
					return
				}
				if time.Since(start) > 15*time.Second {
					return
				}
			}
		}()
	}
	good := tazapayEvent("evt_s1", "checkout.paid", "2025-05-14T06:41:22Z", "chk_s1", "pay_s1", "order_s1", "paid", 100)
	for i := range 10 {
		t0 := time.Now()
		st, body := s.do("GET", "/healthz", nil, nil)
		require.Equal(t, http.StatusOK, st)
		b := append([]byte{}, good...)
		b = []byte(strings.Replace(string(b), "evt_s1", fmt.Sprintf("evt_s1_%d", i), 1))
		st, body = s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
		require.Equal(t, http.StatusOK, st, string(body))
		st, _ = s.do("GET", "/v1/checkouts/tazapay/chk_s1", nil, nil)
		require.Equal(t, http.StatusOK, st)
		require.Less(t, time.Since(t0), 2*time.Second, "a normal client waited behind %d slow ones", slow)
	}
	wg.Wait()
	close(closed)
	n := 0
	var last time.Duration
	for d := range closed {
		n++
		last = max(last, d)
	}
	require.Equal(t, slow, n, "the server kept slow connections open past its read-header timeout")
	require.Less(t, last, 10*time.Second)
	t.Logf("%d slow connections dropped by %s; normal clients served throughout", n, last.Round(100*time.Millisecond))
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestSlowClients_InFlightCap fills the webhook slots with webhooks waiting
// on the store, as they wait while another process holds its write lock.
// The next webhook must get 503 with a Retry-After at once, not wait in a
// queue, while the shop API and the liveness probe are still served; once
// the lock is released the waiting ones are stored, and webhooks are taken
// again.
func TestSlowClients_InFlightCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "o.db")
	s := startTestSidecar(t, dbPath, func(f *serveFlags) { f.maxInFlight, f.store.busyTimeout = 2, time.Minute })
	other, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	defer other.Close()
	lock, err := other.Conn(ctx)
	require.NoError(t, err)
	defer lock.Close()
	_, err = lock.ExecContext(ctx, `BEGIN IMMEDIATE`)
	require.NoError(t, err)

	post := func(b []byte) (int, string, error) {
		req, err := http.NewRequest("POST", s.server.URL()+"/webhooks/tazapay", bytes.NewReader(b))
		if err != nil {
			return 0, "", err
		}
		req.Header = signedTazapay(b)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	type answer struct {
		status int
		body   string
		err    error
	}
	held := make(chan answer, 2)
	for i := range 2 {
		b := tazapayEvent(fmt.Sprintf("evt_c%d", i), "checkout.paid", "2025-05-14T06:41:22Z", fmt.Sprintf("chk_c%d", i), "pay_c", "", "paid", 100)
		go func() {
			st, body, err := post(b)
			held <- answer{st, body, err}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.inFlight() < 2 {
		require.False(t, time.Now().After(deadline), "the webhooks never took their slots")
		time.Sleep(5 * time.Millisecond)
	}

	b := tazapayEvent("evt_c9", "checkout.paid", "2025-05-14T06:41:22Z", "chk_c9", "pay_c9", "", "paid", 100)
	req, err := http.NewRequest("POST", s.server.URL()+"/webhooks/tazapay", strings.NewReader(string(b)))
	require.NoError(t, err)
	req.Header = signedTazapay(b)
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, string(body))
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Contains(t, string(body), `"code": "overloaded"`)
	require.Contains(t, string(body), "too many webhooks in flight")
	require.Less(t, time.Since(t0), time.Second, "the refusal waited")
	for _, path := range []string{"/healthz", "/v1/anomalies"} {
		st, _ := s.do("GET", path, nil, nil)
		require.Equal(t, http.StatusOK, st, path)
	}

	_, err = lock.ExecContext(ctx, `ROLLBACK`)
	require.NoError(t, err)
	for range 2 {
		a := <-held
		require.NoError(t, a.err)
		require.Equal(t, http.StatusOK, a.status, "a webhook that held a slot, once the store was free: %s", a.body)
	}
	st, got, err := post(b)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, st, "the refused webhook, retried once a slot is free: %s", got)
	require.Contains(t, got, `"result": "applied"`)
	_, metrics := s.do("GET", "/metrics", nil, nil)
	require.Contains(t, string(metrics), `orderstate_webhooks_total{provider="tazapay",result="overloaded"} 1`)
}

// tokenzPaid is a Tokenz order.succeeded webhook body.
func tokenzPaid(eventID, orderID string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"object":"event","createdAt":"2024-07-02T14:03:17.905Z","test":false,`+
		`"eventData":{"type":"order.succeeded","version":"1.0.0","data":{"id":%q,"object":"order",`+
		`"amount":{"amount":32800,"currency":"TWD"},"createdAt":"2024-07-02T13:58:40.002Z"}}}`, eventID, orderID)
}

// syncBuffer collects a server's log while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// gauges sums the named gauges of /metrics.
func (s *testSidecar) gauges(names ...string) int {
	s.t.Helper()
	_, body := s.do("GET", "/metrics", nil, nil)
	n := 0
	for _, name := range names {
		if m := regexp.MustCompile(`(?m)^` + name + ` (\d+)`).FindSubmatch(body); m != nil {
			v, _ := strconv.Atoi(string(m[1]))
			n += v
		}
	}
	return n
}

// TestSlowClients_SlowBodiesHoldNoSlot opens several times more webhook
// connections than there are in-flight slots, each sending its headers and
// the first byte of its body and then nothing. A webhook whose body came
// whole must still be stored at once: a slot is for handling a webhook, not
// for waiting on its sender. The stalled ones get 408 once --body-timeout
// has passed, each counted and logged as a warning, none as an error.
func TestSlowClients_SlowBodiesHoldNoSlot(t *testing.T) {
	t.Parallel()
	const (
		slots  = 128
		stalls = 384 // about 2×384 descriptors: the client and the server end of each
		limit  = 3 * time.Second
	)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := startLoggedSidecar(t, filepath.Join(t.TempDir(), "o.db"), log, func(f *serveFlags) {
		f.maxInFlight, f.bodyTimeout = slots, limit
	})
	head := "POST /webhooks/tokenz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{"
	conns := make([]net.Conn, stalls)
	stalledAt := time.Now()
	for i := range conns {
		conn, err := net.Dial("tcp", s.server.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		_, err = io.WriteString(conn, head)
		require.NoError(t, err)
		conns[i] = conn
	}
	// Wait until the server is reading at least as many stalled bodies as
	// it has slots: before the fix, until every slot was held by one.
	deadline := time.Now().Add(limit)
	for s.gauges("orderstate_webhooks_in_flight", "orderstate_webhooks_receiving") < slots {
		require.False(t, time.Now().After(deadline), "the stalled webhooks never reached the server")
		time.Sleep(10 * time.Millisecond)
	}

	for i := range 5 {
		b := tokenzPaid(fmt.Sprintf("event_slow_%d", i), fmt.Sprintf("order_slow_%d", i))
		t0 := time.Now()
		st, body := s.do("POST", "/webhooks/tokenz", b, tokenz.Sign(testTokenzSecret, b, time.Now()))
		took := time.Since(t0)
		require.NotEqual(t, http.StatusServiceUnavailable, st, "%d stalled bodies held the %d slots: %s", stalls, slots, body)
		require.Equal(t, http.StatusOK, st, string(body))
		require.Contains(t, string(body), `"result": "applied"`)
		require.Less(t, took, time.Second, "a complete webhook waited behind stalled ones")
	}
	require.Less(t, time.Since(stalledAt), limit, "the complete webhooks were not all served while the others stalled")

	for i, conn := range conns {
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(limit+2*time.Second)))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err, "stalled webhook %d got no answer", i)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "stalled webhook %d: %s", i, body)
		require.Contains(t, string(body), `"code": "timeout"`)
		require.Contains(t, string(body), "did not arrive within 3s")
		require.True(t, resp.Close, "the rest of the body is never read: the connection must close")
	}
	require.GreaterOrEqual(t, time.Since(stalledAt), limit, "a stalled body was cut off before --body-timeout")
	require.Zero(t, s.gauges("orderstate_webhooks_in_flight", "orderstate_webhooks_receiving"))
	_, metrics := s.do("GET", "/metrics", nil, nil)
	require.Contains(t, string(metrics), fmt.Sprintf(`orderstate_webhooks_total{provider="tokenz",result="timeout"} %d`, stalls))
	require.Equal(t, stalls, strings.Count(logs.String(), `level=WARN msg="webhook body too slow" provider=tokenz`), "one warning per stalled body")
	require.NotContains(t, logs.String(), "level=ERROR")
}
