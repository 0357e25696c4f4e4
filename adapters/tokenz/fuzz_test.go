package tokenz_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tokenz"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// FuzzVerifyParse feeds every fixture, and what the fuzzer makes of them,
// through Verify and Parse with a fuzzed header, a one-byte body change and
// a clock skew inside the tolerance.
func FuzzVerifyParse(f *testing.F) {
	entries, err := os.ReadDir(fixtures)
	require.NoError(f, err)
	for _, e := range entries {
		body, err := os.ReadFile(filepath.Join(fixtures, e.Name()))
		require.NoError(f, err)
		// Well-formed, but signed with a key the adapter does not hold.
		f.Add(body, tokenz.Sign("tz_whk_attacker", body, now).Get(tokenz.SignatureHeader), uint16(7), int64(-90_000))
		f.Add(body, "t:1725864981111,v1:zjdrra3+Mh+e6s=", uint16(0), int64(299_999))
	}
	f.Add([]byte(`{}`), "", uint16(1), int64(0))
	f.Add([]byte(`{"id":"event_x","eventData":{"type":"order.created","data":{"order":{"id":"o"}}}}`), ",,t:,v1:", uint16(3), int64(1))

	a := tokenz.New(secret, "tz_whk_second_secret")
	tol := tokenz.DefaultTolerance.Milliseconds()
	f.Fuzz(func(t *testing.T, body []byte, header string, flip uint16, skewMS int64) {
		at := now.Add(time.Duration(skewMS%tol) * time.Millisecond)

		// (a) Any header: no panic, and only the documented error codes.
		// Nothing the fuzzer writes can carry a valid HMAC.
		forged := withHeader(header, body)
		requireCode(t, a.Verify(forged, now), engine.EUNAUTHORIZED, false)
		ev, err := a.Parse(forged)
		requireCode(t, err, engine.EINVALID, true)
		if err == nil {
			requireSane(t, ev)
		}

		// (b) A wrong secret never verifies.
		wrong := &engine.Request{Header: tokenz.Sign("tz_whk_wrong", body, at), Body: body}
		requireCode(t, a.Verify(wrong, now), engine.EUNAUTHORIZED, false)

		// (c) A correct signature verifies; the body parses or is EINVALID.
		good := &engine.Request{Header: tokenz.Sign(secret, body, at), Body: body}
		require.NoError(t, a.Verify(good, now))
		ev, err = a.Parse(good)
		requireCode(t, err, engine.EINVALID, true)
		if err == nil {
			requireSane(t, ev)
		}

		// A body changed after signing never verifies.
		if len(body) > 0 {
			changed := bytes.Clone(body)
			changed[int(flip)%len(changed)] ^= byte(flip>>8) | 1
			requireCode(t, a.Verify(&engine.Request{Header: good.Header, Body: changed}, now), engine.EUNAUTHORIZED, false)
		}

		// Fuzzed entries around a valid one: no panic, no foreign code.
		mixed := http.Header{}
		mixed.Set(tokenz.SignatureHeader, header+","+good.Header.Get(tokenz.SignatureHeader)+","+header)
		requireCode(t, a.Verify(&engine.Request{Header: mixed, Body: body}, now), engine.EUNAUTHORIZED, true)
	})
}

// requireCode fails unless err has code, or is nil where nilOK.
func requireCode(t *testing.T, err error, code string, nilOK bool) {
	t.Helper()
	if err == nil {
		require.True(t, nilOK, "want %s, got no error", code)
		return
	}
	require.Equal(t, code, engine.ErrorCode(err), err.Error())
}

// requireSane checks what the engine relies on of every parsed event.
func requireSane(t *testing.T, ev engine.Event) {
	t.Helper()
	require.NotEmpty(t, ev.EventID)
	require.NotEmpty(t, ev.DedupeKey)
	require.NotEmpty(t, ev.Type)
	require.True(t, ev.Kind.Valid(), ev.Kind)
	if ev.Kind != sm.KindUnknown {
		require.NotEmpty(t, ev.CheckoutID)
	}
	require.GreaterOrEqual(t, ev.Amount, int64(0))
	require.True(t, ev.Currency == "" || (len(ev.Currency) == 3 && strings.ToUpper(ev.Currency) == ev.Currency), ev.Currency)
	require.Contains(t, []string{"", engine.ModeLive, engine.ModeTest}, ev.Mode)
	require.True(t, ev.OccurredAt.IsZero() || ev.OccurredAt.Location() == time.UTC)
}
