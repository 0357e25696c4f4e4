package simulate

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/orderstate/orderstate/adapters/yoco"
)

// Providers, as orderstate routes them.
const (
	Tokenz  = "tokenz"
	Yoco    = "yoco"
	Tazapay = "tazapay"
	Tweed   = "tweed"
)

// ProviderNames lists the providers in a fixed order.
var ProviderNames = []string{Tazapay, Tokenz, Tweed, Yoco}

// Config describes a day of traffic.
type Config struct {
	// Seed makes the day: the same seed gives the same orders, bodies and
	// delivery sequences.
	Seed uint64
	// Orders is how many orders the day has; it spaces their start times
	// over DayLength.
	Orders int
	// Day is when the shop's day starts, in provider time; DefaultDay when
	// zero.
	Day time.Time
	// DayLength is how long the day is; 24h when zero.
	DayLength time.Duration
	// Faults are the rates at which faults are injected.
	Faults Faults
	// Mix weighs the providers; DefaultMix when nil.
	Mix map[string]float64
	// IDPrefix starts every order id; "SO-" when empty. Days played into
	// one store need prefixes (and seeds) of their own: the same index
	// gives the same order id, the same seed the same provider ids.
	IDPrefix string
	// Filler, when positive, pads every webhook body with a note of about
	// that many bytes (from 3/4 to 5/4 of it, drawn per order) in a field
	// the provider's adapter does not read: Tokenz's description, the
	// metadata of the others. Real bodies weigh 2-3 KB with their line
	// items and metadata; the simulator's own fields make a few hundred
	// bytes. The orders are the same with and without it.
	Filler int
}

// DefaultDay is the provider-time day a simulation plays when Config.Day is
// zero. It is fixed so that bodies, and so the run, repeat exactly.
var DefaultDay = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// DefaultMix is a shop that takes most of its payments through Tazapay and
// Yoco.
var DefaultMix = map[string]float64{Tazapay: 0.35, Yoco: 0.25, Tokenz: 0.2, Tweed: 0.2}

// Fault names.
const (
	// FaultShuffle delays each webhook of an order by a random amount, so
	// they arrive in another order than they were sent.
	FaultShuffle = "shuffle"
	// FaultRetry redelivers one or two webhooks on the provider's retry
	// schedule; sometimes the first delivery was lost on the way.
	FaultRetry = "retry"
	// FaultDrop loses one webhook for good.
	FaultDrop = "drop"
	// FaultMissing loses every webhook that would confirm a payment whose
	// customer came back with success.
	FaultMissing = "missing"
	// FaultPaidAfterExpiry pays a Tazapay checkout after it expired.
	FaultPaidAfterExpiry = "paid_after_expiry"
	// FaultFailedAfterDone sends Tweed FAILED after DONE.
	FaultFailedAfterDone = "failed_after_done"
	// FaultFailedAfterTx sends Tweed FAILED_AFTER_TX_COMPLETED.
	FaultFailedAfterTx = "failed_after_tx"
	// FaultAmount captures an amount other than the registered one.
	FaultAmount = "amount"
	// FaultCurrency captures in another currency than the registered one.
	FaultCurrency = "currency"
	// FaultMode sends test-mode events for a live order (or live events
	// for a test order).
	FaultMode = "mode"
	// FaultSecondCheckout has a Tazapay or Tweed customer pay through a
	// checkout the shop never registered, whose events name the order by
	// the shop's reference alone.
	FaultSecondCheckout = "second_checkout"
	// FaultRedirect has the customer come back with an outcome the
	// provider contradicts.
	FaultRedirect = "redirect"
	// FaultForged adds a request signed with the wrong secret.
	FaultForged = "forged"
	// FaultUnsent has a Tazapay or Yoco customer pay and come back with
	// success while the provider never sends the webhooks that confirm it:
	// only asking the provider's API (Order.Polled) finds the payment. The
	// truth assumes it is asked, so it is 0 in DefaultFaults and on in
	// DemoFaults: the demo runs fake provider APIs and polls them.
	FaultUnsent = "unsent"
)

// FaultNames lists every fault, in the order they are applied.
var FaultNames = []string{FaultPaidAfterExpiry, FaultFailedAfterDone, FaultFailedAfterTx, FaultMissing, FaultAmount,
	FaultCurrency, FaultSecondCheckout, FaultMode, FaultRedirect, FaultDrop, FaultRetry, FaultShuffle, FaultForged, FaultUnsent}

// Faults maps a fault name to the probability that an order it can apply to
// gets it. A fault that does not fit an order (paid after expiry for a
// provider with no expiry) is not drawn for it.
type Faults map[string]float64

// DefaultFaults are the rates a plain demo runs with: common enough that a
// few thousand orders show every kind many times, rare enough that most
// orders are ordinary.
func DefaultFaults() Faults {
	return Faults{
		FaultShuffle: 0.15, FaultRetry: 0.12, FaultDrop: 0.04, FaultMissing: 0.04,
		FaultPaidAfterExpiry: 0.08, FaultFailedAfterDone: 0.06, FaultFailedAfterTx: 0.06,
		FaultAmount: 0.03, FaultCurrency: 0.02, FaultSecondCheckout: 0.03, FaultMode: 0.03, FaultRedirect: 0.03, FaultForged: 0.03,
		FaultUnsent: 0,
	}
}

// DemoFaults are DefaultFaults with the faults only the demo can check on:
// it polls fake provider APIs, so a payment whose webhooks never come is
// found there (FaultUnsent).
func DemoFaults() Faults {
	f := DefaultFaults()
	f[FaultUnsent] = 0.04
	return f
}

// Scale multiplies every rate by m, keeping each within [0, 1].
func (f Faults) Scale(m float64) Faults {
	out := Faults{}
	for k, v := range f {
		out[k] = min(max(v*m, 0), 1)
	}
	return out
}

// String lists the rates as ParseFaults reads them.
func (f Faults) String() string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.FormatFloat(f[k], 'g', -1, 64))
	}
	return strings.Join(parts, ",")
}

// ParseFaults reads a fault setting: "none"; a number that multiplies
// every default rate ("2" doubles them); or a comma-separated list of
// name=rate that overrides the named defaults, optionally with a multiplier
// first ("0.5,forged=0.2,drop=0").
func ParseFaults(s string) (Faults, error) { return ParseFaultsOver(DefaultFaults(), s) }

// ParseFaultsOver reads a fault setting as ParseFaults does, over the rates
// base instead of the defaults.
func ParseFaultsOver(base Faults, s string) (Faults, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return base, nil
	}
	if s == "none" || s == "off" {
		return base.Scale(0), nil
	}
	f := base
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		name, val, named := strings.Cut(item, "=")
		if !named {
			m, err := strconv.ParseFloat(item, 64)
			if err != nil || m < 0 || i != 0 {
				return nil, fmt.Errorf("faults %q: %q is neither name=rate nor a leading multiplier", s, item)
			}
			f = f.Scale(m)
			continue
		}
		name = strings.TrimSpace(name)
		if _, ok := f[name]; !ok {
			return nil, fmt.Errorf("faults %q: unknown fault %q; faults: %s", s, name, strings.Join(FaultNames, ", "))
		}
		rate, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || rate < 0 || rate > 1 {
			return nil, fmt.Errorf("faults %q: rate of %s must be a number from 0 to 1", s, name)
		}
		f[name] = rate
	}
	return f, nil
}

// Secrets are the webhook secrets the simulated providers sign with; the
// receiver must be configured with the same ones.
type Secrets struct {
	Tokenz, Yoco, Tazapay, Tweed string
}

// NewSecrets returns fresh random secrets, each in its provider's form.
func NewSecrets() Secrets {
	return Secrets{
		Tokenz:  "tkz_" + randomHex(24),
		Yoco:    yoco.NewSecret(),
		Tazapay: "tzp_" + randomHex(24),
		Tweed:   "tweed_" + randomHex(24),
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	// crypto/rand.Read does not fail since Go 1.24; it aborts the process.
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// For returns the secret of provider.
func (s Secrets) For(provider string) string {
	switch provider {
	case Tokenz:
		return s.Tokenz
	case Yoco:
		return s.Yoco
	case Tazapay:
		return s.Tazapay
	case Tweed:
		return s.Tweed
	}
	return ""
}

// forger holds the secrets a forged request is signed with: well-formed, so
// the receiver has to compute the signature to refuse it, and wrong.
var forger = Secrets{
	Tokenz:  "tkz_forged_0000000000000000",
	Yoco:    "whsec_Zm9yZ2VkLWZvcmdlZC1mb3JnZWQtZm9yZ2VkLWZvcmdlZA==",
	Tazapay: "tzp_forged_0000000000000000",
	Tweed:   "tweed_forged_000000000000000",
}

// Merge returns f with the rates of g set over it.
func (f Faults) Merge(g Faults) Faults {
	out := Faults{}
	for k, v := range f {
		out[k] = v
	}
	for k, v := range g {
		out[k] = v
	}
	return out
}
