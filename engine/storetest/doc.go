// Package storetest is the conformance suite every store passes: the same
// tests, through the interfaces alone (Store: engine.Store, reconcile.Store
// and what the API reads), against the embedded SQLite store and against
// PostgreSQL. A store's own package runs it from a test:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, now func() time.Time) storetest.Store { ... })
//	}
//
// What it holds every store to is the product's contract: the state, the
// amounts and the order-free anomalies depend on the set of facts only,
// whatever order they arrive in, however orders were merged and whenever
// the shop registered; a redelivery is counted, never applied; bad input
// changes nothing; and what the reconciler, the reports, the API and the
// metrics read of a store means the same on every store.
package storetest
