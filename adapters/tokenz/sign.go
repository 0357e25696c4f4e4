package tokenz

import (
	"net/http"
	"strconv"
	"time"
)

// Sign returns the header Tokenz would send with body, signed with secret at
// time at. It shares signature with Verify, so the two cannot drift apart;
// it exists for tests, the demo and the benchmarks.
func Sign(secret string, body []byte, at time.Time) http.Header {
	t := strconv.FormatInt(at.UnixMilli(), 10)
	h := make(http.Header, 1)
	h.Set(SignatureHeader, "t:"+t+",v1:"+signature([]byte(secret), t, body))
	return h
}
