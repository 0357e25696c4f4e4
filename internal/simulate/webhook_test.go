package simulate_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/internal/simulate"
)

// Every type NewWebhook builds, for every provider, verifies and parses
// with the provider's own adapter into the event it was asked for.
func TestNewWebhook_EveryTypeParsesAsAsked(t *testing.T) {
	t.Parallel()
	secrets := simulate.NewSecrets()
	ads := adapters(secrets)
	now := time.Now()
	n := 0
	for _, provider := range simulate.ProviderNames {
		for _, typ := range simulate.Types(provider) {
			n++
			spec := simulate.WebhookSpec{Provider: provider, Type: typ, CheckoutID: "chk_send_" + provider, Amount: 4999,
				Currency: "USD", Reference: "order_send", At: now.Add(-time.Second)}
			d, err := simulate.NewWebhook(spec)
			require.NoError(t, err, "%s %s", provider, typ)
			r := d.Request(secrets, now)
			req := &engine.Request{Header: r.Header, Body: r.Body}
			require.NoError(t, ads[provider].Verify(req, now), "%s %s", provider, typ)
			ev, err := ads[provider].Parse(req)
			require.NoError(t, err, "%s %s: %s", provider, typ, r.Body)
			require.Equal(t, d.Event.Kind, ev.Kind, "%s %s", provider, typ)
			require.Equal(t, typ, ev.Type)
			require.Equal(t, d.Event.CheckoutID, ev.CheckoutID, "%s %s", provider, typ)
			require.Equal(t, d.Event.Amount, ev.Amount, "%s %s", provider, typ)
			require.Equal(t, d.Event.Currency, ev.Currency, "%s %s", provider, typ)
			// A Tazapay payment attempt or refund names the payin alone,
			// as Tazapay's do; every other webhook names the checkout.
			if provider != simulate.Tazapay || strings.HasPrefix(typ, "checkout.") {
				require.Equal(t, spec.CheckoutID, ev.CheckoutID, "%s %s", provider, typ)
			}
		}
	}
	require.Equal(t, 20, n, "the types the day's traffic sends")

	// The same checkout's webhooks name the same payin: checkout.paid
	// ties the attempts to the checkout.
	a, err := simulate.NewWebhook(simulate.WebhookSpec{Provider: simulate.Tazapay, Type: "payment_attempt.succeeded", CheckoutID: "chk_1", Currency: "USD"})
	require.NoError(t, err)
	b, err := simulate.NewWebhook(simulate.WebhookSpec{Provider: simulate.Tazapay, Type: "checkout.paid", CheckoutID: "chk_1", Currency: "USD"})
	require.NoError(t, err)
	require.Contains(t, b.Event.Refs, a.Event.CheckoutID)
	c, err := simulate.NewWebhook(simulate.WebhookSpec{Provider: simulate.Tazapay, Type: "checkout.paid", CheckoutID: "chk_1", Currency: "USD", EventID: "evt_given"})
	require.NoError(t, err)
	require.Equal(t, "evt_given", c.Event.EventID)
	require.NotEqual(t, b.Event.EventID, a.Event.EventID, "a new event id each time")

	_, err = simulate.NewWebhook(simulate.WebhookSpec{Provider: simulate.Tazapay, Type: "checkout.payd", CheckoutID: "chk_1"})
	require.ErrorContains(t, err, `tazapay has no event type "checkout.payd" here; types: checkout.created, checkout.expired, checkout.paid`)
	_, err = simulate.NewWebhook(simulate.WebhookSpec{Provider: "stripe", Type: "x", CheckoutID: "chk_1"})
	require.ErrorContains(t, err, `no provider "stripe"`)
}
