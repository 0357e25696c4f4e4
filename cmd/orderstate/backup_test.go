package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine/sqlite"
)

// orderstate backup copies the store while serve keeps taking webhooks;
// serve started on the copy answers every order the copy holds exactly as
// the original does, and the copy holds every order stored before the
// backup began.
func TestBackup_LiveStoreRestoresEveryOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "orderstate.db")
	s := startTestSidecar(t, path)
	webhook := func(n int) int {
		b := tazapayEvent(fmt.Sprintf("evt_k%d", n), "checkout.paid", "2025-05-14T06:41:22Z", fmt.Sprintf("chk_k%d", n),
			fmt.Sprintf("pay_k%d", n), fmt.Sprintf("order_k%d", n), "paid", int64(100+n))
		st, _ := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
		return st
	}
	const before = 150
	for n := range before {
		reg := fmt.Sprintf(`{"provider":"tazapay","checkout_id":"chk_k%d","amount":%d,"currency":"USD"}`, n, 100+n)
		st, body := s.do("PUT", fmt.Sprintf("/v1/orders/order_k%d", n), []byte(reg), nil)
		require.Equal(t, http.StatusOK, st, string(body))
		require.Equal(t, http.StatusOK, webhook(n))
	}

	// Webhooks keep coming while the backup runs: each makes an order of
	// its own, whole or not at all.
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := before; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if webhook(n) == http.StatusOK {
				sent.Add(1)
			}
		}
	}()
	for sent.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	to := filepath.Join(dir, "backup", "orderstate-backup.db")
	require.NoError(t, os.Mkdir(filepath.Dir(to), 0o755))
	out, _, err := cli(t, nil, "backup", "--db", path, "--to", to)
	require.NoError(t, err)
	during := sent.Load()
	for sent.Load() < during+20 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	require.Regexp(t, `^backed up .*orderstate\.db to .*orderstate-backup\.db: \d+ orders, \d+ events, schema version \d+, \d+ bytes, in .*\n$`, out)
	entries, err := os.ReadDir(filepath.Dir(to))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no partial file left beside the backup")

	in, err := sqlite.Inspect(context.Background(), to)
	require.NoError(t, err)
	audit, err := in.Audit(context.Background())
	require.NoError(t, err)
	require.Equal(t, "ok", audit.Integrity)
	require.Zero(t, audit.ForeignKeyViolations)
	require.Zero(t, audit.EventsWithoutRaw, "no event without its raw request: a consistent snapshot")
	orders, err := in.Orders(context.Background())
	require.NoError(t, err)
	require.NoError(t, in.Close())
	total := before + int(sent.Load())
	require.GreaterOrEqual(t, len(orders), before+20, "every order before the backup, and some stored during it")
	require.Less(t, len(orders), total, "the webhooks after the backup are not in it")

	// Restore: serve on a copy of the backup.
	restored := filepath.Join(t.TempDir(), "orderstate.db")
	b, err := os.ReadFile(to)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(restored, b, 0o600))
	r := startTestSidecar(t, restored)
	seen := map[string]bool{}
	for _, o := range orders {
		path := "/v1/checkouts/" + o.Provider + "/" + url.PathEscape(o.CheckoutID)
		st1, want := s.do("GET", path, nil, nil)
		st2, got := r.do("GET", path, nil, nil)
		require.Equal(t, http.StatusOK, st1)
		require.Equal(t, http.StatusOK, st2)
		require.Equal(t, string(want), string(got), "order %s as restored", o.CheckoutID)
		seen[o.CheckoutID] = true
	}
	for n := range before {
		require.True(t, seen[fmt.Sprintf("chk_k%d", n)], "order_k%d, stored before the backup", n)
	}

	// It refuses to overwrite, and a PostgreSQL URL.
	_, _, err = cli(t, nil, "backup", "--db", path, "--to", to)
	require.ErrorContains(t, err, "exists already; a backup is written to a new file")
	_, _, err = cli(t, nil, "backup", "--db", "postgres://u@localhost/db", "--to", filepath.Join(dir, "x.db"))
	require.ErrorContains(t, err, "back a PostgreSQL store up with PostgreSQL's own tools")
	_, _, err = cli(t, nil, "backup", "--db", filepath.Join(dir, "missing.db"), "--to", filepath.Join(dir, "x.db"))
	require.ErrorContains(t, err, "does not exist")
}
