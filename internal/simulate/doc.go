// Package simulate plays a shop's day of checkout traffic across the four
// providers (Tokenz, Yoco, Tazapay, Tweed) against a running orderstate, and
// says what orderstate should conclude from it.
//
// A Generator turns a seed into orders. Each order is independent: order i
// draws from its own PCG stream seeded with (seed, i), so a run repeats byte
// for byte, orders can be generated lazily or in parallel, and a load
// generator can produce order 1,000,000 without producing the ones before
// it. An order is the shop's registration, the provider's webhooks and the
// customer's redirect back, as Deliveries in the sequence they reach
// orderstate. Faults are layered on at configurable rates: deliveries out of
// order, redeliveries on each provider's retry schedule, dropped webhooks
// (including the confirming one after a successful redirect), payment after
// expiry, Tweed's FAILED after DONE and FAILED_AFTER_TX_COMPLETED, amounts,
// currencies and modes that differ from the registration, redirects that
// contradict the provider, and forged signatures. Half the Tazapay orders are
// registered with their payin id in other_ids, as a shop that kept it from
// Tazapay's answer would; the others leave their payment attempts to
// orders of their own until a checkout event ties the two.
//
// Bodies are built once; signatures are computed when a delivery is turned
// into a Request, with the receiver's clock, because Yoco and Tokenz sign a
// timestamp the receiver checks against its own time (and a Yoco retry is
// signed anew). Request gives the exact method, path, headers and body
// without sending anything; Sender sends orders over HTTP, each order's
// deliveries in sequence and different orders concurrently.
//
// Every order carries its ground truth: the state orderstate must end in and
// the set of anomaly kinds it must have raised, derived by truth.go from what
// was actually sent and in which order. truth.go restates DESIGN's rules
// independently of the engine and the state machine on purpose: a self-check
// that reused their code would agree with their bugs. Check compares the
// truth with what orderstate reported.
//
// It is a test tool, not an adapter: it imports all four adapters, as a
// shop's traffic spans them. It is internal to the module so that the demo
// (cmd/orderstate) and the load generator (cmd/orderstate-bench) play the
// same traffic.
package simulate
