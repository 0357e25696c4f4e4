package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// sendEnv is the environment serve's test secrets are in.
func sendEnv(s *testSidecar) map[string]string {
	return map[string]string{"ORDERSTATE_TAZAPAY_SECRET": testTazapaySecret, "ORDERSTATE_TOKENZ_SECRET": testTokenzSecret,
		"ORDERSTATE_YOCO_SECRET": testYocoSecret, "ORDERSTATE_TWEED_SECRET": testTweedSecret, "ORDERSTATE_ADDR": s.server.Addr()}
}

// answer is the JSON orderstate send printed after the status line.
func answer(t *testing.T, out string) engine.IngestResult {
	t.Helper()
	_, body, ok := strings.Cut(out, " 200 OK\n")
	require.True(t, ok, out)
	var res engine.IngestResult
	require.NoError(t, json.Unmarshal([]byte(body), &res), out)
	return res
}

// orderstate send drives a running sidecar: for every provider a webhook
// built and signed as the provider does moves the registered order; the
// same event id again is a duplicate; a wrong secret is refused.
func TestSend_EveryProviderToARunningSidecar(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	env := sendEnv(s)
	for _, tc := range []struct{ provider, typ, currency string }{
		{"tazapay", "checkout.paid", "USD"}, {"tokenz", "order.succeeded", "TWD"}, {"yoco", "payment.succeeded", "ZAR"}, {"tweed", "DONE", "EUR"},
	} {
		checkout := "chk_send_" + tc.provider
		reg := fmt.Sprintf(`{"provider":%q,"checkout_id":%q,"amount":4999,"currency":%q}`, tc.provider, checkout, tc.currency)
		st, body := s.do("PUT", "/v1/orders/order_"+tc.provider, []byte(reg), nil)
		require.Equal(t, http.StatusOK, st, string(body))

		out, _, err := cli(t, env, "send", tc.provider, "--type", tc.typ, "--checkout", checkout, "--amount", "4999",
			"--currency", strings.ToLower(tc.currency), "--event-id", "evt_send_"+tc.provider, "--order", "order_"+tc.provider)
		require.NoError(t, err, out)
		require.Regexp(t, `^POST http://127\.0\.0\.1:\d+/webhooks/`+tc.provider+`: `+tc.provider+` `+regexp.QuoteMeta(tc.typ)+
			`, event \S+, checkout `+checkout+`, \d+ bytes, signed with ORDERSTATE_`+strings.ToUpper(tc.provider)+`_SECRET\nHTTP/1\.1 200 OK\n`, out)
		res := answer(t, out)
		require.Equal(t, sm.Applied, res.Result, tc.provider)
		require.Equal(t, "order_"+tc.provider, res.OrderID)
		require.Equal(t, sm.Paid, res.State)
		_, o := s.order("order_" + tc.provider)
		require.Equal(t, int64(4999), o.Captured, tc.provider)
		require.Empty(t, o.Anomalies, "%s: amount, currency and mode as registered", tc.provider)

		// The provider flag, and the same event again: a redelivery.
		out, _, err = cli(t, env, "send", "--provider", tc.provider, "--type", tc.typ, "--checkout", checkout, "--amount", "4999",
			"--currency", tc.currency, "--event-id", "evt_send_"+tc.provider)
		require.NoError(t, err, out)
		if tc.provider != "yoco" && tc.provider != "tweed" {
			// Yoco deduplicates on its delivery id, Tweed on the body, and
			// each send is a new delivery, made at a new time.
			require.Equal(t, sm.Duplicate, answer(t, out).Result, tc.provider)
		}
	}

	// Signed with another secret than serve's: refused, and said so.
	wrong := sendEnv(s)
	wrong["ORDERSTATE_TAZAPAY_SECRET"] = "not-the-secret"
	out, _, err := cli(t, wrong, "send", "tazapay", "--type", "checkout.paid", "--checkout", "chk_x", "--amount", "1")
	require.EqualError(t, err, "orderstate answered 401 Unauthorized")
	require.Contains(t, out, `"code": "unauthorized"`)

	// The body of a file, signed as it is.
	out, _, err = cli(t, env, "send", "tazapay", "--body", "../../testdata/tazapay/checkout_paid.json")
	require.NoError(t, err, out)
	require.Contains(t, out, "tazapay webhook from ../../testdata/tazapay/checkout_paid.json")
	require.Equal(t, sm.Applied, answer(t, out).Result)

	// --dry-run prints the signed request and sends nothing.
	out, _, err = cli(t, env, "send", "tazapay", "--type", "checkout.created", "--checkout", "chk_dry", "--dry-run")
	require.NoError(t, err)
	require.Contains(t, out, "POST http://"+s.server.Addr()+"/webhooks/tazapay\n")
	require.Contains(t, out, tazapay.SignatureHeader+": ")
	st, _ := s.do("GET", "/v1/checkouts/tazapay/chk_dry", nil, nil)
	require.Equal(t, http.StatusNotFound, st)

	for _, bad := range []struct {
		args []string
		msg  string
	}{
		{[]string{"send", "tazapay", "--type", "checkout.payd", "--checkout", "c"}, `tazapay has no event type "checkout.payd" here; types: checkout.created,`},
		{[]string{"send", "tazapay", "--type", "checkout.paid", "--checkout", "c", "--currency", "ABC"}, `--currency "ABC" is not an ISO 4217 currency code`},
		{[]string{"send", "stripe", "--type", "x"}, `no provider "stripe"; providers: tazapay, tokenz, tweed, yoco`},
		{[]string{"send", "--type", "checkout.paid"}, "give the provider"},
		{[]string{"send", "tazapay", "--checkout", "c"}, "give the event type with --type; tazapay's: checkout.created"},
		{[]string{"send", "tazapay", "--type", "checkout.paid"}, "give the checkout id"},
		{[]string{"send", "tazapay", "--body", "x.json", "--type", "checkout.paid"}, "--body sends the file as it is"},
		{[]string{"send", "tazapay", "--replay", "1"}, "--replay sends a stored request as it was"},
	} {
		_, _, err := cli(t, env, bad.args...)
		require.ErrorContains(t, err, bad.msg, "%v", bad.args)
	}
	_, _, err = cli(t, map[string]string{}, "send", "yoco", "--type", "payment.succeeded", "--checkout", "c")
	require.EqualError(t, err, "no yoco secret to sign with: set ORDERSTATE_YOCO_SECRET (the one serve uses) or --yoco-secret")
	_, _, err = cli(t, map[string]string{}, "send", "tazapay", "--type", "checkout.paid", "--checkout", "c", "--url", "http://127.0.0.1:1",
		"--tazapay-secret", "x")
	require.ErrorContains(t, err, "cannot reach orderstate at http://127.0.0.1:1 (is serve running?")
}

// --replay re-sends a stored request, signed anew: orderstate takes it for
// the redelivery it is. A purged one cannot be re-sent.
func TestSend_Replay(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "o.db")
	s := startTestSidecar(t, path)
	env := sendEnv(s)
	env["ORDERSTATE_DB"] = path
	seqs := map[string]int64{}
	for provider, typ := range map[string]string{"yoco": "payment.succeeded", "tazapay": "checkout.paid", "tokenz": "order.succeeded", "tweed": "DONE"} {
		out, _, err := cli(t, env, "send", provider, "--type", typ, "--checkout", "chk_replay_"+provider, "--amount", "700")
		require.NoError(t, err, out)
		seqs[provider] = answer(t, out).Seq
	}
	for provider, seq := range seqs {
		out, _, err := cli(t, env, "send", "--replay", fmt.Sprint(seq))
		require.NoError(t, err, out)
		require.Contains(t, out, fmt.Sprintf("%s event ", provider))
		require.Contains(t, out, fmt.Sprintf("(seq %d) as received at ", seq))
		res := answer(t, out)
		require.Equal(t, sm.Duplicate, res.Result, "%s: the same delivery, again", provider)
		// A duplicate's seq replays its original.
		out, _, err = cli(t, env, "send", "--replay", fmt.Sprint(res.Seq))
		require.NoError(t, err, out)
		require.Contains(t, out, fmt.Sprintf("(seq %d)", seq))
	}
	_, _, err := cli(t, env, "send", "--replay", "9999")
	require.EqualError(t, err, "no event 9999")

	_, _, err = cli(t, env, "reconcile", "--retain-raw", "1ns")
	require.NoError(t, err)
	_, _, err = cli(t, env, "send", "--replay", fmt.Sprint(seqs["tazapay"]))
	require.ErrorContains(t, err, fmt.Sprintf("the raw request of event %d was purged at ", seqs["tazapay"]))
}

// healthcheck exits 0 on a ready sidecar and fails on one that is not
// there; the static binary does the same, as a container runs it.
func TestHealthcheck(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	out, _, err := cli(t, map[string]string{"ORDERSTATE_ADDR": s.server.Addr()}, "healthcheck")
	require.NoError(t, err)
	require.Equal(t, "ready\n", out)
	_, port, _ := strings.Cut(s.server.Addr(), ":")
	out, _, err = cli(t, map[string]string{"ORDERSTATE_ADDR": "0.0.0.0:" + port}, "healthcheck")
	require.NoError(t, err, "a wildcard address is reached through the loopback one")
	require.Equal(t, "ready\n", out)

	cmd := exec.CommandContext(context.Background(), binary(t), "healthcheck")
	cmd.Env = []string{"ORDERSTATE_ADDR=:" + port}
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))

	_, _, err = cli(t, nil, "healthcheck", "--url", "http://127.0.0.1:1")
	require.ErrorContains(t, err, "not ready: ")
	require.NoError(t, s.stop())
	cmd = exec.CommandContext(context.Background(), binary(t), "healthcheck", "--timeout", "1s")
	cmd.Env = []string{"ORDERSTATE_ADDR=127.0.0.1:" + port}
	b, err = cmd.CombinedOutput()
	require.Error(t, err, "a stopped sidecar is not healthy: %s", b)
	require.Equal(t, 1, cmd.ProcessState.ExitCode())
}

func TestLocalURL(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{"": "http://127.0.0.1:8080", "127.0.0.1:9000": "http://127.0.0.1:9000", ":8080": "http://127.0.0.1:8080",
		"0.0.0.0:80": "http://127.0.0.1:80", "[::]:8080": "http://[::1]:8080", "sidecar.local:8080": "http://sidecar.local:8080"} {
		require.Equal(t, want, localURL(func(string) string { return addr }), addr)
	}
}
