package tazapay

import (
	"encoding/base64"
	"net/http"
)

// Sign returns the headers Tazapay would send with body, signed with
// secret. The id and created_at the signature covers are read from body the
// same way Verify reads them; a body they cannot be read from is signed with
// both empty, and Verify refuses it. For tests, the demo and the benchmarks.
func Sign(secret string, body []byte) http.Header {
	id, createdAt, _ := signedFields(body)
	h := make(http.Header, 2)
	h.Set("Content-Type", "application/json")
	h.Set(SignatureHeader, Signature(secret, id, createdAt, body))
	return h
}

// Signature is the value of the signature header for an event whose
// top-level id and created_at are given as they appear in body (created_at
// as its string value, or the decimal text of the older integer form).
func Signature(secret, id, createdAt string, body []byte) string {
	return base64.StdEncoding.EncodeToString(mac([]byte(secret), id, body, createdAt))
}
