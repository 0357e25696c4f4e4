package reconcile_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/reconcile"
	sm "github.com/orderstate/orderstate/statemachine"
)

// kindScenario sets up order "o" (registered 100 USD on tazapay, checkout
// "c") and plays a story; afterwards the clock moves a minute and a sweep
// runs, and the order must have an open anomaly of kind exactly when
// raised is set.
type kindScenario struct {
	name   string
	kind   string
	raised bool
	play   func(e *env)
}

func paid(e *env) engine.Event { return e.ev("tazapay", "c", sm.KindPaid, 100) }

var kindScenarios = []kindScenario{
	{"CreatedAfterPaid", engine.AnomalyOutOfOrder, true, func(e *env) {
		e.ingest(e.ev("tazapay", "c", sm.KindPaid, 100, at(start.Add(time.Minute))))
		e.ingest(e.ev("tazapay", "c", sm.KindCheckoutCreated, 0, at(start)))
	}},
	{"CreatedThenPaid", engine.AnomalyOutOfOrder, false, func(e *env) {
		e.ingest(e.ev("tazapay", "c", sm.KindCheckoutCreated, 0, at(start)))
		e.ingest(e.ev("tazapay", "c", sm.KindPaid, 100, at(start.Add(time.Minute))))
	}},

	{"SameEventTwice", engine.AnomalyDuplicate, true, func(e *env) {
		ev := paid(e)
		e.ingest(ev)
		e.clock.Add(time.Minute)
		e.ingest(ev)
	}},
	{"TwoDistinctEvents", engine.AnomalyDuplicate, false, func(e *env) {
		e.ingest(e.ev("tazapay", "c", sm.KindCheckoutCreated, 0))
		e.ingest(paid(e))
	}},

	{"RedirectSuccessNoWebhook", engine.AnomalyMissingWebhook, true, func(e *env) {
		e.redirect("o", engine.RedirectSuccess)
		e.clock.Add(16 * time.Minute)
	}},
	{"WebhookInsideGrace", engine.AnomalyMissingWebhook, false, func(e *env) {
		e.redirect("o", engine.RedirectSuccess)
		e.clock.Add(14 * time.Minute)
		e.ingest(paid(e))
		e.clock.Add(10 * time.Minute)
	}},
	{"RedirectSuccessStillInGrace", engine.AnomalyMissingWebhook, false, func(e *env) {
		e.redirect("o", engine.RedirectSuccess)
		e.clock.Add(13 * time.Minute)
	}},
	{"RedirectCancelNoWebhook", engine.AnomalyMissingWebhook, false, func(e *env) {
		e.redirect("o", engine.RedirectCancel)
		e.clock.Add(time.Hour)
	}},

	{"SuccessRedirectButExpired", engine.AnomalyRedirectMismatch, true, func(e *env) {
		e.redirect("o", engine.RedirectSuccess)
		e.ingest(e.ev("tazapay", "c", sm.KindExpired, 0))
	}},
	{"CancelRedirectButPaid", engine.AnomalyRedirectMismatch, true, func(e *env) {
		e.ingest(paid(e))
		e.redirect("o", engine.RedirectCancel)
	}},
	{"SuccessRedirectAndPaid", engine.AnomalyRedirectMismatch, false, func(e *env) {
		e.redirect("o", engine.RedirectSuccess)
		e.ingest(paid(e))
	}},

	{"PendingPastTTL", engine.AnomalyStuck, true, func(e *env) {
		e.ingest(e.ev("tazapay", "c", sm.KindCheckoutCreated, 0))
		e.clock.Add(24*time.Hour + time.Minute)
	}},
	{"PendingWithinTTL", engine.AnomalyStuck, false, func(e *env) {
		e.ingest(e.ev("tazapay", "c", sm.KindCheckoutCreated, 0))
		e.clock.Add(23 * time.Hour)
	}},
	{"PaidLongAgo", engine.AnomalyStuck, false, func(e *env) {
		e.ingest(paid(e))
		e.clock.Add(72 * time.Hour)
	}},

	{"PaidAfterExpired", engine.AnomalyLateAfterFinal, true, func(e *env) {
		e.ingest(e.ev("tazapay", "c", sm.KindExpired, 0))
		e.clock.Add(time.Hour)
		e.ingest(paid(e))
	}},
	{"ExpiredAfterPaidIsBenign", engine.AnomalyLateAfterFinal, false, func(e *env) {
		e.ingest(paid(e))
		e.clock.Add(time.Hour)
		e.ingest(e.ev("tazapay", "c", sm.KindExpired, 0))
	}},

	{"PaidThenFailed", engine.AnomalyConflict, true, func(e *env) {
		e.ingest(paid(e))
		e.ingest(e.ev("tazapay", "c", sm.KindFailed, 0))
	}},
	{"FailedThenExpired", engine.AnomalyConflict, false, func(e *env) {
		e.ingest(e.ev("tazapay", "c", sm.KindFailed, 0))
		e.ingest(e.ev("tazapay", "c", sm.KindExpired, 0))
	}},

	{"PaidThenFailedAfterSettlement", engine.AnomalyFailedAfterSettlement, true, func(e *env) {
		e.ingest(paid(e))
		e.ingest(e.ev("tazapay", "c", sm.KindFailedAfterSettlement, 0))
	}},
	{"PaidThenRefunded", engine.AnomalyFailedAfterSettlement, false, func(e *env) {
		e.ingest(paid(e))
		e.ingest(e.ev("tazapay", "c", sm.KindRefunded, 100))
	}},

	{"CapturedMore", engine.AnomalyAmountMismatch, true, func(e *env) {
		e.ingest(e.ev("tazapay", "c", sm.KindPaid, 150))
	}},
	{"CapturedExactly", engine.AnomalyAmountMismatch, false, func(e *env) {
		e.ingest(paid(e))
	}},

	{"CapturedInEUR", engine.AnomalyCurrencyMismatch, true, func(e *env) {
		e.ingest(e.ev("tazapay", "c", sm.KindPaid, 100, withCurrency("EUR")))
	}},
	{"CapturedInUSD", engine.AnomalyCurrencyMismatch, false, func(e *env) {
		e.ingest(paid(e))
	}},

	{"TestEventOnLiveOrder", engine.AnomalyModeMismatch, true, func(e *env) {
		e.ingest(e.ev("tazapay", "c", sm.KindPaid, 100, withMode(engine.ModeTest)))
	}},
	{"LiveEventOnLiveOrder", engine.AnomalyModeMismatch, false, func(e *env) {
		e.ingest(paid(e))
	}},

	{"PaidOnAnotherCheckoutNamingTheOrder", engine.AnomalyCheckoutMismatch, true, func(e *env) {
		e.ingest(e.ev("tazapay", "c2", sm.KindPaid, 100, withReference("o")))
	}},
	{"PaidOnAnotherCheckoutTiedToTheRegisteredOne", engine.AnomalyCheckoutMismatch, false, func(e *env) {
		e.ingest(e.ev("tazapay", "c", sm.KindInformational, 0, func(ev *engine.Event) { ev.Refs = []string{"c2"} }))
		e.ingest(e.ev("tazapay", "c2", sm.KindPaid, 100, withReference("o")))
	}},
}

// TestKinds_RaisedAndNotRaised plays, for every anomaly kind, a story that
// must raise it and a twin that must not.
func TestKinds_RaisedAndNotRaised(t *testing.T) {
	t.Parallel()
	for _, sc := range kindScenarios {
		t.Run(sc.kind+"/"+sc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, reconcile.Config{})
			e.register("o", "tazapay", "c", 100, "USD")
			e.sweep()
			sc.play(e)
			e.clock.Add(time.Minute)
			e.sweep()
			got, ok := e.anomalies("o")[sc.kind]
			if !sc.raised {
				require.False(t, ok, "%s raised: %s", sc.kind, got.Detail)
				return
			}
			require.True(t, ok, "%s not raised", sc.kind)
			require.Equal(t, engine.StatusOpen, got.Status)
			require.NotEmpty(t, got.Detail)
		})
	}
}

func TestKinds_EveryKindHasBothTwins(t *testing.T) {
	t.Parallel()
	raised, clear := map[string]bool{}, map[string]bool{}
	for _, sc := range kindScenarios {
		if sc.raised {
			raised[sc.kind] = true
		} else {
			clear[sc.kind] = true
		}
	}
	for _, k := range engine.AnomalyKinds {
		require.True(t, raised[k], "no scenario raises %s", k)
		require.True(t, clear[k], "no negative twin for %s", k)
	}
}

func TestSweep_IsIdempotent(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	e.register("o", "tazapay", "c", 100, "USD")
	e.redirect("o", engine.RedirectSuccess)
	e.clock.Add(25 * time.Hour)

	first := e.sweep()
	require.ElementsMatch(t, []string{"o/missing_webhook", "o/stuck"}, changes(first, reconcile.Raised))
	again := e.sweep()
	require.Empty(t, again.Changes)
	e.clock.Add(5 * time.Minute)
	require.Empty(t, e.sweep().Changes)

	as := e.anomalies("o")
	require.Equal(t, 1, as[engine.AnomalyStuck].Count, "a re-check is not a new occurrence")
	require.Equal(t, 1, as[engine.AnomalyMissingWebhook].Count)
}

func TestSweep_PerStateTimeToLive(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{PendingTTL: 48 * time.Hour, ProcessingTTL: 2 * time.Hour})
	e.register("slow_checkout", "tazapay", "c1", 100, "USD")
	e.register("slow_payment", "tazapay", "c2", 100, "USD")
	e.ingest(e.ev("tazapay", "c2", sm.KindPaymentProcessing, 0))

	e.clock.Add(3 * time.Hour)
	require.Equal(t, []string{"slow_payment/stuck"}, changes(e.sweep(), reconcile.Raised))
	e.clock.Add(44 * time.Hour)
	require.Empty(t, e.sweep().Changes, "47h pending is within a 48h time-to-live")
	e.clock.Add(2 * time.Hour)
	res := e.sweep()
	require.Equal(t, []string{"slow_checkout/stuck"}, changes(res, reconcile.Raised))
	require.Contains(t, res.Changes[0].Text, "pending since 2026-03-01 09:00:00 UTC (2d 1h)")
}

func TestSweep_LateWebhookResolvesWithHowLongItTook(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	e.register("o", "tazapay", "c", 100, "USD")
	e.redirect("o", engine.RedirectSuccess)
	e.clock.Add(20 * time.Minute)
	require.Equal(t, []string{"o/missing_webhook"}, changes(e.sweep(), reconcile.Raised))

	e.clock.Add(47 * time.Minute)
	e.ingest(paid(e))
	a := e.anomalies("o")[engine.AnomalyMissingWebhook]
	require.Equal(t, engine.StatusResolved, a.Status)
	require.NotNil(t, a.ResolvedAt)
	require.Equal(t, start.Add(67*time.Minute), *a.ResolvedAt)
	require.Contains(t, a.Resolution, "1h7m", "the resolution says how long the webhook took")

	e.clock.Add(time.Minute)
	require.Empty(t, e.sweep().Changes, "what ingest resolved the sweep leaves alone")
}

func TestIngest_ResolvesRedirectMismatchWhenItClears(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	e.register("o", "tazapay", "c", 100, "USD")
	e.redirect("o", engine.RedirectSuccess)
	e.ingest(e.ev("tazapay", "c", sm.KindExpired, 0))
	e.sweep()
	require.Equal(t, engine.StatusOpen, e.anomalies("o")[engine.AnomalyRedirectMismatch].Status)

	e.clock.Add(2 * time.Hour)
	e.ingest(paid(e)) // the customer did pay: late, but it agrees with the redirect
	a := e.anomalies("o")[engine.AnomalyRedirectMismatch]
	require.Equal(t, engine.StatusResolved, a.Status, "the webhook that clears it resolves it, as its absence would never have raised it")
	require.Contains(t, a.Resolution, "agree now")
	require.Empty(t, e.sweep().Changes, "what ingest resolved the sweep leaves alone")
}

func TestSweep_CancelledRedirectResolvesMissingWebhook(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	e.register("o", "tazapay", "c", 100, "USD")
	e.redirect("o", engine.RedirectSuccess)
	e.clock.Add(30 * time.Minute)
	e.sweep()
	e.clock.Add(10 * time.Minute)
	e.redirect("o", engine.RedirectCancel)
	res := e.sweep()
	require.Equal(t, []string{"o/missing_webhook"}, changes(res, reconcile.Resolved))
	require.Contains(t, res.Changes[0].Text, "as cancel")
	require.Contains(t, res.Changes[0].Text, "open 10m")
}

// TestSweep_ClosedAnomalyIsNotRaisedAgain: an anomaly the rules resolved
// opens again when the facts make it hold again, as it would be open had
// they come in another order; one a person acknowledged, or one the sweep
// re-checks, stays closed.
func TestSweep_ClosedAnomalyIsNotRaisedAgain(t *testing.T) {
	t.Parallel()
	t.Run("ResolvedByTheRulesReopens", func(t *testing.T) {
		t.Parallel()
		e := setup(t, reconcile.Config{})
		e.register("o", "tazapay", "c", 100, "USD")
		e.redirect("o", engine.RedirectSuccess)
		e.ingest(e.ev("tazapay", "c", sm.KindExpired, 0))
		e.clock.Add(time.Minute)
		e.redirect("o", engine.RedirectCancel)
		require.Equal(t, engine.StatusResolved, e.anomalies("o")[engine.AnomalyRedirectMismatch].Status,
			"the redirect that clears it resolves it")

		e.clock.Add(time.Minute)
		e.redirect("o", engine.RedirectSuccess) // the contradiction is back
		a := e.anomalies("o")[engine.AnomalyRedirectMismatch]
		require.Equal(t, engine.StatusOpen, a.Status, "the facts say it holds")
		require.Nil(t, a.ResolvedAt)
		require.Empty(t, e.sweep().Changes)
	})
	t.Run("Acknowledged", func(t *testing.T) {
		t.Parallel()
		e := setup(t, reconcile.Config{})
		e.register("o", "tazapay", "c", 100, "USD")
		e.clock.Add(25 * time.Hour)
		e.sweep()
		stuck := e.anomalies("o")[engine.AnomalyStuck]
		_, err := e.db.AckAnomaly(e.ctx, stuck.ID, "customer is paying by bank transfer")
		require.NoError(t, err)

		e.ingest(e.ev("tazapay", "c", sm.KindPaymentProcessing, 0))
		e.clock.Add(25 * time.Hour) // stuck again, now in processing
		require.Empty(t, e.sweep().Changes)
		a := e.anomalies("o")[engine.AnomalyStuck]
		require.Equal(t, engine.StatusAcknowledged, a.Status)
		require.Equal(t, stuck.ID, a.ID)
	})
}

// TestSweep_ThresholdChangeMovesTheWindow: shortening a time-to-live must
// pick up the orders between the old and new threshold, not skip them.
func TestSweep_ThresholdChangeMovesTheWindow(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	e.register("o", "tazapay", "c", 100, "USD")
	e.clock.Add(3 * time.Hour)
	require.Empty(t, e.sweep().Changes)

	shorter, err := reconcile.New(e.db, reconcile.Config{StuckAfter: 2 * time.Hour}, e.clock.Now, quiet())
	require.NoError(t, err)
	res, err := shorter.Sweep(e.ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"o/stuck"}, changes(res, reconcile.Raised))
}

func TestNew_RejectsBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]reconcile.Config{
		"NegativeGrace":  {RedirectGrace: -time.Minute},
		"SixFieldSpec":   {ReportSchedule: "0 0 3 * * *"},
		"GarbageSpec":    {SweepSchedule: "every five minutes"},
		"NegativeListed": {MaxPerKind: -1},
	} {
		_, err := reconcile.New(nil, cfg, nil, nil)
		require.Equal(t, engine.EINVALID, engine.ErrorCode(err), name)
	}
	// The time-to-lives default to stuck after: the message must name the
	// setting given, every time.
	for range 20 {
		_, err := reconcile.New(nil, reconcile.Config{StuckAfter: -time.Hour}, nil, nil)
		require.ErrorContains(t, err, "stuck after must not be negative")
	}
	r, err := reconcile.New(nil, reconcile.Config{SweepSchedule: "@every 10s", ReportSchedule: "0 3 * * *"}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 15*time.Minute, r.Config().RedirectGrace)
	require.Equal(t, 24*time.Hour, r.Config().PendingTTL)
}
