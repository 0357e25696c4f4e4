// Package sqlite is orderstate's embedded store: one SQLite file, the
// default a newcomer gets. It loads and saves through engine.Store and asks
// engine's rules what each change raises or resolves; its migrations are
// embedded and applied at Open.
//
// Every write goes through one writer goroutine that groups concurrent
// webhooks into a single transaction (group commit) and answers each caller
// only after the transaction is durably committed. A batch runs without
// savepoints; when one write in it fails, the others are committed without
// it and it is run alone, so it fails by itself. The writer keeps the
// orders it touched recently in memory (cache.go) and checkpoints run
// beside it rather than inside its commits (checkpoint.go). Reads use their
// own connections and never wait behind the writer.
//
// Nothing outside this package runs SQL on the schema: tools and tests that
// read a store's file from outside (the demo's self-check, the benchmark,
// the crash harness) use Inspect, a read-only Inspector whose queries live
// here beside the migrations (inspector.go, trim.go).
package sqlite
