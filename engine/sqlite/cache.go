package sqlite

// orderCache holds the orders the writer touched recently, as they are
// stored, so the common webhook (an order the store already knows, by ids it
// already knows) is applied without reading the order back: that read was
// the largest single cost of ingest. Only the writer goroutine uses it, and
// it is only ever a copy of committed rows or of rows in the transaction
// being built: whatever could make it differ from the file empties it (a
// rolled-back batch, a write it cannot follow, another process's commit).
type orderCache struct {
	rows    map[int64]cachedRow
	aliases map[aliasKey]int64
	max     int
	// version is the store's PRAGMA data_version when the cache was last
	// known to match it; another process's commit changes it.
	version int64

	// When full, the cache drops the order written longest ago: an order's
	// webhooks follow its registration within minutes, so the orders just
	// registered are the ones to keep. queue lists the puts, oldest first
	// from head; an entry whose seq is no longer its order's latest (put
	// again since, forgotten, or dropped) is skipped.
	queue []queued
	head  int
	seq   uint64
}

// cachedRow is a cached order and the seq of its latest put.
type cachedRow struct {
	row *orderRow
	seq uint64
}

type queued struct {
	ref int64
	seq uint64
}

// maxCachedOrders bounds the cache: about 0.55 KB an order with two ids,
// so 17 MB when full; the orders registered or paid in the last hours of
// a busy shop.
const maxCachedOrders = 32_000

func newOrderCache(max int) *orderCache {
	return &orderCache{rows: make(map[int64]cachedRow), aliases: make(map[aliasKey]int64), max: max}
}

// aliasKey is a provider id of an order. A struct of the two strings, not
// their concatenation, so a lookup on the ingest path allocates nothing.
type aliasKey struct{ provider, id string }

// lookup returns the cached order all of ids name, or nil when any id is
// unknown here or they name different orders: the store decides those.
func (c *orderCache) lookup(provider string, ids []string) *orderRow {
	var ref int64
	for _, id := range ids {
		r, ok := c.aliases[aliasKey{provider, id}]
		if !ok || (ref != 0 && r != ref) {
			return nil
		}
		ref = r
	}
	return c.rows[ref].row
}

// put records o as stored, named by ids. The caller keeps mutating o as it
// writes the same changes to the store.
func (c *orderCache) put(o *orderRow, provider string, ids []string) {
	if _, ok := c.rows[o.ref]; !ok && len(c.rows) >= c.max {
		// Dropping one order rather than emptying the cache keeps it full
		// just when traffic is heaviest. The dropped order's aliases stay
		// until the alias map is full too; one naming a dropped order is a
		// miss like any other.
		c.dropOldest()
	}
	if len(c.aliases) >= 4*c.max {
		c.aliases = make(map[aliasKey]int64)
	}
	c.seq++
	c.rows[o.ref] = cachedRow{row: o, seq: c.seq}
	for _, id := range ids {
		c.aliases[aliasKey{provider, id}] = o.ref
	}
	c.queue = append(c.queue, queued{o.ref, c.seq})
	if len(c.queue) > 4*c.max+64 {
		c.compact()
	}
}

// dropOldest drops the order whose latest put is the oldest.
func (c *orderCache) dropOldest() {
	for c.head < len(c.queue) {
		q := c.queue[c.head]
		c.head++
		if c.rows[q.ref].seq == q.seq {
			delete(c.rows, q.ref)
			return
		}
	}
}

// compact keeps the queue's live entries only, at most one per cached
// order, so the queue stays a few times the cache's size.
func (c *orderCache) compact() {
	live := make([]queued, 0, len(c.rows))
	for _, q := range c.queue[c.head:] {
		if c.rows[q.ref].seq == q.seq {
			live = append(live, q)
		}
	}
	c.queue, c.head = live, 0
}

// forget drops an order another write changed; its aliases stay, as
// aliases only ever move in a merge, which clears the cache.
func (c *orderCache) forget(ref int64) { delete(c.rows, ref) }

func (c *orderCache) clear() {
	if len(c.rows) == 0 && len(c.aliases) == 0 {
		return
	}
	c.rows = make(map[int64]cachedRow)
	c.aliases = make(map[aliasKey]int64)
	c.queue, c.head = nil, 0
}
