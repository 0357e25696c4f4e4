package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	"github.com/orderstate/orderstate/internal/simulate"
	sm "github.com/orderstate/orderstate/statemachine"
)

// A small seeded day, end to end: every anomaly the simulator injected is
// found, nothing else is flagged, and orders whose story decides their
// outcome end there. Small because -race makes SQLite many times slower.
func TestDemo_SmallDayChecksOut(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "demo")
	var out bytes.Buffer
	cfg := demoConfig{orders: 250, seed: 5, faults: simulate.DemoFaults().Scale(2), scale: "2", dir: dir, workers: 8}
	res, err := playDemo(context.Background(), cfg, &out, io.Discard)
	require.NoError(t, err, out.String())
	require.Empty(t, res.failures(), out.String())
	// The payments only the provider had were recovered by poll.
	require.Positive(t, res.unsent, "the day has no unsent payment; pick a seed that shows one")
	require.Equal(t, res.unsent, res.recovered, out.String())
	require.Contains(t, out.String(), fmt.Sprintf("Recovered by poll: %d of %d", res.unsent, res.unsent))
	require.InDelta(t, 1.0, res.check.Recall(), 1e-9)
	require.Contains(t, out.String(), "recall 100.0%")
	require.Contains(t, out.String(), "0 false alarms")
	for _, k := range res.check.Kinds {
		require.Positive(t, k.Expected, "the day expects no %s; pick a seed that shows every kind", k.Kind)
	}

	// The outcome each story leads to, stated by hand rather than by the
	// simulator's truth, for orders whose faults leave the outcome alone.
	// Not the slow Tazapay transfer: its attempt names only the payin, so
	// the registered order stays pending unless checkout.created (off by
	// default at Tazapay) tied the two.
	outcome := map[string]sm.State{
		"paid": sm.Paid, "refunded": sm.Refunded, "partially_refunded": sm.PartiallyRefunded, "expired": sm.Expired,
		"failed": sm.Failed, "abandoned": sm.Pending, "paid_after_expiry": sm.Paid,
		"failed_after_done": sm.NeedsReview, "failed_after_tx": sm.NeedsReview,
	}
	checked := map[string]int{}
	for _, o := range res.orders {
		if o.HasFault(simulate.FaultDrop) || o.HasFault(simulate.FaultMissing) || o.Flow == "slow" {
			continue
		}
		want, ok := outcome[o.Flow]
		require.True(t, ok, "flow %s has no stated outcome", o.Flow)
		held, ok := res.byID[o.ID]
		require.True(t, ok, "order %s is not in the store", o.ID)
		require.Equal(t, want, held.State, "order %s (%s %s, faults %v)", o.ID, o.Provider, o.Flow, o.Faults)
		checked[o.Flow]++
	}
	require.Len(t, checked, len(outcome), "every flow was played: %v", checked)

	require.Len(t, res.reports, 3)
	for _, p := range res.reports {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NotEmpty(t, b)
	}

	// The store outlives the demo: one order, as `orderstate order` reads it.
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "orderstate.db"), sqlite.Options{Logger: discardLogger()})
	require.NoError(t, err)
	defer db.Close()
	for _, o := range res.orders {
		if o.Flow == "failed_after_done" && len(o.Faults) == 1 {
			view, err := db.Order(context.Background(), o.ID)
			require.NoError(t, err)
			require.Equal(t, sm.NeedsReview, view.State)
			kinds := map[string]bool{}
			for _, a := range view.Anomalies {
				kinds[a.Kind] = true
			}
			require.True(t, kinds[engine.AnomalyConflict] && kinds[engine.AnomalyLateAfterFinal], "%+v", view.Anomalies)
			return
		}
	}
	t.Fatal("the day has no plain FAILED-after-DONE order")
}

// A self-check that fails says why.
func TestDemo_FailuresAreNamed(t *testing.T) {
	t.Parallel()
	res := &demoResult{
		check: simulate.Result{
			Missed:      []simulate.Finding{{Key: "SO-1", Kind: engine.AnomalyStuck}},
			FalseAlarms: []simulate.Finding{{Key: "SO-2", Kind: engine.AnomalyDuplicate}},
		},
		events: 3, accepted: 2,
		unsent: 2, recovered: 1, unrecovered: []string{"SO-3"},
	}
	got := res.failures()
	require.Len(t, got, 4)
	require.Contains(t, got[0], "stuck 1")
	require.Contains(t, got[1], "duplicate 1")
	require.Contains(t, got[2], "3 events stored for 2 genuine webhooks")
	require.Contains(t, got[3], "1 of 2 payments only the provider had were not recovered by poll (SO-3)")
	err := run(context.Background(), []string{"demo", "--orders", "0"}, func(string) string { return "" }, io.Discard, io.Discard)
	require.Error(t, err)
	err = run(context.Background(), []string{"demo", "--faults", "bogus=1"}, func(string) string { return "" }, io.Discard, io.Discard)
	require.ErrorContains(t, err, "unknown fault")
}

// orderstate.db and reports are serve's defaults, so a demo run in a shop's
// folder finds the shop's store there. The demo removes only what an
// earlier demo made, and deletes nothing when it refuses.
func TestDemo_RefusesToRemoveWhatItDidNotMake(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	noEnv := func(string) string { return "" }
	demo := func(dir string) error {
		return run(ctx, []string{"demo", "--dir", dir, "--orders", "5"}, noEnv, io.Discard, io.Discard)
	}

	t.Run("ShopStore", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		path := filepath.Join(dir, "orderstate.db")
		db, err := sqlite.Open(ctx, path, sqlite.Options{Logger: discardLogger()})
		require.NoError(t, err)
		_, err = db.RegisterOrder(ctx, engine.Registration{OrderID: "shop_1", Provider: "tazapay", CheckoutID: "chk_1", Amount: 100, Currency: "USD"})
		require.NoError(t, err)
		require.NoError(t, db.Close())

		err = demo(dir)
		require.ErrorContains(t, err, path)
		require.ErrorContains(t, err, "not made by the demo")
		db, err = sqlite.Open(ctx, path, sqlite.Options{Logger: discardLogger()})
		require.NoError(t, err)
		defer db.Close()
		_, err = db.Order(ctx, "shop_1")
		require.NoError(t, err, "the shop's order is still there")
		require.NoDirExists(t, filepath.Join(dir, "reports"))
	})
	t.Run("ShopReports", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		report := filepath.Join(dir, "reports", "report-2026-03-02T0300Z.md")
		require.NoError(t, os.MkdirAll(filepath.Dir(report), 0o755))
		require.NoError(t, os.WriteFile(report, []byte("# Order anomaly report\n"), 0o644))

		err := demo(dir)
		require.ErrorContains(t, err, filepath.Join(dir, "reports"))
		require.ErrorContains(t, err, "not made by the demo")
		require.FileExists(t, report)
		require.NoFileExists(t, filepath.Join(dir, "orderstate.db"))
	})
	t.Run("NotADatabase", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		path := filepath.Join(dir, "orderstate.db")
		require.NoError(t, os.WriteFile(path, []byte("someone's file"), 0o644))
		require.ErrorContains(t, demo(dir), path)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, "someone's file", string(b))
	})
	t.Run("LeftoverWAL", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		wal := filepath.Join(dir, "orderstate.db-wal")
		require.NoError(t, os.WriteFile(wal, []byte("frames"), 0o644))
		require.ErrorContains(t, demo(dir), wal)
		require.FileExists(t, wal)
	})
}

// The demo replaces what its previous run made in the same folder, as
// `make demo` twice in a row does.
func TestDemo_RunsTwiceInTheSameFolder(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "demo")
	for run := range 2 {
		var out bytes.Buffer
		cfg := demoConfig{orders: 10, seed: 7, faults: simulate.DefaultFaults(), scale: "1", dir: dir, workers: 4}
		res, err := playDemo(context.Background(), cfg, &out, io.Discard)
		require.NoError(t, err, "run %d: %s", run+1, out.String())
		require.Len(t, res.reports, 3, "run %d", run+1)
		entries, err := os.ReadDir(filepath.Join(dir, "reports"))
		require.NoError(t, err)
		n := 0
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "report-") {
				n++
			}
		}
		require.Equal(t, 3, n, "run %d: only this run's reports are in the folder", run+1)
		stale := filepath.Join(dir, "reports", "report-stale.md")
		if run == 0 {
			require.NoError(t, os.WriteFile(stale, []byte("from the first run"), 0o644))
		} else {
			require.NoFileExists(t, stale, "the first run's reports folder was replaced")
		}
	}
}
