package main

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
)

// rawOf reads the raw request of event seq from the store's file.
func rawOf(t *testing.T, path string, seq int64) *engine.RawRequest {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{Logger: discardLogger()})
	require.NoError(t, err)
	defer db.Close()
	r, err := db.RawRequest(context.Background(), seq)
	require.NoError(t, err)
	return r
}

// serve's scheduled sweep purges raw requests past --retain-raw; the
// order, its state and timeline stay; the report says how much went.
func TestRetention_ServePurgesOnItsSweep(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "o.db")
	s := startTestSidecar(t, path, func(f *serveFlags) {
		f.recon.sweepSchedule = "@every 1s"
		require.NoError(t, f.recon.retainRaw.Set("1ms"))
	})
	st, body := s.do("PUT", "/v1/orders/order_r", []byte(`{"provider":"tazapay","checkout_id":"chk_r","amount":4999,"currency":"USD"}`), nil)
	require.Equal(t, http.StatusOK, st, string(body))
	paid := tazapayEvent("evt_r1", "checkout.paid", "2025-05-14T06:41:22Z", "chk_r", "pay_r", "order_r", "paid", 4999)
	st, body = s.do("POST", "/webhooks/tazapay", paid, signedTazapay(paid))
	require.Equal(t, http.StatusOK, st, string(body))
	_, before := s.order("order_r")
	require.Eventually(t, s.sweptRaw, 10*time.Second, 100*time.Millisecond, "a sweep purges the raw request")
	_, after := s.order("order_r")
	require.Equal(t, before.Events, after.Events)
	require.Equal(t, before.State, after.State)
	require.NoError(t, s.stop())
	raw := rawOf(t, path, before.Events[0].Seq)
	require.NotNil(t, raw.PurgedAt)
	require.Empty(t, raw.Body)

	out, _, err := cli(t, nil, "report", "--db", path, "--since", "1h", "--format", "md")
	require.NoError(t, err)
	require.Contains(t, out, "Purged in the period: 1 raw request (")
}

// sweptRaw reports whether the store records a purge.
func (s *testSidecar) sweptRaw() bool {
	d, err := s.db.ReportData(context.Background(), engine.ReportQuery{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)})
	return err == nil && len(d.Purged) > 0
}

// orderstate reconcile --retain-raw purges now; orderstate purge --order
// empties one customer's raw requests; both say what they did.
func TestRetention_Commands(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "o.db")
	s := startTestSidecar(t, path)
	var seqs []int64
	for _, ev := range [][]byte{
		tazapayEvent("evt_c1", "checkout.paid", "2025-05-14T06:41:22Z", "chk_c1", "pay_c1", "order_c1", "paid", 100),
		tazapayEvent("evt_c2", "checkout.paid", "2025-05-14T06:41:22Z", "chk_c2", "pay_c2", "order_c2", "paid", 200),
	} {
		st, body := s.do("POST", "/webhooks/tazapay", ev, signedTazapay(ev))
		require.Equal(t, http.StatusOK, st, string(body))
		_, o := s.order(map[bool]string{true: "order_c1", false: "order_c2"}[len(seqs) == 0])
		seqs = append(seqs, o.Events[0].Seq)
	}
	require.NoError(t, s.stop())

	out, _, err := cli(t, nil, "purge", "--db", path, "--order", "order_c1")
	require.NoError(t, err)
	require.Regexp(t, `^purged 1 raw requests \(\d+ bytes\) of order order_c1; its events, state and timeline stay\n$`, out)
	require.NotNil(t, rawOf(t, path, seqs[0]).PurgedAt)
	require.Nil(t, rawOf(t, path, seqs[1]).PurgedAt, "only that order's")
	_, _, err = cli(t, nil, "purge", "--db", path, "--order", "order_nobody")
	require.EqualError(t, err, "no order order_nobody: neither registered by the shop nor named by a webhook")
	_, _, err = cli(t, nil, "purge", "--db", path)
	require.EqualError(t, err, "give the order with --order ORDER_ID")

	time.Sleep(5 * time.Millisecond)
	out, _, err = cli(t, map[string]string{"ORDERSTATE_RETAIN_RAW": "1ms"}, "reconcile", "--db", path)
	require.NoError(t, err)
	require.Contains(t, out, "purged 1 raw requests (")
	require.NotNil(t, rawOf(t, path, seqs[1]).PurgedAt)
	out, _, err = cli(t, nil, "reconcile", "--db", path)
	require.NoError(t, err)
	require.NotContains(t, out, "purged", "no retention, no purge")

	_, _, err = cli(t, map[string]string{"ORDERSTATE_RETAIN_RAW": "ninety days"}, "reconcile", "--db", path)
	require.EqualError(t, err, `ORDERSTATE_RETAIN_RAW="ninety days": want a number of days such as 90d, or a duration such as 720h`)
	_, _, err = cli(t, nil, "reconcile", "--db", path, "--retain-raw", "0d")
	require.ErrorContains(t, err, "want a number of days such as 90d")
}
