package tazapay

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

const (
	testKey    = "ak_test_key_123"
	testSecret = "as_test_secret_456"
)

func TestPoller_MapsTheCheckout(t *testing.T) {
	api := NewFakeAPI(testKey, testSecret)
	defer api.Close()
	p := NewPoller(testKey, testSecret, api.URL(), time.Second)
	p.Mode = engine.ModeLive
	for _, tc := range []struct {
		name     string
		checkout FakeCheckout
		kind     sm.Kind // "" when the answer establishes nothing
		amount   int64
	}{
		{"Paid", FakeCheckout{PaymentStatus: "paid", Status: "active", Amount: 4999, AmountPaid: 4999, Currency: "USD", Payin: "pay_1"}, sm.KindPaid, 4999},
		// Tazapay's own example: expired page, paid checkout.
		{"PaidAfterExpiry", FakeCheckout{PaymentStatus: "paid", Status: "expired", Amount: 4999, AmountPaid: 4999, Currency: "usd"}, sm.KindPaid, 4999},
		{"PaidWithoutAmountPaid", FakeCheckout{PaymentStatus: "paid", Status: "active", Amount: 700, Currency: "USD"}, sm.KindPaid, 700},
		{"Processing", FakeCheckout{PaymentStatus: "processing", Status: "active", Amount: 4999, Currency: "USD"}, sm.KindPaymentProcessing, 0},
		{"ExpiredUnpaid", FakeCheckout{PaymentStatus: "unpaid", Status: "expired", Amount: 4999, Currency: "USD"}, sm.KindExpired, 0},
		{"UnpaidActive", FakeCheckout{PaymentStatus: "unpaid", Status: "active", Amount: 4999, Currency: "USD"}, "", 0},
		{"UndocumentedStatus", FakeCheckout{PaymentStatus: "on_hold", Status: "active", Amount: 4999, Currency: "USD"}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "chk_" + strings.ToLower(tc.name)
			tc.checkout.Reference = "order_" + tc.name
			api.SetCheckout(id, tc.checkout)
			a, err := p.Poll(context.Background(), id)
			require.NoError(t, err)
			require.Contains(t, a.Status, "payment_status="+tc.checkout.PaymentStatus)
			if tc.kind == "" {
				require.Nil(t, a.Event)
				return
			}
			require.NotNil(t, a.Event)
			ev := *a.Event
			require.Equal(t, tc.kind, ev.Kind)
			require.Equal(t, engine.SourcePoll, ev.Source)
			require.Equal(t, id, ev.CheckoutID)
			require.Equal(t, tc.amount, ev.Amount)
			require.Equal(t, "order_"+tc.name, ev.Reference)
			require.Equal(t, engine.ModeLive, ev.Mode)
			ev.Provider = Name
			require.NoError(t, engine.ValidateEvent(ev))
			if tc.kind == sm.KindPaid {
				require.Equal(t, "USD", ev.Currency)
			}
			if tc.checkout.Payin != "" {
				require.Equal(t, []string{tc.checkout.Payin}, ev.Refs)
			}
		})
	}
}

func pollError(t *testing.T, err error) *engine.PollError {
	t.Helper()
	var pe *engine.PollError
	require.True(t, errors.As(err, &pe), "want a *engine.PollError, got %v", err)
	require.NotContains(t, pe.Message, testSecret)
	require.NotContains(t, pe.Message, testKey)
	return pe
}

func TestPoller_Failures(t *testing.T) {
	api := NewFakeAPI(testKey, testSecret)
	defer api.Close()
	api.SetCheckout("chk_1", FakeCheckout{PaymentStatus: "paid", Status: "active", Amount: 1, AmountPaid: 1, Currency: "USD"})
	ctx := context.Background()
	ok := NewPoller(testKey, testSecret, api.URL(), 200*time.Millisecond)

	t.Run("Unauthorized", func(t *testing.T) {
		_, err := NewPoller(testKey, "wrong", api.URL(), time.Second).Poll(ctx, "chk_1")
		pe := pollError(t, err)
		require.Equal(t, "unauthorized", pe.Reason)
		require.Equal(t, http.StatusUnauthorized, pe.Status)
	})
	t.Run("NotFound", func(t *testing.T) {
		_, err := ok.Poll(ctx, "chk_nobody")
		require.Equal(t, "not_found", pollError(t, err).Reason)
	})
	t.Run("RateLimitedWithRetryAfterSeconds", func(t *testing.T) {
		api.RateLimit(1, "7")
		_, err := ok.Poll(ctx, "chk_1")
		pe := pollError(t, err)
		require.Equal(t, "rate_limited", pe.Reason)
		require.Equal(t, 7*time.Second, pe.RetryAfter)
		_, err = ok.Poll(ctx, "chk_1")
		require.NoError(t, err, "the limit was for one call")
	})
	t.Run("RateLimitedWithRetryAfterDate", func(t *testing.T) {
		api.RateLimit(1, time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
		_, err := ok.Poll(ctx, "chk_1")
		pe := pollError(t, err)
		require.InDelta(t, 90, pe.RetryAfter.Seconds(), 3)
	})
	t.Run("Down", func(t *testing.T) {
		api.Down(1)
		_, err := ok.Poll(ctx, "chk_1")
		require.Equal(t, "unavailable", pollError(t, err).Reason)
	})
	t.Run("SlowAnswerTimesOut", func(t *testing.T) {
		api.Slow(time.Second)
		defer api.Slow(0)
		start := time.Now()
		_, err := ok.Poll(ctx, "chk_1")
		require.Equal(t, "timeout", pollError(t, err).Reason)
		require.Less(t, time.Since(start), 900*time.Millisecond, "the call's timeout, not the server, ended it")
	})
	t.Run("MalformedJSON", func(t *testing.T) {
		api.Malformed(true)
		defer api.Malformed(false)
		_, err := ok.Poll(ctx, "chk_1")
		require.Equal(t, "malformed", pollError(t, err).Reason)
	})
	t.Run("Unreachable", func(t *testing.T) {
		_, err := NewPoller(testKey, testSecret, "http://127.0.0.1:1", time.Second).Poll(ctx, "chk_1")
		require.Equal(t, "unavailable", pollError(t, err).Reason)
	})
	t.Run("IDIsEscaped", func(t *testing.T) {
		_, err := ok.Poll(ctx, "chk_1/../../admin")
		require.Equal(t, "not_found", pollError(t, err).Reason)
	})
}
