package main

import (
	"bufio"
	"fmt"
	"io"
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

// TestSlowClients_InFlightCap fills the webhook slots with requests whose
// bodies are still arriving. The next webhook must get 503 with a
// Retry-After at once, not wait in a queue, while the shop API and the
// probes are still served; once the slots free, webhooks are taken again.
func TestSlowClients_InFlightCap(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"), func(f *serveFlags) { f.maxInFlight = 2 })
	type slowReq struct {
		conn net.Conn
		rest []byte
	}
	var held []slowReq
	for i := range 2 {
		b := tazapayEvent(fmt.Sprintf("evt_c%d", i), "checkout.paid", "2025-05-14T06:41:22Z", fmt.Sprintf("chk_c%d", i), "pay_c", "", "paid", 100)
		conn, err := net.Dial("tcp", s.server.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "POST /webhooks/tazapay HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nSignature: %s\r\nContent-Length: %d\r\n\r\n%s",
			signedTazapay(b).Get("Signature"), len(b), b[:10])
		held = append(held, slowReq{conn, b[10:]})
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.inFlight() < 2 {
		require.False(t, time.Now().After(deadline), "the slow webhooks never took their slots")
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
	for _, path := range []string{"/healthz", "/readyz", "/v1/anomalies"} {
		st, _ := s.do("GET", path, nil, nil)
		require.Equal(t, http.StatusOK, st, path)
	}

	for _, h := range held {
		_, err := h.conn.Write(h.rest)
		require.NoError(t, err)
		_ = h.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(h.conn), nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "a slow webhook, once complete")
	}
	st, body := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
	require.Equal(t, http.StatusOK, st, "the refused webhook, retried once a slot is free: %s", body)
	require.Contains(t, string(body), `"result": "applied"`)
	_, metrics := s.do("GET", "/metrics", nil, nil)
	require.Contains(t, string(metrics), `orderstate_webhooks_total{provider="tazapay",result="overloaded"} 1`)
}
