package tokenz_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/tokenz"
	"github.com/orderstate/orderstate/engine"
)

func requireUnauthorized(t *testing.T, err error, says string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, engine.EUNAUTHORIZED, engine.ErrorCode(err), err.Error())
	require.Contains(t, engine.ErrorMessage(err), says)
}

func withHeader(value string, body []byte) *engine.Request {
	h := http.Header{}
	h.Set(tokenz.SignatureHeader, value)
	return &engine.Request{Header: h, Body: body}
}

// sigOf returns the v1 value Sign put in a header.
func sigOf(h http.Header) string {
	_, sig, _ := strings.Cut(h.Get(tokenz.SignatureHeader), ",v1:")
	return sig
}

// recipe is the assumed Tokenz signature, written out independently.
func recipe(secret, t string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(t + "." + string(body)))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := fixture(t, "order_succeeded.json")
	ms := strconv.FormatInt(now.UnixMilli(), 10)

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, tokenz.New(secret).Verify(signed(body, now), now))
	})
	t.Run("HeaderFormat", func(t *testing.T) {
		t.Parallel()
		v := tokenz.Sign(secret, body, now).Get(tokenz.SignatureHeader)
		require.True(t, strings.HasPrefix(v, "t:"+ms+",v1:"), v)
		require.Len(t, ms, 13)
		require.True(t, strings.HasSuffix(v, "="), "standard padded base64: %s", v)
	})
	t.Run("WrongSecret", func(t *testing.T) {
		t.Parallel()
		req := &engine.Request{Header: tokenz.Sign("not-the-secret", body, now), Body: body}
		requireUnauthorized(t, tokenz.New(secret).Verify(req, now), "no Tokenz-Signature v1 signature matched")
	})
	t.Run("BodyChangedByOneByte", func(t *testing.T) {
		t.Parallel()
		req := signed(body, now)
		req.Body = append([]byte(nil), body...)
		req.Body[len(req.Body)/2] ^= 0x01
		requireUnauthorized(t, tokenz.New(secret).Verify(req, now), "matched")
	})
	t.Run("HeaderMissing", func(t *testing.T) {
		t.Parallel()
		requireUnauthorized(t, tokenz.New(secret).Verify(&engine.Request{Body: body}, now), "Tokenz-Signature header missing")
		requireUnauthorized(t, tokenz.New(secret).Verify(&engine.Request{Header: http.Header{}, Body: body}, now), "header missing")
	})
	t.Run("HeaderGarbled", func(t *testing.T) {
		t.Parallel()
		sig := sigOf(tokenz.Sign(secret, body, now))
		for name, value := range map[string]string{
			"StripeSeparators":   "t=" + ms + ",v1=" + sig,
			"NoTimestamp":        "v1:" + sig,
			"TimestampNotNumber": "t:yesterday,v1:" + sig,
			"EmptyTimestamp":     "t:,v1:" + sig,
			"NegativeTimestamp":  "t:-" + ms + ",v1:" + sig,
			"TimestampOverflows": "t:99999999999999999999999,v1:" + sig,
			"TwoTimestamps":      "t:" + ms + ",t:" + ms + ",v1:" + sig,
			"NoSignature":        "t:" + ms,
			"EmptySignature":     "t:" + ms + ",v1:",
			"OnlyOtherVersions":  "t:" + ms + ",v0:" + sig + ",v2:" + sig,
			"OnlyCommas":         ",,,",
			"SpacesOnly":         "   ",
			"NoSeparators":       ms + sig,
		} {
			err := tokenz.New(secret).Verify(withHeader(value, body), now)
			require.Error(t, err, name)
			require.Equal(t, engine.EUNAUTHORIZED, engine.ErrorCode(err), name)
			msg := engine.ErrorMessage(err)
			require.True(t, strings.Contains(msg, "garbled") || strings.Contains(msg, "missing"), "%s: %s", name, msg)
			require.NotContains(t, msg, sig, name)
		}
	})
	t.Run("SpacesAndOtherVersionsAreTolerated", func(t *testing.T) {
		t.Parallel()
		sig := sigOf(tokenz.Sign(secret, body, now))
		require.NoError(t, tokenz.New(secret).Verify(withHeader(" t:"+ms+" , v0:abc= , v1:"+sig+" ", body), now))
	})
	t.Run("TimestampTooOld", func(t *testing.T) {
		t.Parallel()
		req := signed(body, now.Add(-6*time.Minute))
		requireUnauthorized(t, tokenz.New(secret).Verify(req, now), "is 6m0s old, 1m0s beyond the 5m0s tolerance")
	})
	t.Run("TimestampInFuture", func(t *testing.T) {
		t.Parallel()
		req := signed(body, now.Add(5*time.Minute+1500*time.Millisecond))
		requireUnauthorized(t, tokenz.New(secret).Verify(req, now), "is 5m1.5s in the future, 1.5s beyond the 5m0s tolerance")
	})
	t.Run("TimestampAtToleranceEdges", func(t *testing.T) {
		t.Parallel()
		a := tokenz.New(secret)
		require.NoError(t, a.Verify(signed(body, now.Add(-5*time.Minute)), now))
		require.NoError(t, a.Verify(signed(body, now.Add(5*time.Minute)), now))
	})
	t.Run("CustomTolerance", func(t *testing.T) {
		t.Parallel()
		a := tokenz.New(secret)
		a.Tolerance = 10 * time.Minute
		require.NoError(t, a.Verify(signed(body, now.Add(-9*time.Minute)), now))
		requireUnauthorized(t, a.Verify(signed(body, now.Add(-11*time.Minute)), now), "beyond the 10m0s tolerance")
	})
	t.Run("AssumedRecipe", func(t *testing.T) {
		t.Parallel()
		// Computed here independently of the package, so a change to the
		// recipe in signature shows up as a failure here.
		want := recipe(secret, ms, body)
		require.Equal(t, want, sigOf(tokenz.Sign(secret, body, now)))
		require.NoError(t, tokenz.New(secret).Verify(withHeader("t:"+ms+",v1:"+want, body), now))
	})
	t.Run("TimestampInSeconds", func(t *testing.T) {
		t.Parallel()
		// Only milliseconds are documented; seconds still read as a time.
		s := strconv.FormatInt(now.Unix(), 10)
		require.NoError(t, tokenz.New(secret).Verify(withHeader("t:"+s+",v1:"+recipe(secret, s, body), body), now))
	})
	t.Run("Rotation", func(t *testing.T) {
		t.Parallel()
		const next = "tz_whk_9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
		a := tokenz.New(secret, next)
		require.NoError(t, a.Verify(signed(body, now), now))
		require.NoError(t, a.Verify(&engine.Request{Header: tokenz.Sign(next, body, now), Body: body}, now))
		requireUnauthorized(t, a.Verify(&engine.Request{Header: tokenz.Sign("retired", body, now), Body: body}, now), "matched")
		requireUnauthorized(t, tokenz.New(next).Verify(signed(body, now), now), "matched")
	})
	t.Run("SecondOfTwoSignaturesMatches", func(t *testing.T) {
		t.Parallel()
		wrong := sigOf(tokenz.Sign("some-other-secret", body, now))
		right := sigOf(tokenz.Sign(secret, body, now))
		a := tokenz.New(secret)
		require.NoError(t, a.Verify(withHeader("t:"+ms+",v1:"+wrong+",v1:"+right, body), now))
		requireUnauthorized(t, a.Verify(withHeader("t:"+ms+",v1:"+wrong+",v1:"+wrong, body), now), "matched")
	})
	t.Run("SignatureBoundToTimestamp", func(t *testing.T) {
		t.Parallel()
		right := sigOf(tokenz.Sign(secret, body, now))
		later := strconv.FormatInt(now.Add(time.Second).UnixMilli(), 10)
		requireUnauthorized(t, tokenz.New(secret).Verify(withHeader("t:"+later+",v1:"+right, body), now), "matched")
	})
	t.Run("NoSecretConfigured", func(t *testing.T) {
		t.Parallel()
		requireUnauthorized(t, tokenz.New().Verify(signed(body, now), now), "no Tokenz signing secret")
		// An empty secret is dropped rather than used as an HMAC key.
		req := &engine.Request{Header: tokenz.Sign("", body, now), Body: body}
		requireUnauthorized(t, tokenz.New("").Verify(req, now), "no Tokenz signing secret")
		requireUnauthorized(t, (&tokenz.Adapter{}).Verify(req, now), "no Tokenz signing secret")
	})
	t.Run("NilRequest", func(t *testing.T) {
		t.Parallel()
		requireUnauthorized(t, tokenz.New(secret).Verify(nil, now), "missing")
	})
	t.Run("ErrorsNeverCarryTheSecretOrSignature", func(t *testing.T) {
		t.Parallel()
		h := tokenz.Sign("wrong", body, now)
		err := tokenz.New(secret).Verify(&engine.Request{Header: h, Body: body}, now)
		require.Error(t, err)
		require.NotContains(t, err.Error(), secret)
		require.NotContains(t, err.Error(), sigOf(h))
		require.NotContains(t, err.Error(), sigOf(tokenz.Sign(secret, body, now)))
	})
}

func BenchmarkVerifyParse(b *testing.B) {
	body := fixture(b, "order_succeeded.json")
	a := tokenz.New(secret)
	req := signed(body, now)
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Verify(req, now); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Parse(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	body := fixture(b, "order_succeeded.json")
	b.ReportAllocs()
	for b.Loop() {
		tokenz.Sign(secret, body, now)
	}
}
