// Package reconcile finds the orders that need a person and writes the
// anomaly report an operator reads each morning.
//
// Ingest flags what a single webhook shows (out of order, duplicate, late
// after a final state, contradictory, mismatched). What only the passing of
// time shows is the sweep's job: a customer who came back paid and whose
// confirming webhook never arrived (missing_webhook), an order that stays
// pending or processing past its time-to-live (stuck), and a redirect that
// contradicts the provider (redirect_mismatch, re-checked whenever an order
// changed). The sweep also resolves what cleared, saying how long it took.
//
// Each rule reads only a window of an index: the orders that crossed its
// threshold since the previous sweep, whose cursor is committed in the same
// transaction as the anomalies it raised. A sweep therefore costs what
// happened since the last one, not the size of the store, and raising is
// idempotent: one anomaly per order and kind, ever, and a resolved or
// acknowledged one is never raised again. A sweep with more to change than
// Config.SweepChunk (the first sweep of a large store) commits in chunks,
// each with the cursors of the rules it finished, so webhooks never wait
// for more than one chunk.
//
// The report covers a period: order totals per provider and state, the
// orders with open anomalies that need action, each once with all its
// anomalies, most urgent first, with their evidence (the order's event
// timeline) and a suggested action, what was resolved, and per provider the
// webhook lag, duplicates, rejected requests, unknown event types, unsigned
// events and events for orders nobody registered. It renders as JSON,
// Markdown and a self-contained HTML page, deterministically for a given
// store and clock. Text from webhooks and people is escaped for each
// format (mdCell in Markdown, html/template in HTML), and each rendering
// ends with a pass that leaves no control character in it, so nothing in
// that text acts on the terminal or viewer of whoever reads the report.
//
// The Scheduler runs both on robfig/cron in UTC. Its chain skips a run while
// the previous one is still going and recovers a panic inside that skip, so
// a panicking run gives its slot back (cron v3.0.1 otherwise never runs the
// job again). Each completed run records a watermark in the store; on start,
// a job whose schedule fired while the process was down runs once at once.
package reconcile
