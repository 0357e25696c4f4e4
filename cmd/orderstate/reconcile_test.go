package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
)

func TestReconcileAndReportCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "orderstate.db")
	db, err := engine.Open(ctx, path, engine.Options{Logger: discardLogger()})
	require.NoError(t, err)
	_, err = db.RegisterOrder(ctx, engine.Registration{OrderID: "order_1", Provider: "tazapay", CheckoutID: "chk_1", Amount: 4999, Currency: "USD"})
	require.NoError(t, err)
	_, err = db.ReportRedirect(ctx, "order_1", engine.RedirectSuccess)
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
	require.Contains(t, out, "1 raised, 0 resolved")
	require.Contains(t, out, "raised   missing_webhook   order_1 (tazapay chk_1): The customer came back")
	out, err = cli("reconcile", "--db", path, "--redirect-grace", "1ms")
	require.NoError(t, err)
	require.Contains(t, out, "0 raised, 0 resolved", "a second sweep raises nothing again")

	out, err = cli("report", "--db", path, "--since", "1h", "--format", "json")
	require.NoError(t, err)
	var rep struct {
		Summary struct {
			NeedAction int `json:"need_action"`
		} `json:"summary"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, 1, rep.Summary.NeedAction)
	out, err = cli("report", "--db", path, "--since", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(out, "# Order anomaly report"))

	_, err = cli("report", "--db", path, "--format", "pdf")
	require.ErrorContains(t, err, "json, md or html")
	_, err = cli("report", "--db", path, "--since", "yesterday")
	require.ErrorContains(t, err, "--since")
}
