// Package tazapay verifies and parses Tazapay webhooks (checkout, payment
// attempt, payin and refund events) into canonical events.
//
// # Signature
//
// Tazapay signs base64(HMAC-SHA256(secret, id + body + created_at)), plain
// concatenation, where id and created_at are the event's own top-level
// fields. The signed content therefore depends on the body, so Verify has to
// read those two fields out of the raw bytes before it can check anything;
// Sign and Verify share that one extraction so they cannot disagree. The
// integer created_at of the older documentation is signed as its decimal
// text. Tazapay documents no tolerance window and the signed content has no
// delivery time, so none is enforced: a replayed request verifies, and the
// engine's dedupe on the event id makes the replay harmless.
//
// # Mapping decisions
//
// Checkout status and payment_status are independent fields (Tazapay's own
// sample sends status "expired" with payment_status "paid"), so a
// checkout.created or checkout.expired whose payment_status is "paid" is
// reported as paid: the money was taken whatever the page's status says.
// checkout.tax_invoice_generated stays informational even then; it only
// attaches a document.
//
// payment_attempt.created is documented with the type
// "payment_attempt.requires_action"; both spellings mean an attempt in
// flight. payin.requires_payment_method is also reported as a payment in
// processing, not as a new checkout: a payin returns to that status after a
// failed attempt, and at the same lifecycle rank as the failure it is not
// mistaken for an event from the past. payin.cancelled is reported as
// failed: a cancelled payin can no longer be paid, and a cancellation next
// to a capture is a contradiction a person should see.
//
// refund.succeeded is a refund of its amount; refund.pending and
// refund.failed change nothing and are informational. A refund.succeeded
// without an amount is refused as malformed rather than read as a full
// refund, which would be a guess about money.
//
// payout.*, escrow.* and anything else undocumented parse with the unknown
// kind, so they are counted and never applied.
//
// # Ids
//
// Orders are registered with the checkout id (chk_); events about a payin
// or an attempt may carry only the payin id (pay_, though some samples reuse
// the chk_ id there). Every event therefore names the checkout id when it
// has one, else the payin id, and lists the other ids it carries (payin,
// payment attempt) as Refs so the engine can link them. Refunds name the
// attempt they refund, which is why attempt ids are listed too.
//
// Reference is the merchant's reference_id of checkouts, payins and refunds.
// A payment attempt's reference_id is a Tazapay transaction number
// ("TR000001385673188" in the samples), not the shop's order id, so it is
// not used.
//
// # Money
//
// Amounts are integer minor units; the older string form ("6700") and
// lower-case currencies are accepted. A paid checkout or payin reports
// amount_paid (amount when amount_paid is absent or zero) in the invoice
// currency; refunds report amount in currency. Payment attempts report no
// money at all: their amount is in the customer's charge currency, which
// differs from the invoice currency whenever Tazapay converts, and a capture
// in another currency would raise a false currency mismatch and skew the
// refund totals. checkout.paid carries the captured amount.
//
// # Mode
//
// Tazapay's payloads do not say live or test; sandbox is a separate host
// with separate keys. Adapter.Mode is what the operator says this endpoint
// serves, and "" when not configured.
//
// # Polling
//
// Poller asks Tazapay's Fetch Checkout API when a webhook is missing:
// GET {base}/v3/checkout/{id} with HTTP Basic auth (API key : API secret),
// base https://service.tazapay.com, sandbox
// https://service-sandbox.tazapay.com. What this relies on:
//
//   - developer.tazapay.com, "Fetch Checkout" (and "Fetch Payment Attempt",
//     the same v3 family, whose curl sample shows the Basic header and the
//     envelope): the answer is {"status": "success", "message": ...,
//     "data": <checkout object>}.
//   - docs.tazapay.com/reference/checkout-object: the checkout object is the
//     one its webhooks carry: id, invoice_currency, amount, amount_paid,
//     payment_status, status, payin, payment_attempts[],
//     latest_payment_attempt, partially_paid, paid_in_excess, reference_id.
//     Its example pairs status "expired" with payment_status "paid".
//   - docs.tazapay.com/docs/checkout-object-states: payment_status is
//     unpaid, processing or paid.
//
// The answer is mapped as checkout.paid / checkout.expired would be:
// payment_status paid is paid (amount_paid, else amount, in the invoice
// currency) whatever status says; processing is a payment in flight; unpaid
// with status expired is expired; unpaid and active, or a value not listed
// above, establishes nothing. A refund is never read from a checkout: its
// webhooks carry it. An answer whose data.id is not the checkout asked about
// is refused as malformed.
package tazapay
