package sqlite

import (
	"fmt"
	"os"
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
// What a power cut can lose is a batch already visible to readers but not
// yet answered, exactly as it loses a request still in flight; its sender
// was never told it was stored and retries.
//
// The log is the same file for the store's life: SQLite restarts it by
// writing over it from the start and shrinks it in place (journal_size_limit),
// and deletes it only when the last connection closes, which the writer's
// connection, open until Close, never is while this runs.
type logSyncer struct {
	wal  *os.File
	path string
	q    chan []*op
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
	s.q = make(chan []*op, 64)
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

// syncs answers committed batches once the log holding them is on disk. Each
// fdatasync covers every batch committed before it began, so the batches
// that queued up during one are answered by the next one.
func (db *DB) syncs() {
	defer db.wg.Done()
	var pending [][]*op
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
		err := db.logs.sync()
		for _, b := range pending {
			for _, o := range b {
				o.done <- err
			}
		}
		clear(pending)
	}
}
