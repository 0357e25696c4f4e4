package tweed

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/orderstate/orderstate/adapters/wire"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

const (
	// Name is the provider name used in routes and stored on events.
	Name = "tweed"
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body.
	SignatureHeader = "X-Hub-Signature-256"
	// DeliveryHeader names one delivery. The signature does not cover it,
	// so it is shown in timelines and never decides what is a duplicate.
	DeliveryHeader = "X-Tweed-Delivery"
	// TypeCheckoutStatusUpdated is the one event type Tweed documents.
	TypeCheckoutStatusUpdated = "CHECKOUT_STATUS_UPDATED"
)

// Adapter verifies and parses Tweed webhooks.
type Adapter struct {
	// AllowUnsigned accepts requests when no secret is configured, marking
	// their events Unsigned. It has no effect once a secret is configured:
	// then every request must be signed with it.
	AllowUnsigned bool

	secrets [][]byte
}

var _ engine.Adapter = (*Adapter)(nil)

// New returns an adapter accepting a signature made with any of secrets, so
// the old and the new secret both verify during a rotation. Empty secrets
// are dropped: an HMAC keyed with nothing is one anyone can compute.
func New(secrets ...string) *Adapter {
	a := &Adapter{}
	for _, s := range secrets {
		if s != "" {
			a.secrets = append(a.secrets, []byte(s))
		}
	}
	return a
}

// Provider returns "tweed".
func (a *Adapter) Provider() string { return Name }

// unsigned reports whether requests are taken without a signature.
func (a *Adapter) unsigned() bool { return len(a.secrets) == 0 && a.AllowUnsigned }

func unauthorized(format string, args ...any) error {
	return engine.Errorf(engine.EUNAUTHORIZED, format, args...)
}

func invalid(format string, args ...any) error {
	return engine.Errorf(engine.EINVALID, format, args...)
}

// mac is the Tweed signing recipe: HMAC-SHA256 of the raw body.
func mac(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

const sigPrefix = "sha256="

// decodeSignature reads "sha256=<64 hex digits>"; anything else is garbled.
func decodeSignature(v string) ([]byte, bool) {
	v = strings.TrimSpace(v)
	if len(v) < len(sigPrefix) || !strings.EqualFold(v[:len(sigPrefix)], sigPrefix) {
		return nil, false
	}
	sig, err := hex.DecodeString(v[len(sigPrefix):])
	return sig, err == nil && len(sig) == sha256.Size
}

// Verify applies the signing rule described in the package documentation.
// Tweed signs no timestamp, so there is no tolerance to check. Error
// messages name the failed check, never a secret or the signature received.
func (a *Adapter) Verify(req *engine.Request, _ time.Time) error {
	if len(a.secrets) == 0 {
		if a.AllowUnsigned {
			return nil
		}
		return unauthorized("no Tweed webhook secret is configured and unsigned Tweed webhooks are not allowed")
	}
	if req == nil {
		return unauthorized("%s header missing: a Tweed secret is configured, so unsigned webhooks are refused", SignatureHeader)
	}
	values := req.Header.Values(SignatureHeader)
	var sigs [][]byte
	for _, v := range values {
		if sig, ok := decodeSignature(v); ok {
			sigs = append(sigs, sig)
		}
	}
	switch {
	case len(values) == 0 || (len(values) == 1 && strings.TrimSpace(values[0]) == ""):
		return unauthorized("%s header missing: a Tweed secret is configured, so unsigned webhooks are refused", SignatureHeader)
	case len(sigs) == 0:
		return unauthorized("%s header is not sha256=<64 hex digits>", SignatureHeader)
	}
	for _, secret := range a.secrets {
		want := mac(secret, req.Body)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				return nil
			}
		}
	}
	return unauthorized("%s does not match the body under any configured Tweed secret", SignatureHeader)
}

type envelope struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// event is a checkout status update decoded in one pass with its data,
// which is how every documented webhook is read; anything else, or one that
// does not decode this way, is read step by step.
type event struct {
	Type string        `json:"type"`
	Data *checkoutData `json:"data"`
}

type checkoutData struct {
	CheckoutData struct {
		CheckoutID   string                     `json:"checkoutId"`
		CustomParams map[string]json.RawMessage `json:"customParams"`
	} `json:"checkoutData"`
	Status      string       `json:"status"`
	PaymentData *paymentData `json:"paymentData"`
}

// paymentData is the optional payment. Its payment method, spelled
// paymentMethod or (in Tweed's type definition) paymentMehod, and its
// metadata are not read: nothing canonical comes from them.
type paymentData struct {
	Amount   wire.Amount `json:"amount"`
	Created  wire.Time   `json:"created"`
	Currency string      `json:"currency"`
	Livemode *bool       `json:"livemode"`
}

var kinds = map[string]sm.Kind{
	"CREATED":                    sm.KindCheckoutCreated,
	"PERFORM_CHECKOUT_SUBMITTED": sm.KindPaymentProcessing,
	"TRANSACTION_BROADCAST":      sm.KindPaymentProcessing,
	"DONE":                       sm.KindPaid,
	"FAILED":                     sm.KindFailed,
	"FAILED_AFTER_TX_COMPLETED":  sm.KindFailedAfterSettlement,
}

// referenceKeys are the customParams keys read as the shop's order id, in
// order of preference.
var referenceKeys = []string{"orderRef", "orderId", "order_id"}

// Parse maps a Tweed webhook to a canonical event. Returns EINVALID for a
// body that is not a Tweed webhook, a checkout update without a status or a
// checkout id, or unreadable payment data.
func (a *Adapter) Parse(req *engine.Request) (engine.Event, error) {
	if req == nil {
		return engine.Event{}, invalid("empty Tweed webhook")
	}
	ev := engine.Event{Provider: Name, Kind: sm.KindUnknown, Unsigned: a.unsigned()}
	if e := new(event); json.Unmarshal(req.Body, e) == nil && e.Data != nil &&
		strings.EqualFold(e.Type, TypeCheckoutStatusUpdated) && kindOf(e.Data.Status) != sm.KindUnknown {
		ev.Type, ev.Kind = e.Data.Status, kindOf(e.Data.Status)
		ev.EventID, ev.DedupeKey = ids(req, ev.Type)
		return mapCheckout(ev, e.Data)
	}
	var env envelope
	if err := json.Unmarshal(req.Body, &env); err != nil {
		return engine.Event{}, invalid("body is not a Tweed webhook: %v", err)
	}
	if env.Type == "" {
		return engine.Event{}, invalid("Tweed webhook has no type (the legacy v1 webhook is not supported)")
	}
	ev.Type = env.Type

	var d checkoutData
	known := strings.EqualFold(env.Type, TypeCheckoutStatusUpdated)
	if known {
		if b := bytes.TrimSpace(env.Data); len(b) == 0 || b[0] != '{' {
			return engine.Event{}, invalid("Tweed %s webhook has no data object", env.Type)
		}
		if err := json.Unmarshal(env.Data, &d); err != nil {
			// A status nobody documented may come with a payment shaped in
			// a way nobody documented either: still an unknown event.
			var s struct {
				Status string `json:"status"`
			}
			if json.Unmarshal(env.Data, &s) != nil || s.Status == "" || kindOf(s.Status) != sm.KindUnknown {
				return engine.Event{}, invalid("Tweed %s webhook: malformed data: %v", env.Type, err)
			}
			d = checkoutData{Status: s.Status}
		}
		if d.Status == "" {
			return engine.Event{}, invalid("Tweed %s webhook has no status", env.Type)
		}
		ev.Type = d.Status
		ev.Kind = kindOf(d.Status)
	}
	ev.EventID, ev.DedupeKey = ids(req, ev.Type)
	if ev.Kind == sm.KindUnknown {
		ev.CheckoutID = unknownCheckout(env.Data)
		return ev, nil
	}

	return mapCheckout(ev, &d)
}

// mapCheckout fills the checkout, reference and payment of a status update
// whose kind is known.
func mapCheckout(ev engine.Event, d *checkoutData) (engine.Event, error) {
	ev.CheckoutID = d.CheckoutData.CheckoutID
	if ev.CheckoutID == "" {
		return engine.Event{}, invalid("Tweed %s webhook has no checkoutData.checkoutId", d.Status)
	}
	ev.Reference = reference(d.CheckoutData.CustomParams)
	if p := d.PaymentData; p != nil {
		cur, err := wire.Currency("data.paymentData.currency", p.Currency)
		if err != nil {
			return engine.Event{}, invalid("Tweed %s webhook for %s: %v", d.Status, ev.CheckoutID, err)
		}
		ev.Amount, ev.Currency, ev.OccurredAt = p.Amount.Value, cur, p.Created.Time
		if p.Livemode != nil {
			ev.Mode = engine.ModeTest
			if *p.Livemode {
				ev.Mode = engine.ModeLive
			}
		}
	}
	return ev, nil
}

func kindOf(status string) sm.Kind {
	if k, ok := kinds[strings.ToUpper(status)]; ok {
		return k
	}
	return sm.KindUnknown
}

// ids returns the event id and dedupe key. The key is the body's hash
// whatever the headers say: the signature covers the body alone, so a key
// read from X-Tweed-Delivery would let anyone holding one signed webhook
// send it again under a new header value and have it applied and stored
// again. The header, cleaned, is the event id shown in timelines; without a
// usable one the id is "<status>:" and the hash's first 12 hex digits.
func ids(req *engine.Request, label string) (eventID, dedupe string) {
	dedupe = DedupeKey(req.Body)
	if v := deliveryID(req.Header.Get(DeliveryHeader)); v != "" {
		return v, dedupe
	}
	return label + ":" + dedupe[:12], dedupe
}

// DedupeKey is what a Tweed webhook is deduplicated on: the hex SHA-256 of
// its raw body, so only a byte-identical redelivery is a duplicate.
func DedupeKey(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// maxDeliveryID bounds the delivery id kept: Tweed's are UUIDs, and the
// header is anyone's to fill.
const maxDeliveryID = 100

// deliveryID keeps, from an X-Tweed-Delivery value, the letters, digits and
// "-_.:" and at most maxDeliveryID of them. The value is unsigned text that
// reaches timelines, terminals and reports, where control characters and
// markup in it would act on whoever reads them.
func deliveryID(v string) string {
	var b strings.Builder
	for i := 0; i < len(v) && b.Len() < maxDeliveryID; i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.:", c) >= 0 {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// reference returns the first customParams value under referenceKeys that
// is a non-empty string or a number.
func reference(params map[string]json.RawMessage) string {
	for _, k := range referenceKeys {
		raw := bytes.TrimSpace(params[k])
		if len(raw) == 0 {
			continue
		}
		var s string
		if raw[0] == '"' {
			if json.Unmarshal(raw, &s) != nil {
				continue
			}
		} else {
			var n json.Number
			if json.Unmarshal(raw, &n) != nil {
				continue
			}
			s = n.String()
		}
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

// unknownCheckout finds the checkout an unmapped webhook is about, when its
// data has the documented checkoutData.checkoutId.
func unknownCheckout(data json.RawMessage) string {
	var d struct {
		CheckoutData struct {
			CheckoutID any `json:"checkoutId"`
		} `json:"checkoutData"`
	}
	if json.Unmarshal(data, &d) != nil {
		return ""
	}
	s, _ := d.CheckoutData.CheckoutID.(string)
	return s
}
