package engine

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	sm "github.com/orderstate/orderstate/statemachine"
)

// ValidateEvent checks that a parsed event is fit to store: every store
// calls it before it writes anything. Returns EINVALID.
func ValidateEvent(ev Event) error {
	switch {
	case ev.Provider == "":
		return Errorf(EINVALID, "event has no provider")
	case ev.DedupeKey == "":
		return Errorf(EINVALID, "event has no id to deduplicate on")
	case !ev.Kind.Valid():
		return Errorf(EINVALID, "event kind %q is not canonical", ev.Kind)
	case ev.Kind != sm.KindUnknown && ev.CheckoutID == "":
		return Errorf(EINVALID, "%s event %s names no checkout", ev.Provider, ev.Type)
	case ev.Amount < 0:
		return Errorf(EINVALID, "event amount %d is negative", ev.Amount)
	case ev.Mode != "" && ev.Mode != ModeLive && ev.Mode != ModeTest:
		return Errorf(EINVALID, "event mode %q is neither live nor test", ev.Mode)
	}
	return nil
}

// keptHeaders are the request headers worth keeping beside a raw event:
// what says who sent it, in what form, and the providers' own delivery ids
// and times. Every other header is stored by name only, its value
// redacted: a header nobody listed may carry a credential (a proxy's
// Authorization, an API key), and a blocklist cannot know them all.
var keptHeaders = map[string]bool{
	"Accept": true, "Accept-Encoding": true, "Content-Encoding": true, "Content-Length": true, "Content-Type": true,
	"User-Agent": true, "X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Real-Ip": true, "X-Request-Id": true,
	"Webhook-Id": true, "Webhook-Timestamp": true,
	"X-Tweed-Delivery": true, "X-Tweed-Event": true, "X-Tweed-Hook-Id": true,
}

// RedactHeaders is what of a webhook's headers a store keeps: the values
// of keptHeaders, and "[redacted]" for every other header.
func RedactHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		k = http.CanonicalHeaderKey(k)
		if !keptHeaders[k] {
			out[k] = "[redacted]"
			continue
		}
		out[k] = strings.Join(v, ", ")
	}
	return out
}

// DedupeHash is the fixed-size key an event is deduplicated on.
func DedupeHash(provider, key string) []byte {
	h := sha256.Sum256([]byte(provider + "\x00" + key))
	return h[:16]
}

// NormalizeRegistration fills a registration's defaults (live mode, an
// upper-case currency) and checks every field. Returns EINVALID.
func NormalizeRegistration(reg Registration) (Registration, error) {
	reg.Currency = strings.ToUpper(strings.TrimSpace(reg.Currency))
	if reg.Mode == "" {
		reg.Mode = ModeLive
	}
	return reg, validateRegistration(reg)
}

func validateRegistration(reg Registration) error {
	for _, id := range reg.OtherIDs {
		if id == "" || len(id) > 200 {
			return Errorf(EINVALID, "each of other_ids must be 1 to 200 characters")
		} else if !isText(id) {
			return Errorf(EINVALID, "each of other_ids must be UTF-8 text without control characters")
		}
	}
	switch {
	case reg.OrderID == "" || len(reg.OrderID) > 200:
		return Errorf(EINVALID, "order_id must be 1 to 200 characters")
	case !isText(reg.OrderID):
		return Errorf(EINVALID, "order_id must be UTF-8 text without control characters")
	case reg.Provider == "":
		return Errorf(EINVALID, "provider is required")
	case reg.CheckoutID == "" || len(reg.CheckoutID) > 200:
		return Errorf(EINVALID, "checkout_id must be 1 to 200 characters")
	case !isText(reg.CheckoutID):
		return Errorf(EINVALID, "checkout_id must be UTF-8 text without control characters")
	case reg.Amount < 0:
		return Errorf(EINVALID, "amount must be in minor units, zero or more; got %d", reg.Amount)
	case !IsCurrency(reg.Currency):
		return CheckCurrency("currency", reg.Currency)
	case reg.Mode != ModeLive && reg.Mode != ModeTest:
		return Errorf(EINVALID, "mode must be live or test; got %q", reg.Mode)
	}
	return nil
}

// isText reports whether an id is printable text. Ids are shown in
// reports, logs and terminals, where a NUL, a newline or an escape sequence
// garbles the line or forges another; no provider's ids hold one, so an id
// that does is a client's bug.
func isText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
