package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	sm "github.com/orderstate/orderstate/statemachine"
)

// requireInert fails if out holds a character a terminal acts on.
func requireInert(t *testing.T, out, what string) {
	t.Helper()
	for _, c := range []string{"\x1b", "\x07", "\x7f", "\u202e"} {
		require.NotContains(t, out, c, what)
	}
	for r := rune(0x80); r <= 0x9f; r++ {
		require.NotContains(t, out, string(r), what)
	}
}

// TestCommands_PrintStoredTextInert: what webhooks wrote into the store
// (event ids, types, checkout ids, the shop's reference, and the anomaly
// details made of them) reaches a terminal through order, reconcile and
// report. No control character may get there, and each field stays on its
// line.
func TestCommands_PrintStoredTextInert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "orderstate.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{Logger: discardLogger()})
	require.NoError(t, err)
	const esc = "\x1b[2J\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\u009b31m\x7f\u202e\n\tnext"
	paidThenFailed := "chk" + esc
	pending := "pend" + esc
	for _, ev := range []engine.Event{
		{EventID: "e1" + esc, DedupeKey: "e1", Type: "DONE" + esc, Kind: sm.KindPaid, CheckoutID: paidThenFailed, Amount: 1080},
		{EventID: "e2" + esc, DedupeKey: "e2", Type: "FAILED_AFTER_TX_COMPLETED" + esc, Kind: sm.KindFailedAfterSettlement, CheckoutID: paidThenFailed},
		{EventID: "e3" + esc, DedupeKey: "e3", Type: "CREATED" + esc, Kind: sm.KindCheckoutCreated, CheckoutID: pending},
	} {
		ev.Provider, ev.Reference, ev.Currency, ev.OccurredAt = "tweed", "SO"+esc, "USD", time.Now().Add(-time.Second)
		_, err := db.Ingest(ctx, ev, &engine.Request{Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{}`)})
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())
	time.Sleep(2 * time.Millisecond) // older than --stuck-after below
	cmd := func(args ...string) string {
		var out bytes.Buffer
		require.NoError(t, run(ctx, append(args, "--db", path), func(string) string { return "" }, &out, io.Discard), "%v", args)
		return out.String()
	}

	out := cmd("order", "--checkout", "tweed/"+paidThenFailed)
	requireInert(t, out, "order")
	require.Contains(t, out, `Checkout  tweed chk\x1b[2J\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\u009b31m\x7f\u202e  next`,
		"shown for what it was, on one line")
	require.Contains(t, out, `FAILED_AFTER_TX_COMPLETED\x1b[2J`, "in the anomaly's detail and the timeline")
	lines := strings.Split(out, "\n")
	for _, l := range lines {
		if strings.Contains(l, "click") {
			require.Contains(t, l, "next", "a field broke its line: %q", l)
		}
	}
	require.Equal(t, 2, strings.Count(out, "  next  "), "the timeline keeps one row a delivery, columns aligned")

	js := cmd("order", "--json", "--checkout", "tweed/"+paidThenFailed)
	requireInert(t, js, "order --json")
	var o engine.Order
	require.NoError(t, json.Unmarshal([]byte(js), &o))
	require.Equal(t, paidThenFailed, o.CheckoutID, "the JSON says the same, only escaped")

	out = cmd("reconcile", "--stuck-after", "1ms")
	requireInert(t, out, "reconcile")
	require.Contains(t, out, `(tweed pend\x1b[2J`)

	out = cmd("report", "--since", "1h", "--format", "md")
	requireInert(t, out, "report")
	require.Contains(t, out, "click")
}
