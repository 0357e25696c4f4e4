package main

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/cmd/orderstate/api"
)

func TestAccess_BearerTokenOnEveryShopRoute(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token-7f3a"
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"), func(f *serveFlags) { f.token = token })
	routes := []struct{ method, path, body string }{
		{"GET", "/v1/orders/o1", ""},
		{"PUT", "/v1/orders/o1", `{"provider":"tazapay","checkout_id":"chk_1","amount":100,"currency":"USD","mode":"live"}`},
		{"POST", "/v1/orders/o1/redirect", `{"outcome":"success"}`},
		{"GET", "/v1/checkouts/tazapay/chk_1", ""},
		{"GET", "/v1/anomalies", ""},
		{"POST", "/v1/anomalies/1/ack", `{"note":"seen"}`},
		{"GET", "/v1/reports", ""},
		{"GET", "/v1/reports/1", ""},
	}
	refused := []struct{ name, value string }{
		{"Missing", ""},
		{"SchemeOnly", "Bearer"},
		{"SchemeAndSpace", "Bearer "},
		{"Prefix", "Bearer " + token[:len(token)-1]},
		{"FirstCharacter", "Bearer " + token[:1]},
		{"Suffix", "Bearer " + token + "x"},
		{"WrongCase", "Bearer S3CRET-TOKEN-7F3A"},
		{"NoScheme", token},
		{"OtherScheme", "Token " + token},
		{"Basic", "Basic czNjcmV0LXRva2VuLTdmM2E6"},
		{"TwoSpaces", "Bearer  " + token},
		{"TrailingJunk", "Bearer " + token + " extra"},
		{"Wrong", "Bearer not-the-token"},
	}
	for _, r := range routes {
		for _, a := range refused {
			h := http.Header{}
			if a.value != "" {
				h.Set("Authorization", a.value)
			}
			st, body := s.do(r.method, r.path, []byte(r.body), h)
			require.Equal(t, http.StatusUnauthorized, st, "%s %s with %s: %s", r.method, r.path, a.name, body)
			require.Contains(t, string(body), "a valid bearer token is required", "%s %s with %s", r.method, r.path, a.name)
		}
	}
	// A route that is not there, or a method a route does not take, is
	// refused for the token too: the answer would say what exists.
	for _, r := range []struct{ method, path string }{{"DELETE", "/v1/orders/o1"}, {"GET", "/v1/orders/o1/redirect"},
		{"GET", "/v1/nothing"}, {"POST", "/v1"}} {
		st, body := s.do(r.method, r.path, nil, nil)
		require.Equal(t, http.StatusUnauthorized, st, "%s %s: %s", r.method, r.path, body)
	}
	st, body := s.do("DELETE", "/v1/orders/o1", nil, http.Header{"Authorization": {"Bearer " + token}})
	require.Equal(t, http.StatusMethodNotAllowed, st, string(body))
	st, body = s.do("GET", "/v1/nothing", nil, http.Header{"Authorization": {"Bearer " + token}})
	require.Equal(t, http.StatusNotFound, st, string(body))
	st, body = s.do("DELETE", "/healthz", nil, nil)
	require.Equal(t, http.StatusMethodNotAllowed, st, "outside /v1 no token is asked: %s", body)

	// A wrong token first and the right one second: only the first counts.
	req, err := http.NewRequest("GET", s.server.URL()+"/v1/anomalies", nil)
	require.NoError(t, err)
	req.Header.Add("Authorization", "Bearer wrong")
	req.Header.Add("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, `Bearer realm="orderstate"`, resp.Header.Get("WWW-Authenticate"))

	for _, scheme := range []string{"Bearer ", "bearer ", "BEARER "} {
		for _, r := range routes {
			st, body := s.do(r.method, r.path, []byte(r.body), http.Header{"Authorization": {scheme + token}})
			require.NotEqual(t, http.StatusUnauthorized, st, "%s %s with %q: %s", r.method, r.path, scheme, body)
		}
	}
	// Providers cannot send the shop's token; probes and scrapers need none.
	good := tazapayEvent("evt_a1", "checkout.paid", "2025-05-14T06:41:22Z", "chk_a1", "pay_a1", "order_a1", "paid", 100)
	st, body = s.do("POST", "/webhooks/tazapay", good, signedTazapay(good))
	require.Equal(t, http.StatusOK, st, string(body))
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		st, body := s.do("GET", path, nil, nil)
		require.Equal(t, http.StatusOK, st, "%s: %s", path, body)
	}
}

func TestAccess_TokenFromTheEnvironmentAndNoneByDefault(t *testing.T) {
	t.Parallel()
	var f serveFlags
	fs := newFlagSet("serve", "serve", io.Discard)
	f.register(fs)
	require.NoError(t, parse(fs, nil, func(k string) string {
		if k == "ORDERSTATE_TOKEN" {
			return "from-env"
		}
		return ""
	}))
	require.Equal(t, "from-env", f.token)

	// With no token configured the shop API is open: the default bind keeps
	// it on the host.
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	st, body := s.do("GET", "/v1/anomalies", nil, nil)
	require.Equal(t, http.StatusOK, st, string(body))
}

func TestAccess_DefaultBindIsLoopback(t *testing.T) {
	t.Parallel()
	var f serveFlags
	fs := newFlagSet("serve", "serve", io.Discard)
	f.register(fs)
	require.NoError(t, parse(fs, nil, func(string) string { return "" }))
	require.Equal(t, "127.0.0.1:8080", f.addr, "serve with no flags and no environment")
	require.Equal(t, "127.0.0.1:8080", api.DefaultAddr)
	require.Equal(t, "127.0.0.1:8080", api.New(api.Config{}, nil, nil, nil, nil, nil).Addr(), "the server's own default")
	def := fs.Lookup("addr")
	require.Equal(t, "127.0.0.1:8080", def.DefValue, "what --help shows")

	var g serveFlags
	fs = newFlagSet("serve", "serve", io.Discard)
	g.register(fs)
	require.NoError(t, parse(fs, nil, func(k string) string {
		if k == "ORDERSTATE_ADDR" {
			return "0.0.0.0:9000"
		}
		return ""
	}))
	require.Equal(t, "0.0.0.0:9000", g.addr, "ORDERSTATE_ADDR opts in to another interface")

	// The port-0 server the tests run listens on loopback only.
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	host, _, err := net.SplitHostPort(s.server.Addr())
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)
}
