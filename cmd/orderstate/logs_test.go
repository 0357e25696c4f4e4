package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/cmd/orderstate/api"
)

// logLines parses a JSON log.
func logLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), "not JSON: %s", sc.Text())
		out = append(out, rec)
	}
	return out
}

// request sends one request and returns the answer's status, its request
// id and its body.
func (s *testSidecar) request(method, path string, body []byte, header http.Header) (int, string, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.server.URL()+path, bytes.NewReader(body))
	require.NoError(s.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	checkOpenAPI(s.t, method, req.URL.String(), req.Header, body, resp.StatusCode, resp.Header, b)
	return resp.StatusCode, resp.Header.Get(api.RequestIDHeader), b
}

// TestLogs_AccessLogAndRequestIDs: one access-log line per request, with
// its method, route pattern, status, duration in milliseconds, bytes,
// provider and request id; the id is the client's X-Request-Id or a new
// one, comes back on the answer and is on every line the request logged;
// no body, secret, signature or token is in the log.
func TestLogs_AccessLogAndRequestIDs(t *testing.T) {
	t.Parallel()
	const token = "log-test-token-5d1c9e"
	var buf syncBuffer
	lf := logFlags{level: "debug", format: "auto"}
	log, err := lf.logger(&buf) // not a terminal: JSON
	require.NoError(t, err)
	s := startLoggedSidecar(t, filepath.Join(t.TempDir(), "o.db"), log, func(f *serveFlags) { f.token = token })

	paid := tazapayEvent("evt_l1", "checkout.paid", "2025-05-14T06:41:22Z", "chk_l", "pay_l", "order_l", "paid", 4999)
	sig := signedTazapay(paid)
	sig.Set(api.RequestIDHeader, "shop-req-42")
	type sent struct {
		method, route, provider, id string
		status                      int
		bytes                       int
	}
	var want []sent
	do := func(method, path, route, provider string, body []byte, h http.Header, status int) string {
		st, id, b := s.request(method, path, body, h)
		require.Equal(t, status, st, "%s %s: %s", method, path, b)
		require.NotEmpty(t, id, "%s %s answers its request id", method, path)
		want = append(want, sent{method, route, provider, id, status, len(b)})
		return id
	}
	id := do("POST", "/webhooks/tazapay", "/webhooks/{provider}", "tazapay", paid, sig, 200)
	require.Equal(t, "shop-req-42", id, "the client's id is kept")
	bad := tazapay.Sign("not-the-secret", paid)
	do("POST", "/webhooks/tazapay", "/webhooks/{provider}", "tazapay", paid, bad, 401)
	do("POST", "/webhooks/madeup", "/webhooks/{provider}", "unknown", paid, signedTazapay(paid), 404)
	auth := http.Header{"Authorization": {"Bearer " + token}}
	gen := do("GET", "/v1/orders/order_l", "/v1/orders/{order_id}", "", nil, auth, 200)
	require.Regexp(t, `^[0-9a-f]{24}$`, gen, "a new id when the client sent none")
	do("GET", "/v1/orders/order_l", "/v1/orders/{order_id}", "", nil, http.Header{"Authorization": {"Bearer wrong"}}, 401)
	// An id that would break a log line or an answer's header is replaced.
	odd := do("GET", "/healthz", "/healthz", "", nil, http.Header{api.RequestIDHeader: {"x\u202ey" + strings.Repeat("z", 200)}}, 200)
	require.Regexp(t, `^[0-9a-f]{24}$`, odd)
	do("GET", "/nothing/here", "unmatched", "", nil, nil, 404)
	do("DELETE", "/healthz", "unmatched", "", nil, nil, 405)
	require.NoError(t, s.stop())

	lines := logLines(t, buf.String())
	var access []map[string]any
	for _, l := range lines {
		if l["msg"] == "request" {
			access = append(access, l)
		}
	}
	require.Len(t, access, len(want), "one access-log line per request")
	for i, w := range want {
		l := access[i]
		require.Equal(t, w.method, l["method"], "line %d", i)
		require.Equal(t, w.route, l["route"], "line %d", i)
		require.EqualValues(t, w.status, l["status"], "line %d", i)
		require.EqualValues(t, w.bytes, l["bytes"], "line %d", i)
		require.Equal(t, w.id, l["request_id"], "line %d", i)
		require.Equal(t, "INFO", l["level"])
		ms, ok := l["duration_ms"].(float64)
		require.True(t, ok, "duration in milliseconds: %v", l)
		require.True(t, ms >= 0 && ms < 10_000, "%v ms", ms)
		if w.provider != "" {
			require.Equal(t, w.provider, l["provider"], "line %d", i)
		} else {
			require.NotContains(t, l, "provider", "line %d", i)
		}
	}
	// The webhook's own debug line carries its request id, and its
	// duration in milliseconds too.
	stored := 0
	for _, l := range lines {
		if l["msg"] == "webhook stored" {
			stored++
			require.Equal(t, "shop-req-42", l["request_id"])
			require.IsType(t, float64(0), l["took_ms"])
		}
		for k, v := range l {
			// slog writes a time.Duration in JSON as nanoseconds.
			require.False(t, k == "took" || k == "duration" || k == "timeout", "a duration logged without its unit: %s=%v", k, v)
		}
	}
	require.Equal(t, 1, stored)
	log1 := buf.String()
	for _, secret := range []string{testTazapaySecret, token, "wrong", sig.Get(tazapay.SignatureHeader), bad.Get(tazapay.SignatureHeader), "evt_l1", "chk_l"} {
		require.NotContains(t, log1, secret)
	}
}

func TestLogs_FormatAndDurations(t *testing.T) {
	t.Parallel()
	// auto is JSON on anything but a terminal: a file, a pipe.
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	require.NoError(t, err)
	defer f.Close()
	lf := logFlags{level: "info", format: "auto"}
	log, err := lf.logger(f)
	require.NoError(t, err)
	log.Info("hello", "wait", 1500*time.Millisecond)
	b, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	require.JSONEq(t, `{"level":"INFO","msg":"hello","wait_ms":1500}`, regexp.MustCompile(`"time":"[^"]*",`).ReplaceAllString(string(b), ""))
	var text bytes.Buffer
	lf.format = "text"
	log, err = lf.logger(&text)
	require.NoError(t, err)
	log.Info("hello", "wait", 2*time.Second+250*time.Microsecond)
	require.Contains(t, text.String(), "msg=hello wait_ms=2000.25")
	lf.format = "xml"
	_, err = lf.logger(&text)
	require.EqualError(t, err, `--log-format "xml": want text, json or auto`)
}
