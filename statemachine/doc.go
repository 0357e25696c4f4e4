// Package statemachine is the canonical order state machine: the states an
// order can be in, the canonical event kinds provider adapters emit, and one
// declarative transition table run on github.com/looplab/fsm.
//
// The package is pure: no I/O, no clock. The engine rebuilds a machine for an
// order from its stored state and totals, applies one event, and stores what
// comes out in the same SQL transaction.
//
// The central guarantee is that the state reached depends only on the set of
// events applied, never on their arrival order. Two things make that hold:
// the amounts an order carries (captured, refunded) are folded with
// commutative operations (max, sum, or), and every transition whose target
// depends on those amounts resolves it from the folded totals at the time of
// application. Decide states the same rules over a whole set of events; the
// property tests check that every permutation of a scenario folded through
// the table ends where Decide says.
package statemachine
