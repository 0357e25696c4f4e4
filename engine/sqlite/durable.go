package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/orderstate/orderstate/engine"
)

// logSyncer makes committed batches durable off the writer's path.
//
// The writer's connection commits with synchronous=NORMAL: SQLite appends a
// batch's frames to the write-ahead log and returns without waiting for the
// disk. The writer hands the batch to this goroutine and goes on to build
// and commit the next one, while this one fdatasyncs the log and only then
// answers the batch's callers. A commit used to spend most of its time
// waiting on that fsync with the write lock held, and every write in the
// process waited behind it; now the wait overlaps the next batch's work.
//
// What a 2xx promises is unchanged: nobody is answered before an fsync
// that began after their commit returned, and fdatasync on any descriptor
// of the log flushes every page written to it. A kill of the process loses
// nothing either way (the kernel has the pages once the commit returns).
// A power cut can lose a batch committed but not yet flushed, exactly as
// it loses a request still in flight: its sender was never told it was
// stored and retries. So that nobody was shown it either, every commit is
// numbered before it becomes visible, and a read that may have seen it
// waits for the flush that covers it (DB.awaitDurable).
//
// The log is the same file for the store's life: SQLite restarts it by
// writing over it from the start and shrinks it in place (journal_size_limit),
// and deletes it only when the last connection closes, which the writer's
// connection, open until Close, never is while this runs.
type logSyncer struct {
	wal  *os.File
	path string
	q    chan flushed
	// issued numbers the commits, taken just before each becomes visible;
	// durable is the highest whose log is on disk. advanced is closed
	// and replaced each time durable moves or the log breaks.
	issued, durable atomic.Int64
	mu              sync.Mutex
	advanced        chan struct{}
	// broken is set when an fdatasync fails: what the kernel had not yet
	// written may be gone from the disk while still visible to readers, so
	// the store refuses every further write until it is restarted and SQLite
	// recovers the log from what the disk holds.
	broken atomic.Pointer[error]
	syncs  atomic.Int64
	// flush is datasync; tests stand in a failing or slow disk.
	flush func(*os.File) error
}

// open holds the log file the writer's connection has opened.
func (s *logSyncer) open(dbPath string) error {
	s.path = dbPath + "-wal"
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open the write-ahead log to sync it: %w", err)
	}
	s.wal = f
	s.q = make(chan flushed, 64)
	s.advanced = make(chan struct{})
	if s.flush == nil {
		s.flush = datasync
	}
	return nil
}

// sync flushes the log to the disk, or says why it could not; after one
// failure every later call fails too.
func (s *logSyncer) sync() error {
	if p := s.broken.Load(); p != nil {
		return *p
	}
	if err := s.flush(s.wal); err != nil {
		err = engine.Wrap(engine.EUNAVAILABLE, err, "cannot flush the write-ahead log %s to disk; what was written since the last flush may be lost: restart orderstate", s.path)
		s.broken.CompareAndSwap(nil, &err)
		return *s.broken.Load()
	}
	s.syncs.Add(1)
	return nil
}

// err is the failure that stopped the store, or nil.
func (s *logSyncer) err() error {
	if p := s.broken.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *logSyncer) close() error {
	if s.wal == nil {
		return nil
	}
	return s.wal.Close()
}

// flushed is a commit for the syncer: its number, and the ops to answer
// once it is on disk (none for a commit that failed, whose number must
// still be passed).
type flushed struct {
	ops []*op
	n   int64
}

// notify wakes the reads waiting on durable.
func (s *logSyncer) notify() {
	s.mu.Lock()
	close(s.advanced)
	s.advanced = make(chan struct{})
	s.mu.Unlock()
}

func (s *logSyncer) advancedChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.advanced
}

// syncs answers committed batches once the log holding them is on disk. Each
// fdatasync covers every batch committed before it began, so the batches
// that queued up during one are answered by the next one.
func (db *DB) syncs() {
	defer db.wg.Done()
	var pending []flushed
	for batch := range db.logs.q {
		pending = append(pending[:0], batch)
	more:
		for {
			select {
			case b, ok := <-db.logs.q:
				if !ok {
					break more
				}
				pending = append(pending, b)
			default:
				break more
			}
		}
		var err error
		var top int64
		ops := false
		for _, b := range pending {
			top = max(top, b.n)
			ops = ops || len(b.ops) > 0
		}
		// Commits arrive in order and each round flushes all before it:
		// a round of failed commits alone has nothing new to flush.
		if ops {
			err = db.logs.sync()
		}
		if err == nil {
			db.logs.durable.Store(top)
		}
		db.logs.notify()
		for _, b := range pending {
			for _, o := range b.ops {
				o.done <- err
			}
		}
		clear(pending)
	}
}

// readDone ends a read's transaction and returns once what it read is on
// disk (awaitDurable). The snapshot goes first: a reader that held it
// while it waited would keep the checkpointer from copying the log past
// it and the log from starting over, and under steady reads on a slow
// disk the log would only grow.
func (db *DB) readDone(ctx context.Context, tx *sql.Tx) error {
	_ = tx.Rollback()
	return db.awaitDurable(ctx)
}

// awaitDurable returns once every commit a read that has just finished
// could have seen is on disk, so the read shows nothing a power cut could
// take back; or why it cannot, once the log cannot be flushed. Call it
// after the read: commits are numbered before they become visible.
func (db *DB) awaitDurable(ctx context.Context) error {
	target := db.logs.issued.Load()
	for {
		if db.logs.durable.Load() >= target {
			return nil
		}
		ch := db.logs.advancedChan()
		if db.logs.durable.Load() >= target {
			return nil
		}
		if err := db.logs.err(); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return engine.Wrap(engine.EUNAVAILABLE, ctx.Err(), "request cancelled while what it read was being flushed to disk")
		}
	}
}
