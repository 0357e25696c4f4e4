// Package engine is orderstate's domain: the Order, Event, Anomaly and Report
// types, the Adapter and Store interfaces, the ingest pipeline (verify,
// parse, then hand the event to a store that dedupes, applies and records
// it in one transaction), and the rules that decide which anomalies an
// order's facts raise, as plain functions a test calls without a database.
//
// engine holds no SQL and imports no store: each store (engine/sqlite, the
// embedded default) lives in a package of its own, only loads and saves,
// and asks these rules what a change means. engine imports statemachine and
// nothing provider-specific: adapters are handed to it by cmd.
package engine
