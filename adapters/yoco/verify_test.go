package yoco_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/yoco"
	"github.com/orderstate/orderstate/engine"
)

func requireUnauthorized(t *testing.T, err error, says string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, engine.EUNAUTHORIZED, engine.ErrorCode(err), err.Error())
	require.Contains(t, engine.ErrorMessage(err), says)
}

// sigOf returns the base64 signature Sign put in the headers.
func sigOf(h http.Header) string {
	return strings.TrimPrefix(h.Get(yoco.SignatureHeader), "v1,")
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := fixture(t, "payment_succeeded_test.json")
	a := yoco.MustNew(secret)

	t.Run("StandardWebhooksTestVector", func(t *testing.T) {
		t.Parallel()
		// The specification's published vector: matching it is what shows
		// the recipe is Standard Webhooks' and not a look-alike.
		at := time.Unix(1614265330, 0)
		h := yoco.Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", []byte(`{"test": 2432232314}`), at)
		require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", h.Get(yoco.SignatureHeader))
		require.Equal(t, "1614265330", h.Get(yoco.TimestampHeader))
		require.Equal(t, "msg_p5jXN8AQM9LWM0D4loKWxJek", h.Get(yoco.IDHeader))
		require.NoError(t, a.Verify(&engine.Request{Header: h, Body: []byte(`{"test": 2432232314}`)}, at))
	})
	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, a.Verify(signed(msgID, body, now), now))
	})
	t.Run("WrongSecret", func(t *testing.T) {
		t.Parallel()
		req := &engine.Request{Header: yoco.Sign(yoco.NewSecret(), msgID, body, now), Body: body}
		requireUnauthorized(t, a.Verify(req, now), "no webhook-signature v1 signature matched")
	})
	t.Run("BodyChangedByOneByte", func(t *testing.T) {
		t.Parallel()
		req := signed(msgID, body, now)
		req.Body = append([]byte(nil), body...)
		req.Body[len(req.Body)-3] ^= 0x01
		requireUnauthorized(t, a.Verify(req, now), "matched")
	})
	t.Run("SignatureBoundToIDAndTimestamp", func(t *testing.T) {
		t.Parallel()
		req := signed(msgID, body, now)
		req.Header.Set(yoco.IDHeader, "msg_other")
		requireUnauthorized(t, a.Verify(req, now), "matched")
		req = signed(msgID, body, now)
		req.Header.Set(yoco.TimestampHeader, strconv.FormatInt(now.Unix()+1, 10))
		requireUnauthorized(t, a.Verify(req, now), "matched")
	})
	t.Run("HeaderMissing", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{yoco.IDHeader, yoco.TimestampHeader, yoco.SignatureHeader} {
			req := signed(msgID, body, now)
			req.Header.Del(name)
			requireUnauthorized(t, a.Verify(req, now), name+" header missing")
		}
		requireUnauthorized(t, a.Verify(&engine.Request{Body: body}, now), "header missing")
		requireUnauthorized(t, a.Verify(nil, now), "header missing")
	})
	t.Run("HeaderGarbled", func(t *testing.T) {
		t.Parallel()
		sig := sigOf(yoco.Sign(secret, msgID, body, now))
		unix := strconv.FormatInt(now.Unix(), 10)
		for name, tc := range map[string]struct{ header, value, says string }{
			"TimestampNotNumber": {yoco.TimestampHeader, "yesterday", "webhook-timestamp header garbled"},
			"TimestampNegative":  {yoco.TimestampHeader, "-" + unix, "webhook-timestamp header garbled"},
			"TimestampFraction":  {yoco.TimestampHeader, unix + ".5", "webhook-timestamp header garbled"},
			"TimestampRFC3339":   {yoco.TimestampHeader, now.Format(time.RFC3339), "webhook-timestamp header garbled"},
			"TimestampMillis":    {yoco.TimestampHeader, strconv.FormatInt(now.UnixMilli(), 10), "webhook-timestamp header garbled"},
			"TimestampOverflows": {yoco.TimestampHeader, "99999999999999999999999", "webhook-timestamp header garbled"},
			"NoVersion":          {yoco.SignatureHeader, sig, "webhook-signature header garbled"},
			"StripeStyle":        {yoco.SignatureHeader, "t=" + unix + ",v1=" + sig, "webhook-signature header garbled"},
			"EmptySignature":     {yoco.SignatureHeader, "v1,", "webhook-signature header garbled"},
			"OnlyEd25519":        {yoco.SignatureHeader, "v1a," + sig, "webhook-signature header garbled"},
			"CommaSeparatedList": {yoco.SignatureHeader, "v2," + sig + ",v3," + sig, "webhook-signature header garbled"},
			"SpacesOnly":         {yoco.SignatureHeader, "   ", "webhook-signature header garbled"},
			"EqualsSeparator":    {yoco.SignatureHeader, "v1=" + sig, "webhook-signature header garbled"},
		} {
			req := signed(msgID, body, now)
			req.Header.Set(tc.header, tc.value)
			err := a.Verify(req, now)
			require.Error(t, err, name)
			require.Equal(t, engine.EUNAUTHORIZED, engine.ErrorCode(err), name)
			require.Contains(t, engine.ErrorMessage(err), tc.says, name)
			require.NotContains(t, engine.ErrorMessage(err), sig, name)
		}
	})
	t.Run("OtherVersionsIgnored", func(t *testing.T) {
		t.Parallel()
		req := signed(msgID, body, now)
		req.Header.Set(yoco.SignatureHeader, "v1a,bm90LWFuLWVkMjU1MTk= v1,"+sigOf(req.Header)+" v2,whatever")
		require.NoError(t, a.Verify(req, now))
	})
	t.Run("TimestampTooOld", func(t *testing.T) {
		t.Parallel()
		req := signed(msgID, body, now.Add(-3*time.Minute-20*time.Second))
		requireUnauthorized(t, a.Verify(req, now), "webhook-timestamp is 3m20s old, 20s beyond the 3m0s tolerance")
	})
	t.Run("TimestampInFuture", func(t *testing.T) {
		t.Parallel()
		req := signed(msgID, body, now.Add(4*time.Minute))
		requireUnauthorized(t, a.Verify(req, now), "webhook-timestamp is 4m0s in the future, 1m0s beyond the 3m0s tolerance")
	})
	t.Run("TimestampAtToleranceEdges", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, a.Verify(signed(msgID, body, now.Add(-3*time.Minute)), now))
		require.NoError(t, a.Verify(signed(msgID, body, now.Add(3*time.Minute)), now))
	})
	t.Run("CustomTolerance", func(t *testing.T) {
		t.Parallel()
		wide := yoco.MustNew(secret)
		wide.Tolerance = 5 * time.Minute
		require.NoError(t, wide.Verify(signed(msgID, body, now.Add(-4*time.Minute)), now))
		requireUnauthorized(t, wide.Verify(signed(msgID, body, now.Add(6*time.Minute)), now), "beyond the 5m0s tolerance")
	})
	t.Run("Rotation", func(t *testing.T) {
		t.Parallel()
		next := yoco.NewSecret()
		both := yoco.MustNew(secret, next)
		require.NoError(t, both.Verify(signed(msgID, body, now), now))
		require.NoError(t, both.Verify(&engine.Request{Header: yoco.Sign(next, msgID, body, now), Body: body}, now))
		requireUnauthorized(t, both.Verify(&engine.Request{Header: yoco.Sign(yoco.NewSecret(), msgID, body, now), Body: body}, now), "matched")
		requireUnauthorized(t, yoco.MustNew(next).Verify(signed(msgID, body, now), now), "matched")
	})
	t.Run("SecondOfTwoSignaturesMatches", func(t *testing.T) {
		t.Parallel()
		wrong := sigOf(yoco.Sign(yoco.NewSecret(), msgID, body, now))
		req := signed(msgID, body, now)
		right := sigOf(req.Header)
		req.Header.Set(yoco.SignatureHeader, "v1,"+wrong+" v1,"+right)
		require.NoError(t, a.Verify(req, now))
		req.Header.Set(yoco.SignatureHeader, "v1,"+wrong+" v1,"+wrong)
		requireUnauthorized(t, a.Verify(req, now), "matched")
	})
	t.Run("NoSecretConfigured", func(t *testing.T) {
		t.Parallel()
		requireUnauthorized(t, (&yoco.Adapter{}).Verify(signed(msgID, body, now), now), "no Yoco webhook secret")
	})
	t.Run("ErrorsNeverCarryTheSecretOrSignature", func(t *testing.T) {
		t.Parallel()
		h := yoco.Sign(yoco.NewSecret(), msgID, body, now)
		err := a.Verify(&engine.Request{Header: h, Body: body}, now)
		require.Error(t, err)
		require.NotContains(t, err.Error(), strings.TrimPrefix(secret, "whsec_"))
		require.NotContains(t, err.Error(), sigOf(h))
		require.NotContains(t, err.Error(), sigOf(yoco.Sign(secret, msgID, body, now)))
	})
}

func BenchmarkVerifyParse(b *testing.B) {
	body := fixture(b, "payment_succeeded_test.json")
	a := yoco.MustNew(secret)
	req := signed(msgID, body, now)
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
	body := fixture(b, "payment_succeeded_test.json")
	b.ReportAllocs()
	for b.Loop() {
		yoco.Sign(secret, msgID, body, now)
	}
}
