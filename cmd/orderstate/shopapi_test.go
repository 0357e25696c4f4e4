package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
)

// apiError decodes an error answer, failing the test if body is not one.
func apiError(t *testing.T, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	require.NotEmpty(t, e.Error.Code, string(body))
	return e.Error.Code, e.Error.Message
}

// A filter value nobody can match would answer an empty list, which reads
// as "nothing to act on"; a typo must be told apart from that.
func TestAPI_AnomalyFiltersRefuseUnknownValues(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	// One duplicate delivery gives an open info anomaly to find.
	b := tazapayEvent("evt_f1", "checkout.paid", "2025-05-14T06:41:22Z", "chk_f1", "pay_f1", "order_f1", "paid", 100)
	for range 2 {
		st, body := s.do("POST", "/webhooks/tazapay", b, signedTazapay(b))
		require.Equal(t, http.StatusOK, st, string(body))
	}

	refused := []struct{ query, message string }{
		{"kind=bogus", `unknown anomaly kind "bogus"; kinds: out_of_order, duplicate,`},
		{"status=Open", `unknown anomaly status "Open"; statuses: open, resolved, acknowledged`},
		{"status=bogus", `unknown anomaly status "bogus"; statuses: open, resolved, acknowledged`},
		{"severity=bogus", `unknown severity "bogus"; severities: action, info`},
		{"severity=Info", `unknown severity "Info"; severities: action, info`},
		{"provider=bogus", `unknown provider "bogus"; providers: tazapay, tokenz, tweed, yoco`},
		{"provider=Tazapay", `unknown provider "Tazapay"; providers: tazapay, tokenz, tweed, yoco`},
	}
	for _, tc := range refused {
		st, body := s.do("GET", "/v1/anomalies?"+tc.query, nil, nil)
		require.Equal(t, http.StatusBadRequest, st, "%s: %s", tc.query, body)
		code, msg := apiError(t, body)
		require.Equal(t, engine.EINVALID, code, tc.query)
		require.Contains(t, msg, tc.message, tc.query)
	}

	found := func(query string) int {
		t.Helper()
		st, body := s.do("GET", "/v1/anomalies?"+query, nil, nil)
		require.Equal(t, http.StatusOK, st, "%s: %s", query, body)
		var list struct{ Anomalies []engine.Anomaly }
		require.NoError(t, json.Unmarshal(body, &list))
		return len(list.Anomalies)
	}
	for query, want := range map[string]int{
		"":                    1,
		"status=open":         1,
		"status=resolved":     0,
		"status=acknowledged": 0,
		"severity=info":       1,
		"severity=action":     0,
		"provider=tazapay":    1,
		"provider=yoco":       0,
		"kind=duplicate&status=open&provider=tazapay&severity=info&limit=5": 1,
		"status=&severity=&provider=&kind=":                                 1,
	} {
		require.Equal(t, want, found(query), query)
	}
}
