package tweed

import (
	"encoding/hex"
	"net/http"
)

// Sign returns the headers Tweed would send with body when the merchant has
// set secret. It sets no X-Tweed-Delivery, which only names a delivery in
// timelines. For tests, the demo and the benchmarks.
func Sign(secret string, body []byte) http.Header {
	h := make(http.Header, 2)
	h.Set("Content-Type", "application/json")
	h.Set(SignatureHeader, Signature(secret, body))
	return h
}

// Signature is the X-Hub-Signature-256 value for body: "sha256=" and the
// hex HMAC-SHA256 of the body keyed with secret.
func Signature(secret string, body []byte) string {
	return sigPrefix + hex.EncodeToString(mac([]byte(secret), body))
}
