package engine_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
)

func TestRedactHeaders_KeepsOnlyTheListedValues(t *testing.T) {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Webhook-Id", "msg_1")
	h.Set("X-Tweed-Delivery", "d-1")
	for _, secret := range []string{"Authorization", "Proxy-Authorization", "X-Api-Key", "Cookie", "Signature",
		"Tokenz-Signature", "Webhook-Signature", "X-Hub-Signature-256", "X-Some-Vendor-Token"} {
		h.Set(secret, "s3cret")
	}
	got := engine.RedactHeaders(h)
	require.Equal(t, "application/json", got["Content-Type"])
	require.Equal(t, "msg_1", got["Webhook-Id"])
	require.Equal(t, "d-1", got["X-Tweed-Delivery"])
	for k, v := range got {
		require.NotContains(t, v, "s3cret", "header %s", k)
	}
	require.Equal(t, "[redacted]", got["Proxy-Authorization"], "a header nobody listed is kept by name only")
	require.Equal(t, "[redacted]", got["X-Api-Key"])
}
