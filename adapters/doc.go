// Package adapters holds one package per payment provider (tokenz, yoco,
// tazapay, tweed), each implementing engine.Adapter: verify the raw request
// the way the provider signs it, then parse it into a canonical event. Each
// provider package also ships Sign, which produces a request signed exactly
// as that provider would, for tests, the demo and the benchmarks.
//
// Adapters never import each other; wire holds what they share (lenient
// decoding of the timestamp and amount forms providers have drifted
// through). cmd wires the adapters explicitly; nothing registers itself.
package adapters
