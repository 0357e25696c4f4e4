package tazapay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/orderstate/orderstate/adapters/apicall"
	"github.com/orderstate/orderstate/adapters/wire"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// API base URLs (see the package documentation, "Polling").
const (
	DefaultAPIURL = "https://service.tazapay.com"
	SandboxAPIURL = "https://service-sandbox.tazapay.com"
)

// Poller asks Tazapay's Fetch Checkout API what became of a checkout.
type Poller struct {
	key, secret, base string
	client            *apicall.Client
	// Mode is what the operator says the account serves, as Adapter.Mode.
	Mode string
}

var _ engine.Poller = (*Poller)(nil)

// NewPoller is a poller using the API key and secret (HTTP Basic auth)
// against base (DefaultAPIURL when empty), each call bounded by timeout
// (apicall.DefaultTimeout when zero).
func NewPoller(key, secret, base string, timeout time.Duration) *Poller {
	if base == "" {
		base = DefaultAPIURL
	}
	return &Poller{key: key, secret: secret, base: base, client: apicall.New(timeout)}
}

// Provider is "tazapay".
func (p *Poller) Provider() string { return Name }

// checkoutAnswer is the part of Fetch Checkout's answer the mapping reads.
type checkoutAnswer struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Data    *struct {
		ID              string      `json:"id"`
		Status          string      `json:"status"`
		PaymentStatus   string      `json:"payment_status"`
		Amount          wire.Amount `json:"amount"`
		AmountPaid      wire.Amount `json:"amount_paid"`
		InvoiceCurrency string      `json:"invoice_currency"`
		Payin           string      `json:"payin"`
		ReferenceID     string      `json:"reference_id"`
	} `json:"data"`
}

// Poll fetches the checkout and maps it as a checkout webhook would be:
// payment_status paid is paid (whatever status says), processing is a
// payment in flight, unpaid with status expired is expired; unpaid and
// active, or any other value, establishes nothing.
func (p *Poller) Poll(ctx context.Context, checkoutID string) (engine.PollAnswer, error) {
	body, err := p.client.Get(ctx, "tazapay", p.base, "/v3/checkout/"+url.PathEscape(checkoutID), func(r *http.Request) {
		r.SetBasicAuth(p.key, p.secret)
	})
	if err != nil {
		return engine.PollAnswer{}, err
	}
	return p.ParseAnswer(body, checkoutID)
}

// ParseAnswer maps the body of a Fetch Checkout answer about checkoutID;
// see Poll. A body that is not one is a *engine.PollError "malformed".
func (p *Poller) ParseAnswer(body []byte, checkoutID string) (engine.PollAnswer, error) {
	var a checkoutAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return engine.PollAnswer{}, apicall.Malformed("tazapay", "a body that is not a checkout", err)
	}
	if a.Status != "success" || a.Data == nil {
		return engine.PollAnswer{}, apicall.Malformed("tazapay", fmt.Sprintf("status %q and no checkout (%q)", a.Status, a.Message), nil)
	}
	d := a.Data
	if d.ID != checkoutID {
		return engine.PollAnswer{}, apicall.Malformed("tazapay", fmt.Sprintf("checkout %q when asked for %q", d.ID, checkoutID), nil)
	}
	pay, st := strings.ToLower(d.PaymentStatus), strings.ToLower(d.Status)
	status := fmt.Sprintf("payment_status=%s status=%s", pay, st)
	var kind sm.Kind
	switch {
	case pay == "paid":
		kind = sm.KindPaid
	case pay == "processing":
		kind = sm.KindPaymentProcessing
	case pay == "unpaid" && st == "expired":
		kind = sm.KindExpired
	default:
		return engine.PollAnswer{Status: status, Raw: body}, nil
	}
	ev := engine.PollEvent(Name, checkoutID, status, kind)
	if d.Payin != "" && d.Payin != checkoutID {
		ev.Refs = []string{d.Payin}
	}
	ev.Reference, ev.Mode = d.ReferenceID, p.Mode
	if kind == sm.KindPaid {
		amount := d.AmountPaid
		if amount.Value == 0 {
			amount = d.Amount
		}
		cur, err := wire.Currency("data.invoice_currency", d.InvoiceCurrency)
		if err != nil {
			return engine.PollAnswer{}, apicall.Malformed("tazapay", "a checkout whose currency is unreadable", err)
		}
		ev.Amount, ev.Currency = amount.Value, cur
	}
	return engine.PollAnswer{Status: status, Event: &ev, Raw: body}, nil
}

// FakeCheckout is what a fake Tazapay API says about one checkout.
type FakeCheckout struct {
	PaymentStatus string // paid, unpaid, processing
	Status        string // active, expired
	Amount        int64
	AmountPaid    int64
	Currency      string
	Payin         string
	Reference     string
}

// FakeAPI is a Tazapay API for tests and the demo, answering Fetch
// Checkout in its documented shape for the key and secret given.
type FakeAPI struct{ *apicall.Fake }

// NewFakeAPI starts a fake Tazapay API; Close stops it.
func NewFakeAPI(key, secret string) *FakeAPI {
	return &FakeAPI{apicall.NewFake("/v3/checkout/",
		func(r *http.Request) bool { k, s, ok := r.BasicAuth(); return ok && k == key && s == secret },
		func(c any) any {
			return map[string]any{"status": "success", "message": "checkout session fetched successfully", "data": c}
		},
		func() any { return map[string]any{"status": "error", "message": "checkout not found"} })}
}

// OpenByDefault makes the API answer, for a checkout it was told nothing
// about, that it is still open and unpaid.
func (f *FakeAPI) OpenByDefault() {
	f.Fallback(func(id string) any {
		return fakeCheckout(id, FakeCheckout{PaymentStatus: "unpaid", Status: "active", Currency: "USD"})
	})
}

// SetCheckout sets what the API answers about the checkout id.
func (f *FakeAPI) SetCheckout(id string, c FakeCheckout) { f.Put(id, fakeCheckout(id, c)) }

func fakeCheckout(id string, c FakeCheckout) map[string]any {
	attempts := []map[string]any{}
	if c.PaymentStatus == "paid" {
		attempts = append(attempts, map[string]any{"id": "pat_" + id, "status": "succeeded", "amount": c.AmountPaid,
			"charge_currency": c.Currency})
	}
	return map[string]any{"id": id, "object": "checkout", "status": c.Status, "payment_status": c.PaymentStatus,
		"amount": c.Amount, "amount_paid": c.AmountPaid, "invoice_currency": c.Currency, "payin": c.Payin,
		"reference_id": c.Reference, "payment_attempts": attempts, "partially_paid": false, "paid_in_excess": false,
		"metadata": map[string]any{}}
}
