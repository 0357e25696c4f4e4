package yoco_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/yoco"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// FuzzVerifyParse feeds every fixture, and what the fuzzer makes of them,
// through Verify and Parse with a fuzzed webhook-id, fuzzed signature and
// timestamp headers, a one-byte body change and a clock skew inside the
// tolerance.
func FuzzVerifyParse(f *testing.F) {
	entries, err := os.ReadDir(fixtures)
	require.NoError(f, err)
	for _, e := range entries {
		body, err := os.ReadFile(filepath.Join(fixtures, e.Name()))
		require.NoError(f, err)
		// Well-formed, but signed with a key the adapter does not hold.
		forged := yoco.Sign("whsec_YXR0YWNrZXItb3duZWQta2V5LTAxMjM0NTY3", msgID, body, now)
		f.Add(body, msgID, forged.Get(yoco.SignatureHeader), forged.Get(yoco.TimestampHeader), uint16(5), int64(-60))
		f.Add(body, "", "v1a,abc v1,", "", uint16(0), int64(179))
	}
	f.Add([]byte(`{}`), "msg_1", "v1,", "1722593704", uint16(1), int64(0))
	f.Add([]byte(`{"id":"evt_1","type":"refund.succeeded","payload":{"metadata":{"checkoutId":"ch_1"}}}`), "msg.1.2", "v2,x", "-1", uint16(2), int64(-179))

	a := yoco.MustNew(secret, "whsec_c2Vjb25kLXJvdGF0ZWQtc2VjcmV0LWtleS0wMQ==")
	tol := int64(yoco.DefaultTolerance / time.Second)
	f.Fuzz(func(t *testing.T, body []byte, id, sigHeader, tsHeader string, flip uint16, skewS int64) {
		at := now.Add(time.Duration(skewS%tol) * time.Second)
		if id == "" {
			id = msgID
		}

		// (a) Fuzzed headers: no panic, and only the documented error codes.
		// Nothing the fuzzer writes can carry a valid HMAC.
		for _, set := range []func(*engine.Request){
			func(r *engine.Request) { r.Header.Set(yoco.SignatureHeader, sigHeader) },
			func(r *engine.Request) { r.Header.Set(yoco.TimestampHeader, tsHeader) },
			func(r *engine.Request) {
				r.Header.Set(yoco.SignatureHeader, sigHeader)
				r.Header.Set(yoco.TimestampHeader, tsHeader)
			},
		} {
			forged := &engine.Request{Header: yoco.Sign(yoco.NewSecret(), id, body, at), Body: body}
			set(forged)
			requireCode(t, a.Verify(forged, now), engine.EUNAUTHORIZED, false)
			ev, err := a.Parse(forged)
			requireCode(t, err, engine.EINVALID, true)
			if err == nil {
				requireSane(t, ev)
			}
		}

		// (b) A wrong secret never verifies.
		wrong := &engine.Request{Header: yoco.Sign("whsec_d3Jvbmctc2VjcmV0LWtleS1mb3ItZnV6eg==", id, body, at), Body: body}
		requireCode(t, a.Verify(wrong, now), engine.EUNAUTHORIZED, false)

		// (c) A correct signature verifies; the body parses or is EINVALID.
		good := &engine.Request{Header: yoco.Sign(secret, id, body, at), Body: body}
		require.NoError(t, a.Verify(good, now))
		ev, err := a.Parse(good)
		requireCode(t, err, engine.EINVALID, true)
		if err == nil {
			requireSane(t, ev)
			require.Equal(t, id, ev.DedupeKey)
		}

		// A body changed after signing never verifies.
		if len(body) > 0 {
			changed := bytes.Clone(body)
			changed[int(flip)%len(changed)] ^= byte(flip>>8) | 1
			requireCode(t, a.Verify(&engine.Request{Header: good.Header, Body: changed}, now), engine.EUNAUTHORIZED, false)
		}

		// Fuzzed entries around a valid one: no panic, no foreign code.
		mixed := &engine.Request{Header: good.Header.Clone(), Body: body}
		mixed.Header.Set(yoco.SignatureHeader, sigHeader+" "+good.Header.Get(yoco.SignatureHeader)+" "+sigHeader)
		requireCode(t, a.Verify(mixed, now), engine.EUNAUTHORIZED, true)
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
