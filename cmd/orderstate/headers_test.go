package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/reconcile"
)

// TestAPI_SecurityHeaders: every answer, errors and unknown routes
// included, tells a browser not to guess its type and to run and load
// nothing; the HTML report may use its inline style and nothing else.
func TestAPI_SecurityHeaders(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	b := tazapayEvent("evt_h1", "checkout.paid", "2025-05-14T06:41:22Z", "chk_h1", "pay_h1", "order_h1", "paid", 100)
	st, body := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
	require.Equal(t, http.StatusOK, st, string(body))
	later := func() time.Time { return time.Now().Add(2 * time.Second) }
	rec, err := reconcile.New(s.db, reconcile.Config{}, later, discardLogger())
	require.NoError(t, err)
	report, err := rec.RunReport(context.Background())
	require.NoError(t, err)
	require.NotNil(t, report)

	const (
		strict = "default-src 'none'; frame-ancestors 'none'"
		page   = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	)
	reportPath := fmt.Sprintf("/v1/reports/%d", report.ID)
	forged := signedTazapay([]byte(`{"other":"body"}`))
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		header             http.Header
		status             int
		policy             string
	}{
		{"JSON", "GET", "/v1/orders/order_h1", nil, nil, 200, strict},
		{"WebhookAnswer", "POST", "/webhooks/tazapay", b, signedTazapay(b), 200, strict},
		{"ReportJSON", "GET", reportPath, nil, nil, 200, strict},
		{"ReportMarkdown", "GET", reportPath + "?format=md", nil, nil, 200, strict},
		{"ReportHTML", "GET", reportPath + "?format=html", nil, nil, 200, page},
		{"Metrics", "GET", "/metrics", nil, nil, 200, strict},
		{"Health", "GET", "/healthz", nil, nil, 200, strict},
		{"BadQuery", "GET", reportPath + "?format=pdf", nil, nil, 400, strict},
		{"BadSignature", "POST", "/webhooks/tazapay", b, forged, 401, strict},
		{"NoOrder", "GET", "/v1/orders/nope", nil, nil, 404, strict},
		{"NoRoute", "GET", "/nope", nil, nil, 404, strict},
		{"NoRouteUnderV1", "GET", "/v1/nope", nil, nil, 404, strict},
		{"WrongMethod", "GET", "/webhooks/tazapay", nil, nil, 405, strict},
		{"TooLarge", "POST", "/webhooks/tazapay", make([]byte, 300<<10), signedTazapay(nil), 413, strict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, s.server.URL()+tc.path, strings.NewReader(string(tc.body)))
			require.NoError(t, err)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, tc.status, resp.StatusCode, string(got))
			require.Equal(t, []string{"nosniff"}, resp.Header.Values("X-Content-Type-Options"))
			require.Equal(t, []string{tc.policy}, resp.Header.Values("Content-Security-Policy"))
			if tc.policy == page {
				// What the policy lets the page do is all it needs: one
				// inline style sheet, no script, image, frame, form or
				// anything fetched.
				require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"))
				require.Equal(t, 1, strings.Count(string(got), "<style>"))
				require.NotRegexp(t, regexp.MustCompile(`(?i)<(script|img|link|iframe|form|object|embed|base)\b|\s(style|src|href|action)=|url\(`), string(got))
			}
		})
	}
}
