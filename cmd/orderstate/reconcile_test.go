package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	"github.com/orderstate/orderstate/reconcile"
)

func TestReconcileAndReportCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "orderstate.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{Logger: discardLogger()})
	require.NoError(t, err)
	_, err = db.RegisterOrder(ctx, engine.Registration{OrderID: "order_1", Provider: "tazapay", CheckoutID: "chk_1", Amount: 4999, Currency: "USD"})
	require.NoError(t, err)
	_, err = db.ReportRedirect(ctx, "order_1", engine.RedirectSuccess)
	require.NoError(t, err)
	_, err = db.RegisterOrder(ctx, engine.Registration{OrderID: "order_2", Provider: "tazapay", CheckoutID: "chk_2", Amount: 1500, Currency: "USD"})
	require.NoError(t, err)
	_, err = db.ReportRedirect(ctx, "order_2", engine.RedirectSuccess)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	noEnv := func(string) string { return "" }
	cli := func(args ...string) (string, error) {
		var out, errs bytes.Buffer
		err := run(ctx, args, noEnv, &out, &errs)
		return out.String(), err
	}
	time.Sleep(2 * time.Millisecond) // the redirect must be older than the grace below

	out, err := cli("reconcile", "--db", path, "--redirect-grace", "1ms")
	require.NoError(t, err)
	require.Contains(t, out, "2 raised, 0 resolved")
	require.Contains(t, out, "raised   missing_webhook   order_1 (tazapay chk_1): The customer came back")
	out, err = cli("reconcile", "--db", path, "--redirect-grace", "1ms")
	require.NoError(t, err)
	require.Contains(t, out, "0 raised, 0 resolved", "a second sweep raises nothing again")

	out, err = cli("report", "--db", path, "--since", "1h", "--format", "json")
	require.NoError(t, err)
	type report struct {
		Summary struct {
			NeedAction int `json:"need_action"`
		} `json:"summary"`
		Orders []struct {
			OrderID string `json:"order_id"`
		} `json:"orders_needing_action"`
	}
	var rep report
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, 2, rep.Summary.NeedAction)
	require.Len(t, rep.Orders, 2)

	// The report's size, from a flag or its variable.
	out, err = cli("report", "--db", path, "--format", "json", "--report-max-orders", "1")
	require.NoError(t, err)
	rep = report{}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, 2, rep.Summary.NeedAction, "the summary still counts every order")
	require.Len(t, rep.Orders, 1)
	var buf bytes.Buffer
	require.NoError(t, run(ctx, []string{"report", "--db", path, "--format", "json"}, func(k string) string {
		return map[string]string{"ORDERSTATE_REPORT_MAX_PER_KIND": "1"}[k]
	}, &buf, io.Discard))
	rep = report{}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rep))
	require.Len(t, rep.Orders, 1, "no more orders than anomalies listed of their kind")
	_, err = cli("report", "--db", path, "--report-max-orders", "0")
	require.ErrorContains(t, err, "--report-max-orders (ORDERSTATE_REPORT_MAX_ORDERS) 0: want a number of orders of at least 1")
	out, err = cli("report", "--db", path, "--since", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(out, "# Order anomaly report"))

	_, err = cli("report", "--db", path, "--format", "pdf")
	require.ErrorContains(t, err, "json, md or html")
	_, err = cli("report", "--db", path, "--since", "yesterday")
	require.ErrorContains(t, err, "--since")
}

// TestReconcileCommand_SaysItsChunks: a sweep with more than a chunk to
// raise says in how many transactions it committed, in text and in JSON.
func TestReconcileCommand_SaysItsChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "orderstate.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{Logger: discardLogger()})
	require.NoError(t, err)
	n := reconcile.DefaultSweepChunk + 5
	for i := range n {
		_, err := db.RegisterOrder(ctx, engine.Registration{OrderID: fmt.Sprintf("order_%d", i), Provider: "yoco",
			CheckoutID: fmt.Sprintf("ch_%d", i), Amount: 100, Currency: "ZAR"})
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())
	time.Sleep(2 * time.Millisecond) // older than --stuck-after below

	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"reconcile", "--db", path, "--stuck-after", "1ms"}, func(string) string { return "" }, &out, io.Discard))
	first, _, _ := strings.Cut(out.String(), "\n")
	require.Contains(t, first, fmt.Sprintf("%d raised, 0 resolved", n))
	require.True(t, strings.HasSuffix(first, ", in 2 transactions"), first)
	require.Equal(t, n, strings.Count(out.String(), "raised   stuck"))

	out.Reset()
	require.NoError(t, run(ctx, []string{"reconcile", "--db", path, "--stuck-after", "1ms", "--json"}, func(string) string { return "" }, &out, io.Discard))
	var res struct {
		Transactions int   `json:"transactions"`
		Changes      []any `json:"changes"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &res))
	require.Equal(t, 1, res.Transactions, "nothing left to raise: one transaction")
	require.Empty(t, res.Changes)
}
