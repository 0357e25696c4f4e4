-- An event is deduplicated within the order its ids name: the same event
-- always names the same order (its ids are aliased to it on first arrival,
-- and a merge moves its events along). One index on (order_ref, dedupe)
-- then serves both the dedupe lookup and the order's timeline, where two
-- indexes did: the hash-keyed one cost every webhook a write to a random
-- page of its own. Events naming no order (an unknown type without a
-- checkout id) share order_ref NULL and are looked up the same way.
DROP INDEX events_dedupe;
DROP INDEX events_order;
CREATE INDEX events_order_dedupe ON events (order_ref, dedupe);
