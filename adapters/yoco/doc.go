// Package yoco is the orderstate adapter for Yoco online payments webhooks.
//
// Yoco signs with the Standard Webhooks scheme: HMAC-SHA256 over
// "<webhook-id>.<webhook-timestamp>.<raw body>", keyed with the base64 bytes
// of a "whsec_" secret, and asks receivers to reject timestamps more than
// three minutes from now. A secret that is not "whsec_" plus base64 can never
// verify anything, so New refuses it and a typo fails at start-up rather than
// as a stream of 401s; MustNew is the same for tests and fixed configurations.
//
// Yoco retries with a fresh timestamp and signature but the same webhook-id,
// so webhook-id is the dedupe key; the body id is the event id shown in
// timelines. Webhooks are account-wide and events name the checkout only in
// payload.metadata.checkoutId, so that is the checkout id; the payment id (on
// payments, and as paymentId on refunds) is kept as another name for it.
//
// Yoco sends three event types and no failure or expiry: the reconciler's
// missing-webhook and stuck rules cover those gaps, not this package. Its
// event and payload createdDate disagree in the documentation's own sample,
// so the event time is recorded but is weak evidence of order.
//
// # Polling
//
// Poller asks Yoco's Checkout API when a webhook is missing:
// GET https://payments.yoco.com/api/checkouts/{id} with
// "Authorization: Bearer <secret key>". What this relies on:
//
//   - developer.yoco.com/online/api-reference/checkout/payments/accept-payments
//     [D]: the Checkout API at https://payments.yoco.com/api/checkouts, its
//     secret-key authentication, amounts in cents, "verify that the payment
//     is successful" on the server.
//   - The GET of one checkout and its status field [S]: many integrations
//     read it, and all of them treat "completed" as paid. The full list of
//     status values could not be read from Yoco's reference.
//
// Only "completed" is mapped, to paid, with the checkout's amount and
// currency, its paymentId as a further id of the order (the payment
// webhooks name it) and processingMode as the mode. Every other status
// ("created", "started", "processing", or any other) establishes nothing:
// a value whose meaning cannot be confirmed must not move an order. Yoco's
// webhooks send no failure or expiry either, so a poll of Yoco can only
// ever find an order paid.
package yoco
