package yoco

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"
)

// Sign returns the headers Yoco would send with body for the delivery msgID,
// signed with secret at time at. It shares signature with Verify, so the two
// cannot drift apart; it exists for tests, the demo and the benchmarks, and
// panics on a secret New would refuse.
func Sign(secret, msgID string, body []byte, at time.Time) http.Header {
	key, err := decodeSecret(secret)
	if err != nil {
		panic("yoco.Sign: secret " + err.Error())
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	h := make(http.Header, 3)
	h.Set(IDHeader, msgID)
	h.Set(TimestampHeader, ts)
	h.Set(SignatureHeader, "v1,"+signature(key, msgID, ts, body))
	return h
}

// NewSecret returns a fresh secret in Yoco's form: "whsec_" and the base64
// of 32 random bytes, within the 24 to 64 bytes Standard Webhooks asks for.
func NewSecret() string {
	b := make([]byte, 32)
	// crypto/rand.Read does not fail since Go 1.24; it aborts the process.
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}
