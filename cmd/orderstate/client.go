package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/orderstate/orderstate/cmd/orderstate/api"
)

// localURL is the address of the sidecar serve runs with the same
// environment: ORDERSTATE_ADDR (127.0.0.1:8080 by default), with an
// address that listens on every interface (":8080", "0.0.0.0:8080")
// reached through the loopback one.
func localURL(env func(string) string) string {
	addr := env("ORDERSTATE_ADDR")
	if addr == "" {
		addr = api.DefaultAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// urlFlag is a command's --url: where the sidecar is.
func urlFlag(u string, env func(string) string) string {
	if u == "" {
		u = localURL(env)
	}
	return strings.TrimRight(u, "/")
}

// runHealthcheck asks the sidecar's /readyz and exits 0 when it answers
// ready: a container's HEALTHCHECK, in an image with no curl or shell.
func runHealthcheck(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("healthcheck", "healthcheck [--url http://127.0.0.1:8080] [--timeout 3s]", stderr)
	u := fs.String("url", "", "the sidecar's base URL (default: from ORDERSTATE_ADDR, http://127.0.0.1:8080)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := parseNoArgs(fs, args, env); err != nil {
		return err
	}
	if err := positive("timeout", *timeout, "3s"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	target := urlFlag(*u, env) + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("--url %q: %w", *u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s answered %s: %s", target, resp.Status, term(strings.TrimSpace(string(body))))
	}
	_, err = fmt.Fprintln(stdout, "ready")
	return err
}
