// Package postgres is orderstate's shared store: one PostgreSQL database
// that any number of serve replicas use at once, for shops that run more
// than one process or must not lose their truth with one machine. Like the
// SQLite store it only loads and saves, and asks engine's rules what each
// change raises or resolves; its migrations are embedded and applied at
// Open under an advisory lock, so replicas starting together do not race.
//
// Every write is one transaction that first takes transaction-scoped
// advisory locks on the provider ids, shop references and dedupe key it is
// about, in one fixed order, then locks the order rows it changes: two
// events of one order, arriving at two replicas, take turns in the
// database, and a webhook delivered to several replicas at once is applied
// by the first and recorded as a duplicate by the rest. A transaction that
// lost a race (a deadlock, an id another replica inserted first) runs
// again. Each write commits with PostgreSQL's own durability
// (synchronous_commit as the server has it) before the caller is answered.
package postgres
