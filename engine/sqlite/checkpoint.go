package sqlite

import (
	"context"
	"database/sql"
	"sync/atomic"
	"time"
)

// Checkpoints copy committed pages from the write-ahead log into the
// database file and fsync it. SQLite runs them by default inside the commit
// that crosses 1,000 pages, so every few hundred webhooks one of them waited
// for megabytes to be copied and synced. Here a goroutine of its own copies
// in the background on its own connection while the writer keeps
// committing; the writer only finishes the job, when the log has grown
// past walRestartPages, so the log can start over from its beginning
// (SQLite restarts it only once every frame in it is copied, which under
// steady load the background pass never quite catches). Passes are
// frequent so each is small: a pass fsyncs the database file, and on a
// large store a big pass's fsync held up the writer's own log fsyncs (the
// 99th percentile on a million-order store was 50-70 ms with a pass every
// 100 ms, 60-160 ms every second, 41-47 ms every 25 ms).
var (
	checkpointEvery = 25 * time.Millisecond
	walRestartPages = int64(4096) // 32 MiB of 8 KiB pages
)

type checkpointer struct {
	conn    *sql.DB
	batches atomic.Int64 // writer batches since the last pass: none, nothing to copy
	logged  atomic.Int64 // pages in the log at the last pass
}

func (db *DB) checkpoints() {
	defer db.wg.Done()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-t.C:
		}
		if db.ckpt.batches.Swap(0) == 0 {
			continue
		}
		var busy, logged, copied int64
		err := db.ckpt.conn.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logged, &copied)
		if err != nil {
			db.log.Warn("background checkpoint failed; the writer will checkpoint instead", "err", err)
			logged = walRestartPages + 1
		} else if copied > 0 {
			db.counters.checkpoints.Add(1)
		}
		db.ckpt.logged.Store(logged)
	}
}

// finishCheckpoint runs on the writer after every batch and checkpoints
// only once the log is long: the background pass has copied nearly all of
// it, so this copies the rest and lets the next transaction restart the log.
func (db *DB) finishCheckpoint() {
	db.ckpt.batches.Add(1)
	if db.ckpt.logged.Load() <= walRestartPages {
		return
	}
	db.ckpt.logged.Store(0)
	var busy, logged, copied int64
	err := db.hot.conn.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logged, &copied)
	if err != nil {
		db.log.Warn("checkpoint failed", "err", err)
	} else if copied > 0 {
		db.counters.checkpoints.Add(1)
	}
}
