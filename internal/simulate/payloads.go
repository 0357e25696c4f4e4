package simulate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	sm "github.com/orderstate/orderstate/statemachine"
)

// pev is a provider event as the story tells it, before it is rendered in
// the provider's shape.
type pev struct {
	typ  string
	kind sm.Kind
	at   time.Time // provider time
	id   string    // the provider's event id
	// msgID is Yoco's webhook-id or Tweed's X-Tweed-Delivery ("" for none).
	msgID string

	// amount is the event's own amount where it differs from the order's
	// (refunds); zero means the order's captured amount.
	amount int64
	// Tazapay objects.
	status, paymentStatus string
	attemptID, refundID   string
	// Tweed: whether paymentData is present, and its status.
	payment     bool
	tweedStatus string

	// capture marks evidence of payment, which FaultMissing drops.
	capture bool
	dropped bool
	// lostFirst: the first delivery never arrived; only retries did.
	lostFirst bool
	retries   []time.Duration
	delay     time.Duration
}

// figures are what the provider reports about the money, which faults can
// make differ from the registration.
type figures struct {
	amount   int64
	currency string
	mode     string
}

const (
	msLayout   = "2006-01-02T15:04:05.000Z07:00"
	nanoLayout = "2006-01-02T15:04:05.000000000Z07:00"
)

// render builds the body of e and what the adapter must read from it.
func (s *story) render(e *pev) ([]byte, *Event) {
	var body []byte
	var ev *Event
	switch s.o.Provider {
	case Tokenz:
		body, ev = s.tokenzBody(e)
	case Yoco:
		body, ev = s.yocoBody(e)
	case Tazapay:
		body, ev = s.tazapayBody(e)
	case Tweed:
		body, ev = s.tweedBody(e)
	}
	ev.Type, ev.Kind = e.typ, e.kind
	return body, ev
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("simulate: " + err.Error())
	}
	return b
}

type tokenzMoney struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

type tokenzOrder struct {
	ID          string      `json:"id"`
	Object      string      `json:"object"`
	Amount      tokenzMoney `json:"amount"`
	Description string      `json:"description"`
	CreatedAt   string      `json:"createdAt"`
}

type tokenzEnvelope struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	CreatedAt string `json:"createdAt"`
	Test      bool   `json:"test"`
	EventData struct {
		Type    string      `json:"type"`
		Version string      `json:"version"`
		Data    tokenzOrder `json:"data"`
	} `json:"eventData"`
}

func (s *story) tokenzBody(e *pev) ([]byte, *Event) {
	at := e.at.UTC().Truncate(time.Millisecond)
	var env tokenzEnvelope
	env.ID, env.Object, env.CreatedAt, env.Test = e.id, "event", at.Format(msLayout), s.fig.mode == "test"
	env.EventData.Type, env.EventData.Version = e.typ, "1.0.0"
	desc := s.description
	if s.note != "" {
		// Tokenz's documented order has no metadata; its description is
		// free text.
		desc += ". " + s.note
	}
	env.EventData.Data = tokenzOrder{ID: s.o.CheckoutID, Object: "order",
		Amount:      tokenzMoney{Amount: s.fig.amount, Currency: s.fig.currency},
		Description: desc, CreatedAt: s.t0.UTC().Format(msLayout)}
	return mustJSON(env), &Event{EventID: e.id, DedupeKey: e.id, CheckoutID: s.o.CheckoutID, Time: at,
		Amount: s.fig.amount, Currency: s.fig.currency, Mode: s.fig.mode}
}

type yocoCard struct {
	ExpiryMonth int    `json:"expiryMonth"`
	ExpiryYear  int    `json:"expiryYear"`
	MaskedCard  string `json:"maskedCard"`
	Scheme      string `json:"scheme"`
}

type yocoMethod struct {
	Type string   `json:"type"`
	Card yocoCard `json:"card"`
}

type yocoPayload struct {
	ID                   string      `json:"id"`
	Type                 string      `json:"type"`
	CreatedDate          string      `json:"createdDate"`
	Amount               int64       `json:"amount"`
	Currency             string      `json:"currency"`
	PaymentID            string      `json:"paymentId,omitempty"`
	PaymentMethodDetails *yocoMethod `json:"paymentMethodDetails,omitempty"`
	Status               string      `json:"status"`
	Mode                 string      `json:"mode"`
	Metadata             struct {
		CheckoutID string `json:"checkoutId"`
		Note       string `json:"note,omitempty"`
	} `json:"metadata"`
}

type yocoEnvelope struct {
	ID          string      `json:"id"`
	Type        string      `json:"type"`
	CreatedDate string      `json:"createdDate"`
	Payload     yocoPayload `json:"payload"`
}

func (s *story) yocoBody(e *pev) ([]byte, *Event) {
	at := e.at.UTC().Truncate(time.Millisecond)
	p := yocoPayload{CreatedDate: e.at.Add(-350 * time.Millisecond).UTC().Format(msLayout),
		Amount: s.fig.amount, Currency: s.fig.currency, Mode: s.fig.mode}
	p.Metadata.CheckoutID, p.Metadata.Note = s.o.CheckoutID, s.note
	if strings.HasPrefix(e.typ, "refund.") {
		p.ID, p.Type, p.PaymentID, p.Amount = e.refundID, "refund", s.paymentID, e.amount
		p.Status = strings.TrimPrefix(e.typ, "refund.")
	} else {
		p.ID, p.Type, p.Status = s.paymentID, "payment", "succeeded"
		p.PaymentMethodDetails = &yocoMethod{Type: "card", Card: s.card}
	}
	env := yocoEnvelope{ID: e.id, Type: e.typ, CreatedDate: at.Format(msLayout), Payload: p}
	return mustJSON(env), &Event{EventID: e.id, DedupeKey: e.msgID, CheckoutID: s.o.CheckoutID,
		Refs: []string{s.paymentID}, Time: at, Amount: p.Amount, Currency: s.fig.currency, Mode: s.fig.mode}
}

type tazapayCheckout struct {
	ID              string            `json:"id"`
	Object          string            `json:"object"`
	Payin           string            `json:"payin"`
	InvoiceCurrency string            `json:"invoice_currency"`
	Amount          int64             `json:"amount"`
	AmountPaid      int64             `json:"amount_paid"`
	Status          string            `json:"status"`
	PaymentStatus   string            `json:"payment_status"`
	ReferenceID     string            `json:"reference_id"`
	URL             string            `json:"url,omitempty"`
	ExpiresAt       string            `json:"expires_at"`
	CreatedAt       string            `json:"created_at"`
	Metadata        map[string]string `json:"metadata"`
}

type tazapayAttempt struct {
	ID            string `json:"id"`
	Object        string `json:"object"`
	Payin         string `json:"payin"`
	Amount        int64  `json:"amount"`
	ChargeCurr    string `json:"charge_currency"`
	FinalCurrency string `json:"final_currency"`
	Status        string `json:"status"`
	ReferenceID   string `json:"reference_id"`
	Method        struct {
		Type string `json:"type"`
	} `json:"payment_method_details"`
	CreatedAt string            `json:"created_at"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

type tazapayRefund struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"`
	Payin          string            `json:"payin"`
	Amount         int64             `json:"amount"`
	Currency       string            `json:"currency"`
	PaymentAttempt string            `json:"payment_attempt"`
	Reason         string            `json:"reason"`
	Status         string            `json:"status"`
	ReferenceID    string            `json:"reference_id"`
	CreatedAt      string            `json:"created_at"`
	Metadata       map[string]string `json:"metadata,omitempty"`
}

type tazapayEnvelope struct {
	Type      string `json:"type"`
	CreatedAt string `json:"created_at"`
	ID        string `json:"id"`
	Object    string `json:"object"`
	Data      any    `json:"data"`
}

// metadata is what a body's metadata holds besides its own fields: the
// note, if any; nil without one.
func (s *story) metadata() map[string]string {
	if s.note == "" {
		return nil
	}
	return map[string]string{"note": s.note}
}

func (s *story) tazapayBody(e *pev) ([]byte, *Event) {
	env := tazapayEnvelope{Type: e.typ, CreatedAt: e.at.UTC().Format(nanoLayout), ID: e.id, Object: "event"}
	ev := &Event{EventID: e.id, DedupeKey: e.id, Time: e.at.UTC()}
	switch {
	case strings.HasPrefix(e.typ, "checkout."):
		c := tazapayCheckout{ID: s.checkout, Object: "checkout", Payin: s.payin, InvoiceCurrency: s.fig.currency,
			Amount: s.fig.amount, Status: e.status, PaymentStatus: e.paymentStatus, ReferenceID: s.o.ID,
			ExpiresAt: s.expiresAt.UTC().Format(nanoLayout), CreatedAt: s.t0.UTC().Format(nanoLayout), Metadata: map[string]string{}}
		if s.note != "" {
			c.Metadata["note"] = s.note
		}
		if e.paymentStatus == "paid" {
			c.AmountPaid = s.fig.amount
		}
		if e.typ == "checkout.tax_invoice_generated" {
			c.URL = "https://invoices.tazapay.example/" + s.checkout + ".pdf"
		}
		env.Data = c
		ev.CheckoutID, ev.Refs, ev.Reference = s.checkout, []string{s.payin}, s.o.ID
		ev.Amount, ev.Currency = s.fig.amount, s.fig.currency
	case strings.HasPrefix(e.typ, "payment_attempt."):
		a := tazapayAttempt{ID: e.attemptID, Object: "payment_attempt", Payin: s.payin, Amount: s.fig.amount * 135 / 100,
			ChargeCurr: "SGD", FinalCurrency: s.fig.currency, Status: e.status, ReferenceID: s.txRef,
			CreatedAt: e.at.UTC().Format(nanoLayout), Metadata: s.metadata()}
		a.Method.Type = "card"
		env.Data = a
		// An attempt carries no money the adapter reads (it is in the
		// customer's charge currency) and names only the payin.
		ev.CheckoutID, ev.Refs = s.payin, []string{e.attemptID}
	case strings.HasPrefix(e.typ, "refund."):
		env.Data = tazapayRefund{ID: e.refundID, Object: "refund", Payin: s.payin, Amount: e.amount, Currency: s.fig.currency,
			PaymentAttempt: s.paidAttempt, Reason: "Requested by customer", Status: e.status, ReferenceID: s.o.ID,
			CreatedAt: e.at.UTC().Format(nanoLayout), Metadata: s.metadata()}
		ev.CheckoutID, ev.Refs, ev.Reference = s.payin, []string{s.paidAttempt}, s.o.ID
		ev.Amount, ev.Currency = e.amount, s.fig.currency
	}
	return mustJSON(env), ev
}

type tweedPayment struct {
	Status   string            `json:"status"`
	Amount   int64             `json:"amount"`
	Created  int64             `json:"created"`
	Currency string            `json:"currency"`
	Livemode bool              `json:"livemode"`
	Metadata map[string]string `json:"metadata"`
	Method   struct {
		Type string `json:"type"`
	} `json:"paymentMethod"`
}

type tweedEnvelope struct {
	Type string `json:"type"`
	Data struct {
		CheckoutData struct {
			CheckoutID   string            `json:"checkoutId"`
			Quantity     int               `json:"quantity"`
			Price        int64             `json:"price"`
			CustomParams map[string]string `json:"customParams"`
		} `json:"checkoutData"`
		Status      string        `json:"status"`
		PaymentData *tweedPayment `json:"paymentData,omitempty"`
	} `json:"data"`
}

func (s *story) tweedBody(e *pev) ([]byte, *Event) {
	var env tweedEnvelope
	env.Type = "CHECKOUT_STATUS_UPDATED"
	cd := &env.Data.CheckoutData
	cd.CheckoutID, cd.Quantity, cd.Price = s.checkout, s.quantity, s.o.Amount/int64(s.quantity)/100
	cd.CustomParams = map[string]string{"orderRef": s.o.ID}
	if s.note != "" {
		cd.CustomParams["note"] = s.note
	}
	env.Data.Status = e.typ
	ev := &Event{CheckoutID: s.checkout, Reference: s.o.ID}
	if e.payment {
		// paymentData.created is when the payment was created, the same
		// on every update about it, as a Stripe-like created field is.
		p := &tweedPayment{Status: e.tweedStatus, Amount: s.fig.amount, Created: s.paymentCreated.Unix(),
			Currency: strings.ToLower(s.fig.currency), Livemode: s.fig.mode == "live",
			Metadata: map[string]string{"chain_id": "137", "request_id": s.requestID, "transaction_hash": s.txHash}}
		p.Method.Type = "card"
		env.Data.PaymentData = p
		ev.Time = time.Unix(p.Created, 0).UTC()
		ev.Amount, ev.Currency, ev.Mode = s.fig.amount, s.fig.currency, s.fig.mode
	}
	body := mustJSON(env)
	// The body is all Tweed signs, so it is what dedupes; the delivery
	// header only names the event.
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:])
	ev.EventID, ev.DedupeKey = e.typ+":"+h[:12], h
	if e.msgID != "" {
		ev.EventID = e.msgID
	}
	return body, ev
}
