-- Orders: one row per provider checkout. order_id is the shop's id, NULL
-- until the shop registers the order (a webhook can come first).
CREATE TABLE orders (
	id               BIGSERIAL PRIMARY KEY,
	order_id         TEXT UNIQUE,
	provider         TEXT NOT NULL,
	checkout_id      TEXT NOT NULL,
	amount           BIGINT,
	currency         TEXT,
	mode             TEXT,
	registered_at    TIMESTAMPTZ,
	registered_ids   JSONB,
	state            TEXT NOT NULL,
	captured         BIGINT NOT NULL DEFAULT 0,
	refunded         BIGINT NOT NULL DEFAULT 0,
	full_refund      BOOLEAN NOT NULL DEFAULT false,
	max_rank         INTEGER NOT NULL DEFAULT -1,
	max_occurred     TIMESTAMPTZ,
	redirect_outcome TEXT,
	redirect_at      TIMESTAMPTZ,
	reference        TEXT,
	created_at       TIMESTAMPTZ NOT NULL,
	updated_at       TIMESTAMPTZ NOT NULL,
	state_since      TIMESTAMPTZ NOT NULL,
	last_event_at    TIMESTAMPTZ,
	UNIQUE (provider, checkout_id)
);
-- The sweep looks for orders in a state for too long and for redirects
-- without a confirming webhook, by keyset through these indexes.
CREATE INDEX orders_state_since ON orders (state, state_since, id);
CREATE INDEX orders_redirect ON orders (redirect_at, id) WHERE redirect_at IS NOT NULL;
-- The shop's order id a webhook named, on orders still unregistered.
CREATE INDEX orders_reference ON orders (reference, provider) WHERE order_id IS NULL AND reference IS NOT NULL;

-- Every provider id that names an order.
CREATE TABLE order_aliases (
	provider    TEXT NOT NULL,
	external_id TEXT NOT NULL,
	order_ref   BIGINT NOT NULL REFERENCES orders (id),
	PRIMARY KEY (provider, external_id)
);
CREATE INDEX order_aliases_order ON order_aliases (order_ref);

-- Events in arrival order (id is the arrival sequence). A redelivery is
-- kept as its own row with result 'duplicate' and original_id pointing at
-- the first; dedupe is a fixed-size hash of (provider, dedupe key), unique
-- among originals across every replica.
CREATE TABLE events (
	id                BIGSERIAL PRIMARY KEY,
	order_ref         BIGINT REFERENCES orders (id),
	provider          TEXT NOT NULL,
	dedupe            BYTEA NOT NULL,
	provider_event_id TEXT NOT NULL,
	provider_type     TEXT NOT NULL,
	kind              TEXT NOT NULL,
	result            TEXT NOT NULL,
	from_state        TEXT,
	to_state          TEXT,
	amount            BIGINT NOT NULL DEFAULT 0,
	currency          TEXT,
	mode              TEXT,
	occurred_at       TIMESTAMPTZ,
	received_at       TIMESTAMPTZ NOT NULL,
	out_of_order      BOOLEAN NOT NULL DEFAULT false,
	unsigned          BOOLEAN NOT NULL DEFAULT false,
	ids               JSONB,
	original_id       BIGINT REFERENCES events (id)
);
CREATE UNIQUE INDEX events_dedupe ON events (dedupe) WHERE original_id IS NULL;
CREATE INDEX events_order ON events (order_ref, id);
CREATE INDEX events_received ON events (received_at);

-- The raw request of every event, kept apart so the hot tables stay small.
CREATE TABLE raw_events (
	event_id BIGINT PRIMARY KEY REFERENCES events (id),
	headers  JSONB NOT NULL,
	body     BYTEA NOT NULL
);

CREATE TABLE anomalies (
	id          BIGSERIAL PRIMARY KEY,
	order_ref   BIGINT NOT NULL REFERENCES orders (id),
	kind        TEXT NOT NULL,
	status      TEXT NOT NULL,
	detail      TEXT NOT NULL,
	event_seqs  JSONB NOT NULL DEFAULT '[]',
	count       INTEGER NOT NULL DEFAULT 1,
	opened_at   TIMESTAMPTZ NOT NULL,
	updated_at  TIMESTAMPTZ NOT NULL,
	resolved_at TIMESTAMPTZ,
	resolution  TEXT,
	note        TEXT,
	-- one anomaly of a kind per order, ever
	UNIQUE (order_ref, kind)
);
CREATE INDEX anomalies_status ON anomalies (status, kind, opened_at);
CREATE INDEX anomalies_opened ON anomalies (opened_at);
CREATE INDEX anomalies_resolved ON anomalies (resolved_at) WHERE resolved_at IS NOT NULL;

-- Requests refused before anything about them was stored.
CREATE TABLE rejections (
	provider TEXT NOT NULL,
	reason   TEXT NOT NULL,
	hour     TIMESTAMPTZ NOT NULL,
	count    BIGINT NOT NULL,
	PRIMARY KEY (provider, reason, hour)
);

-- Last completed run of each scheduled job, and the sweep's cursors.
CREATE TABLE watermarks (
	name TEXT PRIMARY KEY,
	at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE reports (
	id           BIGSERIAL PRIMARY KEY,
	created_at   TIMESTAMPTZ NOT NULL,
	period_start TIMESTAMPTZ NOT NULL,
	period_end   TIMESTAMPTZ NOT NULL,
	json         BYTEA NOT NULL,
	markdown     TEXT NOT NULL,
	html         TEXT NOT NULL
);
