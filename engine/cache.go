package engine

// orderCache holds the orders the writer touched recently, as they are
// stored, so the common webhook (an order the store already knows, by ids it
// already knows) is applied without reading the order back: that read was
// the largest single cost of ingest. Only the writer goroutine uses it, and
// it is only ever a copy of committed rows or of rows in the transaction
// being built: whatever could make it differ from the file empties it (a
// rolled-back batch, a write it cannot follow, another process's commit).
type orderCache struct {
	rows    map[int64]*orderRow
	aliases map[aliasKey]int64
	max     int
	// version is the store's PRAGMA data_version when the cache was last
	// known to match it; another process's commit changes it.
	version int64
}

// maxCachedOrders bounds the cache: about 0.55 KB an order with two ids,
// so 17 MB when full; the orders registered or paid in the last hours of
// a busy shop.
const maxCachedOrders = 32_000

func newOrderCache(max int) *orderCache {
	return &orderCache{rows: make(map[int64]*orderRow), aliases: make(map[aliasKey]int64), max: max}
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
	return c.rows[ref]
}

// put records o as stored, named by ids. The caller keeps mutating o as it
// writes the same changes to the store.
func (c *orderCache) put(o *orderRow, provider string, ids []string) {
	if _, ok := c.rows[o.ref]; !ok && len(c.rows) >= c.max {
		// Map order is unspecified: this drops an arbitrary order, which
		// keeps the cache full (clearing it all would empty it just when
		// traffic is heaviest). Its aliases stay until the alias map is
		// full too; one naming a dropped order is a miss like any other.
		for ref := range c.rows {
			delete(c.rows, ref)
			break
		}
	}
	if len(c.aliases) >= 4*c.max {
		c.aliases = make(map[aliasKey]int64)
	}
	c.rows[o.ref] = o
	for _, id := range ids {
		c.aliases[aliasKey{provider, id}] = o.ref
	}
}

// forget drops an order another write changed; its aliases stay, as
// aliases only ever move in a merge, which clears the cache.
func (c *orderCache) forget(ref int64) { delete(c.rows, ref) }

func (c *orderCache) clear() {
	if len(c.rows) == 0 && len(c.aliases) == 0 {
		return
	}
	c.rows = make(map[int64]*orderRow)
	c.aliases = make(map[aliasKey]int64)
}
