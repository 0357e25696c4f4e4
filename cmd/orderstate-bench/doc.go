// Command orderstate-bench measures orderstate the way a busy shop would
// load it: it starts the real `orderstate serve` binary as a second process,
// drives it over loopback with the traffic simulator's orders
// (internal/simulate: the four providers' lifecycles, their bodies padded
// to 2–3 KB, signed the way each provider signs them, with redeliveries),
// and prints one table: the bare durable SQLite insert rate of this
// disk as the yardstick, ingest at concurrency 1, 8 and 64 on a fresh and a
// million-order store, order reads during ingest, the reconciler's sweep and
// nightly report on the large store, the server's peak RSS and the store's
// bytes per event. `make bench` runs it.
package main
