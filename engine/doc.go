// Package engine is orderstate's domain: the Order, Event, Anomaly and Report
// types, the Adapter and Store interfaces, the ingest pipeline (verify, parse,
// dedupe, apply, record, in one transaction) and the SQLite store.
//
// engine imports statemachine and nothing provider-specific: adapters are
// handed to it by cmd. Every write goes through one writer goroutine that
// groups concurrent webhooks into a single transaction (group commit), each
// in its own savepoint so that one bad event fails alone, and answers each
// caller only after the transaction is durably committed. Reads use their
// own connections and never wait behind the writer.
package engine
