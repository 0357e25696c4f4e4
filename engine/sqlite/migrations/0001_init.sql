-- Orders: one row per provider checkout. order_id is the shop's id, NULL
-- until the shop registers the order (a webhook can come first).
CREATE TABLE orders (
	id               INTEGER PRIMARY KEY,
	order_id         TEXT UNIQUE,
	provider         TEXT NOT NULL,
	checkout_id      TEXT NOT NULL,
	amount           INTEGER,
	currency         TEXT,
	mode             TEXT,
	registered_at    TEXT,
	state            TEXT NOT NULL,
	captured         INTEGER NOT NULL DEFAULT 0,
	refunded         INTEGER NOT NULL DEFAULT 0,
	full_refund      INTEGER NOT NULL DEFAULT 0,
	max_rank         INTEGER NOT NULL DEFAULT -1,
	max_occurred     TEXT,
	redirect_outcome TEXT,
	redirect_at      TEXT,
	created_at       TEXT NOT NULL,
	updated_at       TEXT NOT NULL,
	state_since      TEXT NOT NULL,
	last_event_at    TEXT,
	UNIQUE (provider, checkout_id)
);
-- The sweep looks for orders in a state for too long and for redirects
-- without a confirming webhook; both through these indexes, never a scan.
CREATE INDEX orders_state_since ON orders (state, state_since);
CREATE INDEX orders_redirect ON orders (redirect_at) WHERE redirect_at IS NOT NULL;

-- Every provider id that names an order: its checkout id and any other id
-- (payin, payment) an event refers to it by.
CREATE TABLE order_aliases (
	provider    TEXT NOT NULL,
	external_id TEXT NOT NULL,
	order_ref   INTEGER NOT NULL REFERENCES orders (id),
	PRIMARY KEY (provider, external_id)
) WITHOUT ROWID;

-- Events in arrival order (id is the arrival sequence). A redelivery of an
-- event already stored is kept as its own row with result 'duplicate' and
-- original_id pointing at the first; dedupe is a fixed-size hash of
-- (provider, dedupe key), unique among originals.
CREATE TABLE events (
	id                INTEGER PRIMARY KEY,
	order_ref         INTEGER REFERENCES orders (id),
	provider          TEXT NOT NULL,
	dedupe            BLOB NOT NULL,
	provider_event_id TEXT NOT NULL,
	provider_type     TEXT NOT NULL,
	kind              TEXT NOT NULL,
	result            TEXT NOT NULL,
	from_state        TEXT,
	to_state          TEXT,
	amount            INTEGER NOT NULL DEFAULT 0,
	currency          TEXT,
	mode              TEXT,
	occurred_at       TEXT,
	received_at       TEXT NOT NULL,
	out_of_order      INTEGER NOT NULL DEFAULT 0,
	unsigned          INTEGER NOT NULL DEFAULT 0,
	original_id       INTEGER REFERENCES events (id)
);
CREATE UNIQUE INDEX events_dedupe ON events (dedupe) WHERE original_id IS NULL;
CREATE INDEX events_order ON events (order_ref, id);
CREATE INDEX events_received ON events (received_at);

-- The raw request of every original event, kept apart so the hot tables
-- stay small; duplicates point at their original's body.
CREATE TABLE raw_events (
	event_id INTEGER PRIMARY KEY REFERENCES events (id),
	headers  TEXT NOT NULL,
	body     BLOB NOT NULL
);

CREATE TABLE anomalies (
	id          INTEGER PRIMARY KEY,
	order_ref   INTEGER NOT NULL REFERENCES orders (id),
	kind        TEXT NOT NULL,
	status      TEXT NOT NULL,
	detail      TEXT NOT NULL,
	event_seqs  TEXT NOT NULL DEFAULT '[]',
	count       INTEGER NOT NULL DEFAULT 1,
	opened_at   TEXT NOT NULL,
	updated_at  TEXT NOT NULL,
	resolved_at TEXT,
	resolution  TEXT,
	note        TEXT,
	-- one anomaly of a kind per order, ever: re-running a rule updates it
	-- and a resolved anomaly is not raised again
	UNIQUE (order_ref, kind)
);
CREATE INDEX anomalies_status ON anomalies (status, kind);
CREATE INDEX anomalies_opened ON anomalies (opened_at);

-- Requests refused before anything about them was stored (bad signature,
-- malformed body), counted per provider, reason and hour for the report.
CREATE TABLE rejections (
	provider TEXT NOT NULL,
	reason   TEXT NOT NULL,
	hour     TEXT NOT NULL,
	count    INTEGER NOT NULL,
	PRIMARY KEY (provider, reason, hour)
) WITHOUT ROWID;

-- Last completed run of each scheduled job, so a run missed while the
-- process was down is caught up at start.
CREATE TABLE watermarks (
	name TEXT PRIMARY KEY,
	at   TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE reports (
	id           INTEGER PRIMARY KEY,
	created_at   TEXT NOT NULL,
	period_start TEXT NOT NULL,
	period_end   TEXT NOT NULL,
	json         BLOB NOT NULL,
	markdown     TEXT NOT NULL,
	html         TEXT NOT NULL
);
