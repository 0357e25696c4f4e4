package tazapay

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/orderstate/orderstate/adapters/wire"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

const (
	// Name is the provider name used in routes and stored on events.
	Name = "tazapay"
	// SignatureHeader carries base64(HMAC-SHA256(secret, id+body+created_at)).
	SignatureHeader = "Signature"
)

// Adapter verifies and parses Tazapay webhooks.
type Adapter struct {
	// Mode is engine.ModeLive or engine.ModeTest for the Tazapay account
	// this endpoint serves, or "" when unknown. Tazapay's payloads carry no
	// mode, so it is configuration, not data.
	Mode string

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

// Provider returns "tazapay".
func (a *Adapter) Provider() string { return Name }

func unauthorized(format string, args ...any) error {
	return engine.Errorf(engine.EUNAUTHORIZED, format, args...)
}

func invalid(format string, args ...any) error {
	return engine.Errorf(engine.EINVALID, format, args...)
}

// signedFields reads the two body fields the signature covers besides the
// body itself. It is shared by Verify and Sign so the two agree on every
// input, well-formed or not.
func signedFields(body []byte) (id, createdAt string, err error) {
	var env struct {
		ID        string          `json:"id"`
		CreatedAt json.RawMessage `json:"created_at"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return "", "", err
	}
	createdAt, err = signedCreatedAt(env.CreatedAt)
	return env.ID, createdAt, err
}

// signedCreatedAt is created_at as the signature covers it: the string's
// value, or the older integer form as it is written.
func signedCreatedAt(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return "", nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return string(raw), nil
	}
	return "", errCreatedAt
}

type signError string

func (e signError) Error() string { return string(e) }

const errCreatedAt = signError("created_at is neither a string nor a number")

// mac is the Tazapay signing recipe: HMAC-SHA256 over the event id, the raw
// body and created_at, concatenated with no separators.
func mac(secret []byte, id string, body []byte, createdAt string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id))
	m.Write(body)
	m.Write([]byte(createdAt))
	return m.Sum(nil)
}

// decodeSignature accepts standard base64 with or without padding; anything
// that does not decode to an HMAC-SHA256 is garbled.
func decodeSignature(v string) ([]byte, bool) {
	v = strings.TrimSpace(v)
	sig, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		if sig, err = base64.RawStdEncoding.DecodeString(v); err != nil {
			return nil, false
		}
	}
	return sig, len(sig) == sha256.Size
}

// Verify checks the signature header against the raw body. There is no
// timestamp check: Tazapay documents no tolerance and signs no delivery
// time. Error messages name the failed check, never a secret or the
// signature received.
func (a *Adapter) Verify(req *engine.Request, _ time.Time) error {
	if len(a.secrets) == 0 {
		return unauthorized("no Tazapay webhook secret is configured")
	}
	if req == nil {
		return unauthorized("%s header missing", SignatureHeader)
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
		return unauthorized("%s header missing", SignatureHeader)
	case len(sigs) == 0:
		return unauthorized("%s header is not a base64 HMAC-SHA256", SignatureHeader)
	}
	var id, createdAt string
	var err error
	if ev := decodeOnce(req); ev != nil {
		id = ev.ID
		createdAt, err = signedCreatedAt(ev.CreatedAt)
	} else {
		id, createdAt, err = signedFields(req.Body)
	}
	if err != nil {
		return unauthorized("cannot read the id and created_at the Tazapay signature covers: body is not a Tazapay event")
	}
	for _, secret := range a.secrets {
		want := mac(secret, id, req.Body, createdAt)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				return nil
			}
		}
	}
	return unauthorized("%s does not match the body under any configured Tazapay secret", SignatureHeader)
}

// event is a Tazapay event decoded in one pass with its data object, which
// is how nearly every webhook is read. The body is scanned once instead of
// three times (signature fields, envelope, object).
type event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt json.RawMessage `json:"created_at"`
	Data      *object         `json:"data"`
}

// decodeOnce decodes req's body as an event, once per request: Verify's
// result is kept on the request for Parse. It returns nil when the body
// does not decode that way (malformed, or data not an object of the
// documented shape); the callers then take the step-by-step path, which
// tolerates an undocumented object and words the error.
func decodeOnce(req *engine.Request) *event {
	if ev, ok := req.Decoded.(*event); ok {
		return ev
	}
	ev := new(event)
	if json.Unmarshal(req.Body, ev) != nil {
		return nil
	}
	req.Decoded = ev
	return ev
}

// envelope is a Tazapay event. Data is decoded once the type says which
// object it holds, so an undocumented object cannot fail the parse.
type envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt wire.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// object holds the fields of a checkout, payin, payment attempt or refund
// the mapping reads; each object type uses a subset.
type object struct {
	ID                   string      `json:"id"`
	Checkout             string      `json:"checkout"`
	Payin                string      `json:"payin"`
	PaymentAttempt       string      `json:"payment_attempt"`
	LatestPaymentAttempt string      `json:"latest_payment_attempt"`
	PaymentStatus        string      `json:"payment_status"`
	Amount               wire.Amount `json:"amount"`
	AmountPaid           wire.Amount `json:"amount_paid"`
	InvoiceCurrency      string      `json:"invoice_currency"`
	Currency             string      `json:"currency"`
	ReferenceID          string      `json:"reference_id"`
}

// family is the object an event type is about, which decides where its ids
// and money are.
type family int

const (
	famCheckout family = iota
	famAttempt
	famPayin
	famRefund
)

type mapping struct {
	kind sm.Kind
	fam  family
}

// kinds maps every documented Tazapay event type the engine can act on.
var kinds = map[string]mapping{
	"checkout.created":                {sm.KindCheckoutCreated, famCheckout},
	"checkout.paid":                   {sm.KindPaid, famCheckout},
	"checkout.expired":                {sm.KindExpired, famCheckout},
	"checkout.tax_invoice_generated":  {sm.KindInformational, famCheckout},
	"payment_attempt.created":         {sm.KindPaymentProcessing, famAttempt},
	"payment_attempt.requires_action": {sm.KindPaymentProcessing, famAttempt},
	"payment_attempt.processing":      {sm.KindPaymentProcessing, famAttempt},
	"payment_attempt.failed":          {sm.KindPaymentAttemptFailed, famAttempt},
	"payment_attempt.succeeded":       {sm.KindPaid, famAttempt},
	"payin.requires_payment_method":   {sm.KindPaymentProcessing, famPayin},
	"payin.requires_action":           {sm.KindPaymentProcessing, famPayin},
	"payin.processing":                {sm.KindPaymentProcessing, famPayin},
	"payin.succeeded":                 {sm.KindPaid, famPayin},
	"payin.cancelled":                 {sm.KindFailed, famPayin},
	"refund.pending":                  {sm.KindInformational, famRefund},
	"refund.succeeded":                {sm.KindRefunded, famRefund},
	"refund.failed":                   {sm.KindInformational, famRefund},
}

// Parse maps a Tazapay event to a canonical event. Returns EINVALID for a
// body that is not a Tazapay event, or a documented event missing its ids or
// carrying an unreadable amount, currency or time.
func (a *Adapter) Parse(req *engine.Request) (engine.Event, error) {
	switch a.Mode {
	case "", engine.ModeLive, engine.ModeTest:
	default:
		return engine.Event{}, engine.Errorf(engine.EINTERNAL, "Tazapay adapter mode %q is neither live nor test", a.Mode)
	}
	if req == nil {
		return engine.Event{}, invalid("empty Tazapay webhook")
	}
	if e := decodeOnce(req); e != nil && e.ID != "" && e.Type != "" && e.Data != nil {
		if m, ok := kinds[e.Type]; ok {
			var created wire.Time
			if err := created.UnmarshalJSON(e.CreatedAt); err == nil {
				ev := engine.Event{Provider: Name, EventID: e.ID, DedupeKey: e.ID, Type: e.Type,
					OccurredAt: created.Time, Mode: a.Mode, Kind: m.kind}
				return mapEvent(ev, m.fam, e.Data)
			}
		}
	}
	var env envelope
	if err := json.Unmarshal(req.Body, &env); err != nil {
		return engine.Event{}, invalid("body is not a Tazapay event: %v", err)
	}
	switch {
	case env.ID == "":
		return engine.Event{}, invalid("Tazapay event has no id")
	case env.Type == "":
		return engine.Event{}, invalid("Tazapay event %s has no type", env.ID)
	}
	ev := engine.Event{
		Provider:   Name,
		EventID:    env.ID,
		DedupeKey:  env.ID,
		Type:       env.Type,
		OccurredAt: env.CreatedAt.Time,
		Mode:       a.Mode,
	}
	m, ok := kinds[env.Type]
	if !ok {
		ev.Kind = sm.KindUnknown
		ev.CheckoutID = unknownCheckout(env.Data)
		return ev, nil
	}
	ev.Kind = m.kind
	if d := bytes.TrimSpace(env.Data); len(d) == 0 || d[0] != '{' {
		return engine.Event{}, invalid("Tazapay %s event %s has no data object", env.Type, env.ID)
	}
	var o object
	if err := json.Unmarshal(env.Data, &o); err != nil {
		return engine.Event{}, invalid("Tazapay %s event %s: malformed data: %v", env.Type, env.ID, err)
	}
	return mapEvent(ev, m.fam, &o)
}

func mapEvent(ev engine.Event, fam family, o *object) (engine.Event, error) {
	if err := mapObject(&ev, fam, o); err != nil {
		return engine.Event{}, err
	}
	if ev.CheckoutID == "" {
		return engine.Event{}, invalid("Tazapay %s event %s names no checkout or payin", ev.Type, ev.EventID)
	}
	return ev, nil
}

// mapObject fills ids, reference, kind refinements and money from the event's
// object.
func mapObject(ev *engine.Event, fam family, o *object) error {
	var ids []string
	var amount wire.Amount
	var currency, field string
	// invoice and its alternative name the two fields a currency may be
	// in, the first that holds one winning.
	invoice := func() (string, string) {
		if strings.TrimSpace(o.InvoiceCurrency) != "" {
			return o.InvoiceCurrency, "data.invoice_currency"
		}
		return o.Currency, "data.currency"
	}
	switch fam {
	case famCheckout:
		ids = []string{o.ID, o.Payin}
		ev.Reference = o.ReferenceID
		amount = o.Amount
		currency, field = invoice()
		// payment_status is independent of status: an expired (or just
		// created) checkout whose payment_status is paid was paid.
		if strings.EqualFold(o.PaymentStatus, "paid") && ev.Kind != sm.KindInformational {
			ev.Kind = sm.KindPaid
		}
		if ev.Kind == sm.KindPaid && o.AmountPaid.Value > 0 {
			amount = o.AmountPaid
		}
	case famPayin:
		ids = []string{o.Checkout, o.ID, o.LatestPaymentAttempt}
		ev.Reference = o.ReferenceID
		amount = o.Amount
		currency, field = invoice()
		if ev.Kind == sm.KindPaid && o.AmountPaid.Value > 0 {
			amount = o.AmountPaid
		}
	case famAttempt:
		// No money and no reference: see the package documentation.
		ids = []string{o.Checkout, o.Payin, o.ID}
	case famRefund:
		ids = []string{o.Checkout, o.Payin, o.PaymentAttempt}
		ev.Reference = o.ReferenceID
		amount, currency, field = o.Amount, o.Currency, "data.currency"
		if strings.TrimSpace(currency) == "" {
			currency, field = o.InvoiceCurrency, "data.invoice_currency"
		}
		if ev.Kind == sm.KindRefunded && !amount.Set {
			return invalid("Tazapay %s event %s carries no refund amount", ev.Type, ev.EventID)
		}
	}
	ev.CheckoutID, ev.Refs = splitIDs(ids)
	cur, err := wire.Currency(field, currency)
	if err != nil {
		return invalid("Tazapay %s event %s: %v", ev.Type, ev.EventID, err)
	}
	ev.Amount, ev.Currency = amount.Value, cur
	return nil
}

// splitIDs returns the first non-empty id as the checkout id and the other
// distinct ones as refs.
func splitIDs(ids []string) (string, []string) {
	var checkout string
	var refs []string
	for _, id := range ids {
		if id == "" || id == checkout {
			continue
		}
		if checkout == "" {
			checkout = id
			continue
		}
		dup := false
		for _, r := range refs {
			dup = dup || r == id
		}
		if !dup {
			refs = append(refs, id)
		}
	}
	return checkout, refs
}

// unknownCheckout finds the checkout an undocumented event is about, if its
// data names one in a documented field. A payout's or escrow's own id is not
// a checkout, so data.id counts only with a checkout or payin prefix.
func unknownCheckout(data json.RawMessage) string {
	var o struct {
		ID       any `json:"id"`
		Checkout any `json:"checkout"`
		Payin    any `json:"payin"`
	}
	if json.Unmarshal(data, &o) != nil {
		return ""
	}
	for _, v := range []any{o.Checkout, o.Payin} {
		if s, ok := v.(string); ok && s != "" {
			return s
		}
	}
	if s, ok := o.ID.(string); ok && (strings.HasPrefix(s, "chk_") || strings.HasPrefix(s, "pay_")) {
		return s
	}
	return ""
}
