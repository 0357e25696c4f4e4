package simulate

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"

	sm "github.com/orderstate/orderstate/statemachine"
)

// WebhookSpec describes one webhook for NewWebhook to build, as orderstate
// send takes it on its command line.
type WebhookSpec struct {
	Provider string
	// Type is the provider's event type (or, for Tweed, status):
	// "checkout.paid", "payment.succeeded", "DONE"; Types lists them.
	Type string
	// CheckoutID is the provider's id of the checkout, as the shop
	// registered it.
	CheckoutID string
	// Amount (minor units), Currency and Mode are what the provider
	// reports; a refund's amount is the amount refunded.
	Amount   int64
	Currency string
	Mode     string
	// Reference is the shop's order id, where the provider's payload
	// carries one (Tazapay reference_id, Tweed customParams.orderRef).
	Reference string
	// EventID is the provider's event id; a new one when empty.
	EventID string
	// At is the provider's time of the event; now when zero.
	At time.Time
}

// eventDef is how a provider's event type is built: its canonical kind,
// the object statuses it carries, and whether it is about money that moved
// (a Tweed paymentData) or was refunded.
type eventDef struct {
	kind                  sm.Kind
	status, paymentStatus string
	payment               bool
	refund                bool
}

// webhookTypes are the event types NewWebhook builds, each as the day's
// traffic builds it (see generate.go).
var webhookTypes = map[string]map[string]eventDef{
	Tokenz: {
		"order.created":   {kind: sm.KindCheckoutCreated},
		"order.succeeded": {kind: sm.KindPaid},
	},
	Yoco: {
		"payment.succeeded": {kind: sm.KindPaid},
		"refund.succeeded":  {kind: sm.KindRefunded, refund: true},
		"refund.failed":     {kind: sm.KindInformational, refund: true},
	},
	Tazapay: {
		"checkout.created":               {kind: sm.KindCheckoutCreated, status: "active", paymentStatus: "unpaid"},
		"checkout.paid":                  {kind: sm.KindPaid, status: "active", paymentStatus: "paid"},
		"checkout.expired":               {kind: sm.KindExpired, status: "expired", paymentStatus: "unpaid"},
		"checkout.tax_invoice_generated": {kind: sm.KindInformational, status: "active", paymentStatus: "paid"},
		"payment_attempt.created":        {kind: sm.KindPaymentProcessing, status: "requires_action"},
		"payment_attempt.failed":         {kind: sm.KindPaymentAttemptFailed, status: "failed"},
		"payment_attempt.succeeded":      {kind: sm.KindPaid, status: "succeeded"},
		"refund.pending":                 {kind: sm.KindInformational, status: "pending", refund: true},
		"refund.succeeded":               {kind: sm.KindRefunded, status: "succeeded", refund: true},
	},
	Tweed: {
		"CREATED":                    {kind: sm.KindCheckoutCreated},
		"PERFORM_CHECKOUT_SUBMITTED": {kind: sm.KindPaymentProcessing},
		"TRANSACTION_BROADCAST":      {kind: sm.KindPaymentProcessing, payment: true, status: "processing"},
		"DONE":                       {kind: sm.KindPaid, payment: true, status: "succeeded"},
		"FAILED":                     {kind: sm.KindFailed, payment: true, status: "requires_payment_method"},
		"FAILED_AFTER_TX_COMPLETED":  {kind: sm.KindFailedAfterSettlement, payment: true, status: "succeeded"},
	},
}

// Types lists the event types NewWebhook builds for provider, sorted; nil
// for a provider it does not know.
func Types(provider string) []string {
	var out []string
	for t := range webhookTypes[provider] {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// NewWebhook builds the webhook spec describes, in the provider's own shape
// as the day's traffic has it, ready to be signed by Delivery.Request.
// The provider's other ids for the checkout (a Tazapay payin, a Yoco
// payment id) are derived from the checkout id, so that the webhooks of
// one checkout name the same ones, as a provider's do; everything else
// not given (event ids, a Yoco delivery id) is new each time.
func NewWebhook(spec WebhookSpec) (*Delivery, error) {
	defs, ok := webhookTypes[spec.Provider]
	if !ok {
		return nil, fmt.Errorf("no provider %q; providers: %s", spec.Provider, strings.Join(ProviderNames, ", "))
	}
	def, ok := defs[spec.Type]
	if !ok {
		return nil, fmt.Errorf("%s has no event type %q here; types: %s", spec.Provider, spec.Type, strings.Join(Types(spec.Provider), ", "))
	}
	if spec.CheckoutID == "" {
		return nil, fmt.Errorf("a %s webhook needs the checkout id it is about", spec.Provider)
	}
	if spec.Mode == "" {
		spec.Mode = "live"
	}
	if spec.At.IsZero() {
		spec.At = time.Now()
	}
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	r := mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	o := &Order{ID: spec.Reference, Provider: spec.Provider, CheckoutID: spec.CheckoutID, Amount: spec.Amount,
		Currency: spec.Currency, Mode: spec.Mode}
	s := &story{r: r, o: o, t0: spec.At.Add(-2 * time.Minute), checkout: spec.CheckoutID,
		fig: figures{amount: spec.Amount, currency: spec.Currency, mode: spec.Mode}}
	derived := func(prefix string, n int) string {
		sum := sha256.Sum256([]byte(spec.Provider + "\x00" + spec.CheckoutID + "\x00" + prefix))
		return prefix + hex.EncodeToString(sum[:])[:n]
	}
	switch spec.Provider {
	case Tokenz:
		s.description = "1 x Oolong 150g"
	case Yoco:
		s.paymentID = derived("p_", 10)
		s.card = yocoCard{ExpiryMonth: 12, ExpiryYear: 29, MaskedCard: "************4242", Scheme: "visa"}
	case Tazapay:
		s.payin, s.paidAttempt = derived("pay_", 20), derived("pat_", 20)
		s.txRef = "TR" + token(r, 15, digits)
		s.expiresAt = s.t0.Add(time.Hour)
	case Tweed:
		s.quantity, s.tweedDelivery = 1, true
		s.requestID = "req_" + token(r, 6, lower36)
		s.txHash = "0x" + token(r, 64, hexDigits)
		s.paymentCreated = s.t0.Add(time.Minute)
	}
	e := s.add(spec.Type, def.kind, spec.At)
	e.status, e.paymentStatus, e.payment, e.tweedStatus = def.status, def.paymentStatus, def.payment, def.status
	if def.refund {
		e.refundID, e.amount = "rfd_"+token(r, 20, lower36), spec.Amount
	}
	if strings.HasPrefix(spec.Type, "payment_attempt.") {
		e.attemptID = s.paidAttempt
	}
	if spec.EventID != "" {
		e.id = spec.EventID
	}
	body, ev := s.render(e)
	return &Delivery{Action: Webhook, Provider: spec.Provider, OrderID: spec.Reference, At: spec.At, Body: body, Event: ev,
		msgID: e.msgID}, nil
}

// RawWebhook is a webhook whose body is given whole, to be signed by
// Delivery.Request as provider signs it. delivery is the provider's
// delivery id where it sends one (Yoco's webhook-id, Tweed's
// X-Tweed-Delivery); for Yoco, which signs it, a new one when empty.
func RawWebhook(provider string, body []byte, delivery string) (*Delivery, error) {
	if _, ok := webhookTypes[provider]; !ok {
		return nil, fmt.Errorf("no provider %q; providers: %s", provider, strings.Join(ProviderNames, ", "))
	}
	if provider == Yoco && delivery == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		delivery = "msg_" + hex.EncodeToString(b[:])
	}
	return &Delivery{Action: Webhook, Provider: provider, At: time.Now(), Body: body, msgID: delivery}, nil
}

// DeliveryID is the delivery id the webhook is sent with ("" for none).
func (d *Delivery) DeliveryID() string { return d.msgID }
