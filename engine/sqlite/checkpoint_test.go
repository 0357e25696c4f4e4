package sqlite

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderstate/orderstate/engine"

	"github.com/stretchr/testify/require"

	sm "github.com/orderstate/orderstate/statemachine"
)

// TestCheckpoints_KeepTheLogShort: with SQLite's own checkpoints off, the
// background pass and the writer's finishing pass must keep the log from
// growing with the store, and every acknowledged event must be in the file.
func TestCheckpoints_KeepTheLogShort(t *testing.T) {
	every, restart := checkpointEvery, walRestartPages
	checkpointEvery, walRestartPages = 5*time.Millisecond, 64
	defer func() { checkpointEvery, walRestartPages = every, restart }()

	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "orderstate.db")
	db, err := Open(ctx, path, Options{})
	require.NoError(t, err)
	defer db.Close()

	body := []byte(`{"note":"` + strings.Repeat("x", 2500) + `"}`)
	const workers, each = 8, 360
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	done, largest := make(chan struct{}), make(chan int64)
	go func() {
		var maxWAL int64
		for {
			select {
			case <-done:
				largest <- maxWAL
				return
			case <-time.After(2 * time.Millisecond):
			}
			if fi, err := os.Stat(path + "-wal"); err == nil {
				maxWAL = max(maxWAL, fi.Size())
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("e_%d_%d", w, i)
				ev := engine.Event{Provider: "tazapay", EventID: id, DedupeKey: id, Type: "checkout.paid", Kind: sm.KindPaid,
					CheckoutID: fmt.Sprintf("chk_%d_%d", w, i), Amount: 100, Currency: "USD", Mode: engine.ModeLive}
				if _, err := db.Ingest(ctx, ev, &engine.Request{Header: http.Header{}, Body: body}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	maxWAL := <-largest
	close(errs)
	require.NoError(t, <-errs)

	var events int
	require.NoError(t, db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&events))
	require.Equal(t, workers*each, events)
	// Unchecked, the log would hold every page written: about 40 KB per
	// event here, 120 MB in all. How long it grows between restarts depends
	// on how long the disk takes over a checkpoint's fsync: 0.5-10 MB on a
	// shared disk.
	require.Less(t, maxWAL, int64(24<<20), "the log restarts instead of growing with the store")
	require.Positive(t, maxWAL)
}
