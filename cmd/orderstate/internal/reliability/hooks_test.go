package reliability

import (
	"fmt"
	"net/http"
	"time"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/tokenz"
	"github.com/orderstate/orderstate/adapters/tweed"
	"github.com/orderstate/orderstate/adapters/yoco"
	sm "github.com/orderstate/orderstate/statemachine"
)

var providers = []string{"tazapay", "tokenz", "tweed", "yoco"}

// hook is one provider event: the bytes the provider sends and what the
// store must make of them.
type hook struct {
	o        *order
	provider string
	order    string // the provider's checkout id
	key      string // what the store deduplicates on
	kind     sm.Kind
	amount   int64
	body     []byte
	delivery string // Yoco's webhook-id, Tweed's X-Tweed-Delivery

	// Kept by the test that sends it.
	handed   bool // given to a sender
	attempts int  // deliveries tried
	acked    bool // a delivery got a 2xx
	result   string
	seq      int64 // the seq the acknowledging answer gave
}

// header signs the hook at now. Tokenz and Yoco sign the delivery time, so
// a provider's retry carries a fresh signature; Yoco keeps its webhook-id
// across retries, which is what dedupes them. Tweed's retry is the same
// body, which is what dedupes it; its delivery id is only shown.
func (h *hook) header(now time.Time) http.Header {
	var hd http.Header
	switch h.provider {
	case "tokenz":
		hd = tokenz.Sign(tokenzSecret, h.body, now)
	case "yoco":
		hd = yoco.Sign(yocoSecret, h.delivery, h.body, now)
	case "tazapay":
		hd = tazapay.Sign(tazapaySecret, h.body)
	case "tweed":
		hd = tweed.Sign(tweedSecret, h.body)
		hd.Set(tweed.DeliveryHeader, h.delivery)
	default:
		panic("unknown provider " + h.provider)
	}
	hd.Set("Content-Type", "application/json")
	return hd
}

// order is one checkout and the events its provider sends about it.
type order struct {
	provider string
	checkout string
	hooks    []*hook
	amount   int64  // what the checkout is for, in minor units
	currency string // its ISO 4217 code
	// registered is the amount the shop registered the order with, when
	// a test registers it (and -1 until then).
	registered int64
}

// expected is the state the set of the order's events decides, whatever
// order they arrived in, against the amount the shop registered.
func (o *order) expected() sm.State {
	facts := make([]sm.Fact, len(o.hooks))
	for i, h := range o.hooks {
		facts[i] = sm.Fact{Kind: h.kind, Amount: h.amount}
	}
	return sm.Decide(max(o.registered, 0), facts)
}

// newOrder builds order n of a provider; variant picks one of a few
// lifecycles, so the run covers paid, refunded, failed, expired, processing
// and contradictory orders. prefix keeps ids apart between runs on one file.
func newOrder(prefix, provider string, n, variant int) *order {
	o := &order{provider: provider, registered: -1}
	base := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Minute)
	at := func(step int) time.Time { return base.Add(time.Duration(step) * 10 * time.Second) }
	id := func(what string, step int) string { return fmt.Sprintf("%s_%s%d_%d", what, prefix, n, step) }
	amount := int64(1000 + 7*n)
	add := func(key string, kind sm.Kind, amt int64, delivery string, body string) {
		o.hooks = append(o.hooks, &hook{provider: provider, order: o.checkout, key: key, kind: kind, amount: amt, body: []byte(body), delivery: delivery})
	}
	switch provider {
	case "tazapay":
		o.checkout = id("chk", 0)
		payin := id("pay", 0)
		checkout := func(step int, typ, paymentStatus string, kind sm.Kind, amt int64) {
			evt := id("evt", step)
			paid := int64(0)
			if paymentStatus == "paid" {
				paid = amount
			}
			add(evt, kind, amt, "", fmt.Sprintf(`{"type":%q,"created_at":%q,"id":%q,"object":"event","data":{"id":%q,"object":"checkout","payin":%q,`+
				`"invoice_currency":"USD","amount":%d,"amount_paid":%d,"status":"active","payment_status":%q,"reference_id":%q,"metadata":{}}}`,
				typ, at(step).Format(time.RFC3339), evt, o.checkout, payin, amount, paid, paymentStatus, id("ref", 0)))
		}
		refund := func(step int, amt int64) {
			evt := id("evt", step)
			add(evt, sm.KindRefunded, amt, "", fmt.Sprintf(`{"type":"refund.succeeded","created_at":%q,"id":%q,"object":"event","data":{"id":%q,"object":"refund",`+
				`"checkout":%q,"amount":%d,"currency":"USD","status":"succeeded"}}`, at(step).Format(time.RFC3339), evt, id("rfd", step), o.checkout, amt))
		}
		checkout(0, "checkout.created", "unpaid", sm.KindCheckoutCreated, amount)
		switch variant % 4 {
		case 0:
			checkout(1, "checkout.paid", "paid", sm.KindPaid, amount)
		case 1:
			checkout(1, "checkout.paid", "paid", sm.KindPaid, amount)
			refund(2, amount/4)
		case 2:
			checkout(1, "checkout.expired", "unpaid", sm.KindExpired, amount)
		case 3:
			checkout(1, "checkout.paid", "paid", sm.KindPaid, amount)
			checkout(2, "checkout.expired", "unpaid", sm.KindExpired, amount)
		}
	case "tokenz":
		o.checkout = id("order", 0)
		event := func(step int, typ string, kind sm.Kind) {
			evt := id("event", step)
			amt := int64(0)
			if kind == sm.KindPaid {
				amt = amount
			}
			add(evt, kind, amt, "", fmt.Sprintf(`{"id":%q,"object":"event","createdAt":%q,"test":false,"eventData":{"type":%q,"version":"1.0.0",`+
				`"data":{"id":%q,"object":"order","amount":{"amount":%d,"currency":"TWD"}}}}`,
				evt, at(step).Format(time.RFC3339Nano), typ, o.checkout, amount))
		}
		switch variant % 3 {
		case 0:
			event(0, "order.created", sm.KindCheckoutCreated)
			event(1, "order.succeeded", sm.KindPaid)
		case 1:
			event(1, "order.succeeded", sm.KindPaid)
		case 2:
			event(0, "order.created", sm.KindCheckoutCreated)
		}
	case "yoco":
		o.checkout = id("ch", 0)
		payment := id("p", 0)
		event := func(step int, typ string, kind sm.Kind, amt int64) {
			evt := id("evt", step)
			objType, paymentID, objID := "payment", "", payment
			if typ != "payment.succeeded" {
				objType, paymentID, objID = "refund", payment, id("rfd", step)
			}
			delivery := id("msg", step)
			add(delivery, kind, amt, delivery, fmt.Sprintf(`{"id":%q,"type":%q,"createdDate":%q,"payload":{"id":%q,"type":%q,"createdDate":%q,`+
				`"amount":%d,"currency":"ZAR","paymentId":%q,"status":"succeeded","mode":"live","metadata":{"checkoutId":%q}}}`,
				evt, typ, at(step).Format(time.RFC3339Nano), objID, objType, at(step).Format(time.RFC3339Nano), amt, paymentID, o.checkout))
		}
		event(0, "payment.succeeded", sm.KindPaid, amount)
		switch variant % 4 {
		case 1:
			event(1, "refund.succeeded", sm.KindRefunded, amount/3)
		case 2:
			event(1, "refund.succeeded", sm.KindRefunded, amount)
		case 3:
			event(1, "refund.failed", sm.KindInformational, amount)
		}
	case "tweed":
		o.checkout = id("c", 0)
		event := func(step int, status string, kind sm.Kind) {
			payment := ""
			amt := int64(0)
			if kind == sm.KindPaid || kind == sm.KindFailed {
				if kind == sm.KindPaid {
					amt = amount
				}
				payment = fmt.Sprintf(`,"paymentData":{"status":"succeeded","amount":%d,"created":%d,"currency":"usd","livemode":true}`, amount, at(step).Unix())
			}
			body := fmt.Sprintf(`{"type":"CHECKOUT_STATUS_UPDATED","data":{"checkoutData":{"checkoutId":%q,"customParams":{"orderRef":%q}},"status":%q%s}}`,
				o.checkout, id("so", 0), status, payment)
			add(tweed.DedupeKey([]byte(body)), kind, amt, id("dlv", step), body)
		}
		switch variant % 4 {
		case 0:
			event(0, "CREATED", sm.KindCheckoutCreated)
			event(1, "PERFORM_CHECKOUT_SUBMITTED", sm.KindPaymentProcessing)
			event(2, "DONE", sm.KindPaid)
		case 1:
			event(0, "CREATED", sm.KindCheckoutCreated)
			event(1, "PERFORM_CHECKOUT_SUBMITTED", sm.KindPaymentProcessing)
			event(2, "FAILED", sm.KindFailed)
		case 2:
			event(0, "CREATED", sm.KindCheckoutCreated)
			event(1, "TRANSACTION_BROADCAST", sm.KindPaymentProcessing)
		case 3:
			event(2, "DONE", sm.KindPaid)
			event(3, "FAILED", sm.KindFailed)
		}
	}
	o.amount, o.currency = amount, currencies[provider]
	for _, h := range o.hooks {
		h.o, h.order = o, o.checkout
	}
	return o
}

// currencies are the currencies newOrder's events carry, by provider.
var currencies = map[string]string{"tazapay": "USD", "tokenz": "TWD", "yoco": "ZAR", "tweed": "USD"}
