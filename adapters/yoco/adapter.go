package yoco

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/orderstate/orderstate/adapters/wire"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

const (
	// Name is the provider name used in routes and stored on events.
	Name = "yoco"
	// The Standard Webhooks headers.
	IDHeader        = "webhook-id"
	TimestampHeader = "webhook-timestamp"
	SignatureHeader = "webhook-signature"
	// DefaultTolerance is Yoco's documented window, used when
	// Adapter.Tolerance is zero.
	DefaultTolerance = 3 * time.Minute
	// SecretPrefix starts every Yoco webhook secret.
	SecretPrefix = "whsec_"
)

// Adapter verifies and parses Yoco webhooks.
type Adapter struct {
	// Tolerance is how far webhook-timestamp may be from now, in either
	// direction; zero or less means DefaultTolerance.
	Tolerance time.Duration

	keys [][]byte
}

var _ engine.Adapter = (*Adapter)(nil)

// New returns an adapter accepting a signature made with any of secrets, so
// that during a rotation the old and the new secret both verify. It fails
// when there is no secret or one is not "whsec_" followed by base64; the
// error names the secret by position, never by value.
func New(secrets ...string) (*Adapter, error) {
	if len(secrets) == 0 {
		return nil, errors.New("yoco: no webhook secret given")
	}
	a := &Adapter{keys: make([][]byte, 0, len(secrets))}
	for i, s := range secrets {
		key, err := decodeSecret(s)
		if err != nil {
			return nil, fmt.Errorf("yoco: webhook secret %d of %d %w", i+1, len(secrets), err)
		}
		a.keys = append(a.keys, key)
	}
	return a, nil
}

// MustNew is New for secrets known to be valid, such as tests' and the
// demo's; it panics where New returns an error.
func MustNew(secrets ...string) *Adapter {
	a, err := New(secrets...)
	if err != nil {
		panic(err)
	}
	return a
}

// decodeSecret returns the HMAC key a secret stands for. Its errors are
// completed by the caller and never quote the secret.
func decodeSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	if !ok {
		return nil, errors.New("does not start with " + SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("is not base64 after " + SecretPrefix)
	}
	if len(key) == 0 {
		return nil, errors.New("is empty after " + SecretPrefix)
	}
	return key, nil
}

// Provider returns "yoco".
func (a *Adapter) Provider() string { return Name }

// signature is the Standard Webhooks v1 signature of one delivery.
func signature(key []byte, id, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func unauthorized(format string, args ...any) error {
	return engine.Errorf(engine.EUNAUTHORIZED, format, args...)
}

// Verify checks the three Standard Webhooks headers against the raw body.
// The timestamp is checked before any signature so that a replayed request
// is told it is stale rather than forged.
func (a *Adapter) Verify(req *engine.Request, now time.Time) error {
	if len(a.keys) == 0 {
		return unauthorized("no Yoco webhook secret is configured")
	}
	if req == nil {
		return unauthorized("%s header missing", IDHeader)
	}
	id := req.Header.Get(IDHeader)
	ts := req.Header.Get(TimestampHeader)
	list := req.Header.Get(SignatureHeader)
	switch {
	case id == "":
		return unauthorized("%s header missing", IDHeader)
	case ts == "":
		return unauthorized("%s header missing", TimestampHeader)
	case list == "":
		return unauthorized("%s header missing", SignatureHeader)
	}
	if strings.Trim(ts, "0123456789") != "" {
		return unauthorized("%s header garbled: not unix seconds", TimestampHeader)
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n > 1e11 {
		return unauthorized("%s header garbled: not unix seconds", TimestampHeader)
	}
	if err := checkAge(time.Unix(n, 0), now, a.tolerance()); err != nil {
		return err
	}
	// Entries are "<version>,<base64>"; versions other than v1 (v1a is
	// ed25519) are skipped, as the specification asks.
	var sigs []string
	for _, entry := range strings.Fields(list) {
		if v, sig, ok := strings.Cut(entry, ","); ok && v == "v1" && sig != "" {
			sigs = append(sigs, sig)
		}
	}
	if len(sigs) == 0 {
		return unauthorized("%s header garbled: no v1,<base64 signature> entry", SignatureHeader)
	}
	for _, key := range a.keys {
		want := []byte(signature(key, id, ts, req.Body))
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

// checkAge refuses a timestamp further than tol from now either way: too old
// is a replay, too far ahead is a clock or a forgery.
func checkAge(at, now time.Time, tol time.Duration) error {
	age := now.Sub(at)
	switch {
	case age > tol:
		return unauthorized("%s is %s old, %s beyond the %s tolerance",
			TimestampHeader, age.Round(time.Second), (age - tol).Round(time.Second), tol)
	case -age > tol:
		return unauthorized("%s is %s in the future, %s beyond the %s tolerance",
			TimestampHeader, (-age).Round(time.Second), (-age - tol).Round(time.Second), tol)
	}
	return nil
}

var kinds = map[string]sm.Kind{
	"payment.succeeded": sm.KindPaid,
	"refund.succeeded":  sm.KindRefunded,
	"refund.failed":     sm.KindInformational,
}

type envelope struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	CreatedDate json.RawMessage `json:"createdDate"`
	Payload     json.RawMessage `json:"payload"`
}

// event is an envelope decoded in one pass with its payload, which is how
// every documented event is read; an undocumented one, or one that does not
// decode this way, is read step by step.
type event struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	CreatedDate json.RawMessage `json:"createdDate"`
	Payload     *payload        `json:"payload"`
}

// payload is a payment or a refund; PaymentID is set on refunds only.
type payload struct {
	ID          string      `json:"id"`
	Type        string      `json:"type"`
	CreatedDate wire.Time   `json:"createdDate"`
	Amount      wire.Amount `json:"amount"`
	Currency    string      `json:"currency"`
	PaymentID   string      `json:"paymentId"`
	Status      string      `json:"status"`
	Mode        string      `json:"mode"`
	Metadata    struct {
		CheckoutID string `json:"checkoutId"`
	} `json:"metadata"`
}

// ids is what an undocumented event is searched for: nothing in it may fail
// to decode, since such an event is stored whatever its shape.
type ids struct {
	Mode     any `json:"mode"`
	Metadata struct {
		CheckoutID any `json:"checkoutId"`
	} `json:"metadata"`
}

func invalid(format string, args ...any) error {
	return engine.Errorf(engine.EINVALID, format, args...)
}

// Parse maps a Yoco event onto the canonical model.
func (a *Adapter) Parse(req *engine.Request) (engine.Event, error) {
	if req == nil {
		return engine.Event{}, invalid("empty Yoco event")
	}
	var env envelope
	var p payload
	decoded := false
	if e := new(event); json.Unmarshal(req.Body, e) == nil && kinds[e.Type] != "" {
		env = envelope{ID: e.ID, Type: e.Type, CreatedDate: e.CreatedDate}
		if e.Payload != nil {
			p = *e.Payload
		}
		decoded = true
	} else if err := json.Unmarshal(req.Body, &env); err != nil {
		return engine.Event{}, invalid("malformed Yoco event: %s", wire.Describe(err, ""))
	}
	if env.ID == "" {
		return engine.Event{}, invalid("Yoco event has no id")
	}
	if env.Type == "" {
		return engine.Event{}, invalid("Yoco event %s has no type", env.ID)
	}
	var created wire.Time
	if len(env.CreatedDate) > 0 {
		if err := created.UnmarshalJSON(env.CreatedDate); err != nil {
			return engine.Event{}, invalid("Yoco event %s: createdDate: %v", env.ID, err)
		}
	}
	ev := engine.Event{
		Provider:   Name,
		EventID:    env.ID,
		DedupeKey:  req.Header.Get(IDHeader),
		Type:       env.Type,
		OccurredAt: created.Time,
	}
	// A verified request always has webhook-id; the body id stands in when
	// a stored body is parsed again without its headers.
	if ev.DedupeKey == "" {
		ev.DedupeKey = env.ID
	}
	kind, ok := kinds[env.Type]
	if !ok {
		var v ids
		// A field of the wrong type is skipped and the rest still decodes;
		// malformed JSON leaves v empty.
		_ = json.Unmarshal(env.Payload, &v)
		ev.Kind = sm.KindUnknown
		ev.CheckoutID, _ = v.Metadata.CheckoutID.(string)
		mode, _ := v.Mode.(string)
		ev.Mode, _ = normalizeMode(mode)
		return ev, nil
	}
	ev.Kind = kind

	if !decoded && len(env.Payload) > 0 {
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			return engine.Event{}, invalid("Yoco %s event %s: %s", ev.Type, ev.EventID, wire.Describe(err, "payload"))
		}
	}
	// Refunds name the payment, not themselves: the payment id is what an
	// earlier payment.succeeded recorded as another name for the checkout.
	ref := p.ID
	if strings.HasPrefix(env.Type, "refund.") {
		ref = p.PaymentID
	}
	ev.CheckoutID = p.Metadata.CheckoutID
	if ev.CheckoutID == "" && strings.HasPrefix(env.Type, "refund.") && ref != "" {
		// A refund made from the dashboard may carry no checkout metadata;
		// the payment id still finds the order.
		ev.CheckoutID = ref
	}
	if ev.CheckoutID == "" {
		return engine.Event{}, invalid("Yoco %s event %s has no payload.metadata.checkoutId", ev.Type, ev.EventID)
	}
	if ref != "" && ref != ev.CheckoutID {
		ev.Refs = []string{ref}
	}
	cur, err := wire.Currency("payload.currency", p.Currency)
	if err != nil {
		return engine.Event{}, invalid("Yoco %s event %s: %v", ev.Type, ev.EventID, err)
	}
	ev.Amount, ev.Currency = p.Amount.Value, cur
	if ev.Mode, ok = normalizeMode(p.Mode); !ok {
		return engine.Event{}, invalid("Yoco %s event %s: mode %q is neither live nor test", ev.Type, ev.EventID, p.Mode)
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = p.CreatedDate.Time
	}
	return ev, nil
}

// normalizeMode returns the canonical mode and whether s was one.
func normalizeMode(s string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return "", true
	case engine.ModeLive:
		return engine.ModeLive, true
	case engine.ModeTest:
		return engine.ModeTest, true
	}
	return "", false
}
