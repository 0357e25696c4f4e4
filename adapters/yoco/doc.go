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
package yoco
