// Package tweed verifies and parses Tweed checkout webhooks
// (CHECKOUT_STATUS_UPDATED) into canonical events.
//
// # Signature
//
// Signing is optional at Tweed: a merchant who sets a secret gets
// X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>, GitHub
// style, with no timestamp, so there is no tolerance window and no replay
// protection beyond dedupe. The rule here:
//
//   - With any secret configured, every request must carry a signature that
//     verifies under one of them. AllowUnsigned does not weaken this: an
//     operator who configured a secret expects forged and unsigned requests
//     to be refused, and accepting a request merely because it left the
//     header off would let anyone bypass the secret.
//   - With no secret, requests are refused unless AllowUnsigned is set; then
//     every request is accepted and its event is marked Unsigned, so the
//     report can count what was taken on trust. A signature header sent
//     anyway cannot be checked and is ignored.
//
// # Mapping decisions
//
// data.status decides the kind: CREATED is checkout_created;
// PERFORM_CHECKOUT_SUBMITTED and TRANSACTION_BROADCAST are a payment in
// processing; DONE is paid; FAILED is failed; FAILED_AFTER_TX_COMPLETED is
// failed_after_settlement. Any other status, and any type other than
// CHECKOUT_STATUS_UPDATED, parses with the unknown kind. Statuses and types
// are compared without regard to case.
//
// Reference is the first present of customParams.orderRef, orderId and
// order_id: customParams is free-form merchant data, and these are the keys
// a shop passes its order id under (orderRef in Tweed's own example).
//
// # Money
//
// paymentData is optional; without it an event carries no amount, currency,
// mode or time. paymentData.amount is taken as minor units: paymentData is
// shaped like a Stripe payment (status "succeeded", created in unix seconds,
// lower-case currency, livemode), whose amounts are minor units, and the
// documented sample (1055 usd) reads as $10.55. checkoutData.price is not
// used for money: its unit is undocumented (whole units or cents) and it
// sits beside a quantity, so it is at best a per-item figure, not what was
// charged; reading it as the amount would raise false amount mismatches.
// livemode gives the mode (true: live,
// false: test). OccurredAt is paymentData.created, the payment's creation
// time: the same on every later status of one payment, so it is evidence,
// not an ordering of those statuses.
//
// # Dedupe
//
// The body has no event id. The dedupe key is the hex SHA-256 of the raw
// body, so a byte-identical redelivery is a duplicate whatever its headers
// say. X-Tweed-Delivery is not used for dedupe: the signature does not
// cover it, and a key taken from it would let anyone holding one signed
// webhook replay it as a new event by changing the header. Identical bodies
// are one fact: the body carries no id or time to tell two apart.
//
// X-Tweed-Delivery, when present, is the event id shown in timelines,
// cleaned to its letters, digits and "-_.:" and cut at 100 of them. Without
// it (or when nothing is left of it) the event id is
// "<status>:<first 12 hex digits of the body's hash>".
//
// The legacy v1 webhook (nftId, status success|failure, no type) is not
// supported: it carries no checkout id to find the order by, and Tweed
// labels it legacy. Such a body is refused as malformed.
package tweed
