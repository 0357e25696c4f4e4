// Package tokenz is the orderstate adapter for Tokenz Checkout webhooks.
//
// Tokenz documents less than the other providers, so several things here are
// assumptions, each kept in one place so that confirming it with Tokenz
// means one change:
//
//   - The signed content. The docs show the header,
//     "Tokenz-Signature: t:<unix ms>,v1:<base64>[,v1:<base64>...]", but the
//     retrieved copy ends before saying what is signed. The adapter signs
//     "<t>.<raw body>" with HMAC-SHA256 keyed with the secret's bytes as-is,
//     in standard base64: the Stripe and Smartpay construction the header
//     imitates, with the output encoding of the documented example. Only
//     signature in adapter.go holds the recipe.
//   - The tolerance: five minutes either way, the Stripe default, because
//     Tokenz states none.
//   - Amount units. The order schema was not retrieved; the integer in
//     data.amount.amount is taken as minor units (1500 TWD is 1500). A
//     fractional amount is refused rather than guessed at.
//   - Mode. A top-level "test" boolean marks test events, as Smartpay's do;
//     when it is absent the event's mode is left unknown.
//
// Two shapes drift in the wild and are both accepted: the dashboard spells
// the paid event "order_succeeded", and a third-party integration reads the
// order from data.order rather than data. Tokenz documents no shop reference
// on the order; a "reference" or "merchantReference" field is used when one
// is present.
package tokenz
