package yoco

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

const testAPIKey = "sk_test_0123456789abcdef"

func TestPoller_MapsOnlyCompleted(t *testing.T) {
	api := NewFakeAPI(testAPIKey)
	defer api.Close()
	p := NewPoller(testAPIKey, api.URL(), time.Second)
	for _, status := range []string{"created", "started", "processing", "completed", "expired", "cancelled"} {
		t.Run(status, func(t *testing.T) {
			id := "ch_" + status
			api.SetCheckout(id, FakeCheckout{Status: status, Amount: 12500, Currency: "ZAR", PaymentID: "p_" + status, Mode: "test"})
			a, err := p.Poll(context.Background(), id)
			require.NoError(t, err)
			require.Equal(t, "status="+status, a.Status)
			if status != "completed" {
				require.Nil(t, a.Event, "a status nobody confirmed changes nothing")
				return
			}
			require.Equal(t, sm.KindPaid, a.Event.Kind)
			require.Equal(t, int64(12500), a.Event.Amount)
			require.Equal(t, "ZAR", a.Event.Currency)
			require.Equal(t, engine.ModeTest, a.Event.Mode)
			require.Equal(t, []string{"p_completed"}, a.Event.Refs)
			require.Equal(t, engine.SourcePoll, a.Event.Source)
		})
	}
}

func TestPoller_Failures(t *testing.T) {
	api := NewFakeAPI(testAPIKey)
	defer api.Close()
	api.SetCheckout("ch_1", FakeCheckout{Status: "completed", Amount: 1, Currency: "ZAR"})
	ctx := context.Background()
	reason := func(err error) string {
		t.Helper()
		var pe *engine.PollError
		require.True(t, errors.As(err, &pe), "%v", err)
		require.NotContains(t, pe.Message, testAPIKey)
		return pe.Reason
	}
	p := NewPoller(testAPIKey, api.URL(), 200*time.Millisecond)
	_, err := NewPoller("sk_wrong", api.URL(), time.Second).Poll(ctx, "ch_1")
	require.Equal(t, "unauthorized", reason(err))
	_, err = p.Poll(ctx, "ch_none")
	require.Equal(t, "not_found", reason(err))
	api.RateLimit(1, "3")
	_, err = p.Poll(ctx, "ch_1")
	require.Equal(t, "rate_limited", reason(err))
	api.Malformed(true)
	_, err = p.Poll(ctx, "ch_1")
	require.Equal(t, "malformed", reason(err))
	api.Malformed(false)
	api.Slow(time.Second)
	_, err = p.Poll(ctx, "ch_1")
	require.Equal(t, "timeout", reason(err))
	api.Slow(0)
	a, err := p.Poll(ctx, "ch_1")
	require.NoError(t, err)
	require.NotNil(t, a.Event)
}
