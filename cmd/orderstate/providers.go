package main

import (
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/tokenz"
	"github.com/orderstate/orderstate/adapters/tweed"
	"github.com/orderstate/orderstate/adapters/yoco"
	"github.com/orderstate/orderstate/engine"
)

// knownProviders are the providers an order can be registered with.
var knownProviders = []string{"tazapay", "tokenz", "tweed", "yoco"}

// providerFlags hold each provider's webhook secrets. A comma-separated
// list is accepted so that a secret can be rotated without dropping
// webhooks signed with the old one.
type providerFlags struct {
	tokenz, yoco, tazapay, tweed string
	tweedAllowUnsigned           bool
	tazapayMode                  string
}

func (p *providerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.tokenz, "tokenz-secret", "", "Tokenz endpoint signing secret(s), comma-separated during rotation")
	fs.StringVar(&p.yoco, "yoco-secret", "", "Yoco webhook secret(s) (whsec_...), comma-separated during rotation")
	fs.StringVar(&p.tazapay, "tazapay-secret", "", "Tazapay webhook secret token(s), comma-separated during rotation")
	fs.StringVar(&p.tweed, "tweed-secret", "", "Tweed webhook secret(s) for X-Hub-Signature-256, comma-separated during rotation")
	fs.BoolVar(&p.tweedAllowUnsigned, "tweed-allow-unsigned", false, "accept unsigned Tweed webhooks when no Tweed secret is set (each is counted in the report)")
	fs.StringVar(&p.tazapayMode, "tazapay-mode", "", "mode of the Tazapay account this endpoint serves: live or test (Tazapay's payloads do not say)")
}

func secrets(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// adapters builds the adapter of every provider that has a secret (or, for
// Tweed, is allowed unsigned).
func (p *providerFlags) adapters(log *slog.Logger) ([]engine.Adapter, error) {
	// An unset or empty value means the provider is not used. One that
	// holds only separators is a secret lost on the way (an empty
	// substitution in a list, say): taking it as "not configured" would
	// refuse the provider's every webhook with nothing but a warning.
	for _, v := range []struct{ flag, value string }{
		{"tokenz-secret", p.tokenz}, {"yoco-secret", p.yoco}, {"tazapay-secret", p.tazapay}, {"tweed-secret", p.tweed},
	} {
		if v.value != "" && len(secrets(v.value)) == 0 {
			return nil, fmt.Errorf("--%s (%s) holds only commas and spaces, no secret; set the secret, or leave it unset to turn the provider off",
				v.flag, envName(v.flag))
		}
	}
	var out []engine.Adapter
	if s := secrets(p.tokenz); len(s) > 0 {
		out = append(out, tokenz.New(s...))
	}
	if s := secrets(p.yoco); len(s) > 0 {
		a, err := yoco.New(s...)
		if err != nil {
			return nil, fmt.Errorf("--yoco-secret: %w", err)
		}
		out = append(out, a)
	}
	if s := secrets(p.tazapay); len(s) > 0 {
		switch p.tazapayMode {
		case "", engine.ModeLive, engine.ModeTest:
		default:
			return nil, fmt.Errorf("--tazapay-mode %q: want live or test", p.tazapayMode)
		}
		a := tazapay.New(s...)
		a.Mode = p.tazapayMode
		out = append(out, a)
	}
	if s := secrets(p.tweed); len(s) > 0 || p.tweedAllowUnsigned {
		a := tweed.New(s...)
		a.AllowUnsigned = p.tweedAllowUnsigned
		if len(s) == 0 {
			log.Warn("accepting unsigned Tweed webhooks: anyone who can reach this port can post them; set ORDERSTATE_TWEED_SECRET")
		}
		out = append(out, a)
	}
	return out, nil
}
