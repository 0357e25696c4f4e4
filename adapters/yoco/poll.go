package yoco

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/orderstate/orderstate/adapters/apicall"
	"github.com/orderstate/orderstate/adapters/wire"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// DefaultAPIURL is Yoco's online payments API (see the package
// documentation, "Polling").
const DefaultAPIURL = "https://payments.yoco.com"

// Poller asks Yoco's Checkout API what became of a checkout.
type Poller struct {
	key, base string
	client    *apicall.Client
}

var _ engine.Poller = (*Poller)(nil)

// NewPoller is a poller using the secret key (a Bearer token) against base
// (DefaultAPIURL when empty), each call bounded by timeout
// (apicall.DefaultTimeout when zero).
func NewPoller(key, base string, timeout time.Duration) *Poller {
	if base == "" {
		base = DefaultAPIURL
	}
	return &Poller{key: key, base: base, client: apicall.New(timeout)}
}

// Provider is "yoco".
func (p *Poller) Provider() string { return Name }

type checkoutAnswer struct {
	ID             string      `json:"id"`
	Status         *string     `json:"status"`
	Amount         wire.Amount `json:"amount"`
	Currency       string      `json:"currency"`
	PaymentID      string      `json:"paymentId"`
	ProcessingMode string      `json:"processingMode"`
}

// Poll fetches the checkout. Only "completed" is mapped, to paid: it is
// the one value integrations agree on; every other status establishes
// nothing (see the package documentation).
func (p *Poller) Poll(ctx context.Context, checkoutID string) (engine.PollAnswer, error) {
	body, err := p.client.Get(ctx, "yoco", p.base, "/api/checkouts/"+url.PathEscape(checkoutID), func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+p.key)
	})
	if err != nil {
		return engine.PollAnswer{}, err
	}
	return ParseAnswer(body, checkoutID)
}

// ParseAnswer maps the body of a GET of the checkout checkoutID; see Poll.
// A body that is not one is a *engine.PollError "malformed".
func ParseAnswer(body []byte, checkoutID string) (engine.PollAnswer, error) {
	var a checkoutAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return engine.PollAnswer{}, apicall.Malformed("yoco", "a body that is not a checkout", err)
	}
	if a.ID != checkoutID || a.Status == nil {
		return engine.PollAnswer{}, apicall.Malformed("yoco", fmt.Sprintf("checkout %q without a status when asked for %q", a.ID, checkoutID), nil)
	}
	status := "status=" + *a.Status
	if *a.Status != "completed" {
		return engine.PollAnswer{Status: status, Raw: body}, nil
	}
	ev := engine.PollEvent(Name, checkoutID, status, sm.KindPaid)
	if a.PaymentID != "" {
		ev.Refs = []string{a.PaymentID}
	}
	cur, err := wire.Currency("currency", a.Currency)
	if err != nil {
		return engine.PollAnswer{}, apicall.Malformed("yoco", "a checkout whose currency is unreadable", err)
	}
	ev.Amount, ev.Currency = a.Amount.Value, cur
	if m, ok := normalizeMode(a.ProcessingMode); ok {
		ev.Mode = m
	}
	return engine.PollAnswer{Status: status, Event: &ev, Raw: body}, nil
}

// FakeCheckout is what a fake Yoco API says about one checkout.
type FakeCheckout struct {
	Status    string // created, started, processing, completed
	Amount    int64
	Currency  string
	PaymentID string
	Mode      string // live, test
}

// FakeAPI is a Yoco Checkout API for tests and the demo, answering GET
// /api/checkouts/{id} for the secret key given.
type FakeAPI struct{ *apicall.Fake }

// NewFakeAPI starts a fake Yoco API; Close stops it.
func NewFakeAPI(key string) *FakeAPI {
	return &FakeAPI{apicall.NewFake("/api/checkouts/",
		func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+key },
		func(c any) any { return c },
		func() any { return map[string]any{"errorType": "not_found", "errorMessage": "Checkout not found"} })}
}

// OpenByDefault makes the API answer, for a checkout it was told nothing
// about, that it was created and not paid.
func (f *FakeAPI) OpenByDefault() {
	f.Fallback(func(id string) any { return fakeCheckout(id, FakeCheckout{Status: "created", Currency: "ZAR"}) })
}

// SetCheckout sets what the API answers about the checkout id.
func (f *FakeAPI) SetCheckout(id string, c FakeCheckout) { f.Put(id, fakeCheckout(id, c)) }

func fakeCheckout(id string, c FakeCheckout) map[string]any {
	var payment any
	if c.PaymentID != "" {
		payment = c.PaymentID
	}
	return map[string]any{"id": id, "status": c.Status, "amount": c.Amount, "currency": c.Currency,
		"paymentId": payment, "processingMode": c.Mode, "metadata": map[string]any{},
		"redirectUrl": "https://c.yoco.com/checkout/" + id}
}
