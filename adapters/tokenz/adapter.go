package tokenz

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/orderstate/orderstate/adapters/wire"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

const (
	// Name is the provider name used in routes and stored on events.
	Name = "tokenz"
	// SignatureHeader carries the timestamp and the signatures.
	SignatureHeader = "Tokenz-Signature"
	// DefaultTolerance is used when Adapter.Tolerance is zero.
	DefaultTolerance = 5 * time.Minute
)

// Adapter verifies and parses Tokenz webhooks.
type Adapter struct {
	// Tolerance is how far the signed timestamp may be from now, in either
	// direction; zero or less means DefaultTolerance.
	Tolerance time.Duration

	secrets [][]byte
}

var _ engine.Adapter = (*Adapter)(nil)

// New returns an adapter accepting a signature made with any of secrets, so
// a rotated secret and its successor both verify while Tokenz switches over.
// Empty secrets are dropped: an HMAC keyed with nothing is one anyone can
// compute.
func New(secrets ...string) *Adapter {
	a := &Adapter{}
	for _, s := range secrets {
		if s != "" {
			a.secrets = append(a.secrets, []byte(s))
		}
	}
	return a
}

// Provider returns "tokenz".
func (a *Adapter) Provider() string { return Name }

// signature is the Tokenz signing recipe, and the one place to change it.
// It is an assumption: the Tokenz documentation retrieved shows the header
// but ends before saying what is signed. Assumed: HMAC-SHA256 over
// "<t>.<raw body>", t exactly as it appears in the header, keyed with the
// secret's bytes as-is, encoded as standard (padded) base64, the form of the
// documented example "zjdrra3...Mh+e6s=".
func signature(secret []byte, t string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(t))
	m.Write([]byte{'.'})
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func unauthorized(format string, args ...any) error {
	return engine.Errorf(engine.EUNAUTHORIZED, format, args...)
}

// Verify checks the Tokenz-Signature header against the raw body. The
// timestamp is checked before any signature so that a replayed request is
// told it is stale rather than forged.
func (a *Adapter) Verify(req *engine.Request, now time.Time) error {
	if len(a.secrets) == 0 {
		return unauthorized("no Tokenz signing secret is configured")
	}
	if req == nil {
		return unauthorized("%s header missing", SignatureHeader)
	}
	value := req.Header.Get(SignatureHeader)
	if value == "" {
		return unauthorized("%s header missing", SignatureHeader)
	}
	t, sigs, problem := parseHeader(value)
	if problem != "" {
		return unauthorized("%s header garbled: %s; expected t:<unix ms>,v1:<base64 signature>", SignatureHeader, problem)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return unauthorized("%s header garbled: t: is not a unix time", SignatureHeader)
	}
	// The example is in milliseconds; wire.Unix also reads seconds, should
	// Tokenz ever send them.
	at, err := wire.Unix(n)
	if err != nil {
		return unauthorized("%s header garbled: t: is not a unix time", SignatureHeader)
	}
	if err := checkAge(at, now, a.tolerance()); err != nil {
		return err
	}
	// hmac.Equal compares in constant time; comparing the encoded forms
	// keeps the output encoding inside signature.
	for _, secret := range a.secrets {
		want := []byte(signature(secret, t, req.Body))
		for _, sig := range sigs {
			if hmac.Equal(want, []byte(sig)) {
				return nil
			}
		}
	}
	return unauthorized("no %s v1 signature matched a configured secret", SignatureHeader)
}

func (a *Adapter) tolerance() time.Duration {
	if a.Tolerance <= 0 {
		return DefaultTolerance
	}
	return a.Tolerance
}

// parseHeader splits "t:<ts>,v1:<sig>,v1:<sig>" into the timestamp text and
// the v1 signatures. Other versions are skipped so that Tokenz can add one
// without breaking verification. The problem it reports never quotes the
// header: it carries signatures.
func parseHeader(value string) (t string, sigs []string, problem string) {
	seenT := false
	for item := range strings.SplitSeq(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, val, ok := strings.Cut(item, ":")
		if !ok {
			return "", nil, "an entry has no ':' separator"
		}
		switch key {
		case "t":
			if seenT {
				return "", nil, "more than one t: timestamp"
			}
			seenT = true
			t = val
		case "v1":
			if val != "" {
				sigs = append(sigs, val)
			}
		}
	}
	switch {
	case !seenT:
		return "", nil, "no t: timestamp"
	case t == "" || strings.Trim(t, "0123456789") != "":
		return "", nil, "t: is not a unix time"
	case len(sigs) == 0:
		return "", nil, "no v1: signature"
	}
	return t, sigs, ""
}

// checkAge refuses a timestamp further than tol from now either way: too old
// is a replay, too far ahead is a clock or a forgery.
func checkAge(at, now time.Time, tol time.Duration) error {
	age := now.Sub(at)
	switch {
	case age > tol:
		return unauthorized("%s timestamp is %s old, %s beyond the %s tolerance",
			SignatureHeader, age.Round(time.Millisecond), (age - tol).Round(time.Millisecond), tol)
	case -age > tol:
		return unauthorized("%s timestamp is %s in the future, %s beyond the %s tolerance",
			SignatureHeader, (-age).Round(time.Millisecond), (-age - tol).Round(time.Millisecond), tol)
	}
	return nil
}

// kinds maps the documented event types. "order_succeeded" is how the
// dashboard spells the paid event; "order_created" is the same spelling of
// the created one, accepted on the same evidence.
var kinds = map[string]sm.Kind{
	"order.created":   sm.KindCheckoutCreated,
	"order_created":   sm.KindCheckoutCreated,
	"order.succeeded": sm.KindPaid,
	"order_succeeded": sm.KindPaid,
}

type envelope struct {
	ID        string          `json:"id"`
	CreatedAt json.RawMessage `json:"createdAt"`
	Test      *bool           `json:"test"`
	EventData *eventData      `json:"eventData"`
}

type eventData struct {
	Type    string          `json:"type"`
	Version string          `json:"version"`
	Data    json.RawMessage `json:"data"`
}

// event is an envelope decoded in one pass with its order, which is how
// every documented event is read; an undocumented one, or one that does not
// decode this way, is read step by step.
type event struct {
	ID        string          `json:"id"`
	CreatedAt json.RawMessage `json:"createdAt"`
	Test      *bool           `json:"test"`
	EventData *struct {
		Type    string `json:"type"`
		Version string `json:"version"`
		Data    *order `json:"data"`
	} `json:"eventData"`
}

// order is eventData.data. Its schema was not retrieved; these are the fields
// the documentation's example and a third-party integration use.
type order struct {
	ID                string `json:"id"`
	Amount            *money `json:"amount"`
	Reference         string `json:"reference"`
	MerchantReference string `json:"merchantReference"`
	// Order is the data.order shape a third-party integration reads.
	Order *innerOrder `json:"order"`
}

type innerOrder struct {
	ID                string `json:"id"`
	Amount            *money `json:"amount"`
	Reference         string `json:"reference"`
	MerchantReference string `json:"merchantReference"`
}

type money struct {
	// Amount is taken as minor units; see the package comment.
	Amount   wire.Amount `json:"amount"`
	Currency string      `json:"currency"`
}

// ids is what an undocumented event is searched for: nothing in it may fail
// to decode, since such an event is stored whatever its shape.
type ids struct {
	ID    any `json:"id"`
	Order *struct {
		ID any `json:"id"`
	} `json:"order"`
}

func invalid(format string, args ...any) error {
	return engine.Errorf(engine.EINVALID, format, args...)
}

// Parse maps a Tokenz event onto the canonical model.
func (a *Adapter) Parse(req *engine.Request) (engine.Event, error) {
	if req == nil {
		return engine.Event{}, invalid("empty Tokenz event")
	}
	var env envelope
	var o order
	decoded := false
	if e := new(event); json.Unmarshal(req.Body, e) == nil && e.EventData != nil && kinds[e.EventData.Type] != "" {
		env = envelope{ID: e.ID, CreatedAt: e.CreatedAt, Test: e.Test,
			EventData: &eventData{Type: e.EventData.Type, Version: e.EventData.Version}}
		if e.EventData.Data != nil {
			o = *e.EventData.Data
		}
		decoded = true
	} else if err := json.Unmarshal(req.Body, &env); err != nil {
		return engine.Event{}, invalid("malformed Tokenz event: %s", wire.Describe(err, ""))
	}
	if env.ID == "" {
		return engine.Event{}, invalid("Tokenz event has no id")
	}
	if env.EventData == nil || env.EventData.Type == "" {
		return engine.Event{}, invalid("Tokenz event %s has no eventData.type", env.ID)
	}
	var created wire.Time
	if len(env.CreatedAt) > 0 {
		if err := created.UnmarshalJSON(env.CreatedAt); err != nil {
			return engine.Event{}, invalid("Tokenz event %s: createdAt: %v", env.ID, err)
		}
	}
	ev := engine.Event{
		Provider:   Name,
		EventID:    env.ID,
		DedupeKey:  env.ID,
		Type:       env.EventData.Type,
		OccurredAt: created.Time,
	}
	if env.Test != nil {
		ev.Mode = engine.ModeLive
		if *env.Test {
			ev.Mode = engine.ModeTest
		}
	}
	kind, ok := kinds[ev.Type]
	if !ok {
		ev.Kind = sm.KindUnknown
		ev.CheckoutID, ev.Refs = unknownIDs(env.EventData.Data)
		return ev, nil
	}
	ev.Kind = kind

	if !decoded && len(env.EventData.Data) > 0 {
		if err := json.Unmarshal(env.EventData.Data, &o); err != nil {
			return engine.Event{}, invalid("Tokenz %s event %s: %s", ev.Type, ev.EventID, wire.Describe(err, "eventData.data"))
		}
	}
	inner := o.Order
	if inner == nil {
		inner = &innerOrder{}
	}
	ev.CheckoutID, ev.Refs = pickIDs(o.ID, inner.ID)
	if ev.CheckoutID == "" {
		return engine.Event{}, invalid("Tokenz %s event %s has no order id (eventData.data.id)", ev.Type, ev.EventID)
	}
	amt, field := o.Amount, "eventData.data.amount.currency"
	if amt == nil {
		amt, field = inner.Amount, "eventData.data.order.amount.currency"
	}
	if amt != nil {
		cur, err := wire.Currency(field, amt.Currency)
		if err != nil {
			return engine.Event{}, invalid("Tokenz %s event %s: %v", ev.Type, ev.EventID, err)
		}
		ev.Amount, ev.Currency = amt.Amount.Value, cur
	}
	ev.Reference = firstNonEmpty(o.Reference, o.MerchantReference, inner.Reference, inner.MerchantReference)
	return ev, nil
}

// pickIDs makes data.id the checkout id, as the documented example has it,
// and keeps data.order.id as another name for the same order when both are
// present and differ, so either finds it.
func pickIDs(dataID, orderID string) (string, []string) {
	switch {
	case dataID == "":
		return orderID, nil
	case orderID == "" || orderID == dataID:
		return dataID, nil
	}
	return dataID, []string{orderID}
}

func unknownIDs(data json.RawMessage) (string, []string) {
	var v ids
	// A field of the wrong type is skipped and the rest still decodes;
	// malformed JSON leaves v empty.
	_ = json.Unmarshal(data, &v)
	dataID, _ := v.ID.(string)
	orderID := ""
	if v.Order != nil {
		orderID, _ = v.Order.ID.(string)
	}
	return pickIDs(dataID, orderID)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
