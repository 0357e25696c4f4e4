// Package engine is orderstate's domain: the Order, Event, Anomaly and Report
// types, the Adapter and Store interfaces, the ingest pipeline (verify, parse,
// dedupe, apply, record, in one transaction) and the SQLite store.
//
// engine imports statemachine and nothing provider-specific: adapters are
// handed to it by cmd. Every write goes through one writer goroutine that
// groups concurrent webhooks into a single transaction (group commit) and
// answers each caller only after the transaction is durably committed. A
// batch runs without savepoints; when one write in it fails, the others are
// committed without it and it is run alone, so it fails by itself. The
// writer keeps the orders it touched recently in memory (cache.go) and
// checkpoints run beside it rather than inside its commits (checkpoint.go).
// Reads use their own connections and never wait behind the writer.
package engine
