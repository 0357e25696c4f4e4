package sqlite

import "sync/atomic"

// WriterStats counts the writer's work since Open; /metrics exports it so
// an operator can see how well writes share commits and how often the
// order cache saves a read.
type WriterStats struct {
	// Commits is write transactions committed.
	Commits int64
	// Syncs is flushes of the log to the disk: one at Open, then one
	// covering every commit made while the one before it ran, so at most
	// one more than Commits.
	Syncs int64
	// Writes is writes committed in them: Writes/Commits is the mean
	// group-commit size.
	Writes int64
	// OrderLookups is webhooks that named an order; OrderCacheHits of them
	// found it in the writer's cache.
	OrderLookups, OrderCacheHits int64
	// Checkpoints is passes that copied the log into the database file.
	Checkpoints int64
}

type writerCounters struct {
	commits, writes, lookups, hits, checkpoints atomic.Int64
}

// WriterStats returns the counts so far.
func (db *DB) WriterStats() WriterStats {
	c := &db.counters
	return WriterStats{Commits: c.commits.Load(), Syncs: db.logs.syncs.Load(), Writes: c.writes.Load(), OrderLookups: c.lookups.Load(),
		OrderCacheHits: c.hits.Load(), Checkpoints: c.checkpoints.Load()}
}
