-- Raw requests hold what customers typed (names, emails, phone numbers):
-- they are purged past --retain-raw, or for one order on request. A purged
-- request keeps its row, with the body and headers emptied and purged_at
-- set, so that an event without a raw request still means a fault, not a
-- purge. Each purge is recorded in purges, which the report sums.
ALTER TABLE raw_events ADD COLUMN purged_at TEXT;

CREATE TABLE purges (
	id       INTEGER PRIMARY KEY,
	at       TEXT NOT NULL,
	reason   TEXT NOT NULL, -- 'retention' or 'request'
	order_id TEXT,          -- the order purged on request
	requests INTEGER NOT NULL,
	bytes    INTEGER NOT NULL
);
CREATE INDEX purges_at ON purges (at);
