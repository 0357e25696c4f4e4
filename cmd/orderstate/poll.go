package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/orderstate/orderstate/adapters/apicall"
	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/yoco"
	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/poll"
)

// unpollable are the providers that document no API to ask about a
// checkout: their orders are never polled.
var unpollable = []string{"tokenz", "tweed"}

// pollFlags turn polling on per provider (by its API credentials) and tune
// it.
type pollFlags struct {
	tazapayKey, tazapaySecret, tazapayURL string
	yocoKey, yocoURL                      string

	interval    time.Duration
	grace       time.Duration
	rate        float64
	maxAttempts int
	backoff     time.Duration
	timeout     time.Duration
}

func (p *pollFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.tazapayKey, "tazapay-api-key", "", "Tazapay API key; with --tazapay-api-secret, turns on polling Tazapay's checkout API for missing webhooks")
	fs.StringVar(&p.tazapaySecret, "tazapay-api-secret", "", "Tazapay API secret (HTTP Basic auth with the API key)")
	fs.StringVar(&p.tazapayURL, "tazapay-api-url", tazapay.DefaultAPIURL, "Tazapay API base URL ("+tazapay.SandboxAPIURL+" for the sandbox)")
	fs.StringVar(&p.yocoKey, "yoco-api-key", "", "Yoco secret key (sk_...); turns on polling Yoco's checkout API for missing webhooks")
	fs.StringVar(&p.yocoURL, "yoco-api-url", yoco.DefaultAPIURL, "Yoco API base URL")
	fs.DurationVar(&p.interval, "poll-interval", poll.DefaultInterval, "how often each polled provider's waiting orders are looked at")
	fs.DurationVar(&p.grace, "poll-grace", poll.DefaultGrace, "how long after the customer's redirect an order still in flight is first asked about")
	fs.Float64Var(&p.rate, "poll-rate", poll.DefaultRate, "API calls per second allowed to each polled provider")
	fs.IntVar(&p.maxAttempts, "poll-max-attempts", poll.DefaultMaxAttempts, "polls of one order that find nothing before it is left to a person (its anomaly says so)")
	fs.DurationVar(&p.backoff, "poll-backoff", poll.DefaultBaseBackoff, "wait after an order's first poll that found nothing; it doubles with each poll (with jitter), up to 6h")
	fs.DurationVar(&p.timeout, "poll-timeout", apicall.DefaultTimeout, "how long one call to a provider's API may take")
}

// check refuses half-set credentials and values the service would replace
// with its defaults.
func (p *pollFlags) check() error {
	if (p.tazapayKey == "") != (p.tazapaySecret == "") {
		return fmt.Errorf("--tazapay-api-key (%s) and --tazapay-api-secret (%s) go together: set both to poll Tazapay, or neither",
			envName("tazapay-api-key"), envName("tazapay-api-secret"))
	}
	for _, d := range []struct {
		name, example string
		v             time.Duration
	}{{"poll-interval", "1m", p.interval}, {"poll-grace", "5m", p.grace}, {"poll-timeout", "10s", p.timeout}, {"poll-backoff", "1m", p.backoff}} {
		if err := positive(d.name, d.v, d.example); err != nil {
			return err
		}
	}
	if p.rate <= 0 {
		return fmt.Errorf("--poll-rate (%s) %g: want a number of calls per second above zero, such as 2", envName("poll-rate"), p.rate)
	}
	if p.maxAttempts < 1 {
		return fmt.Errorf("--poll-max-attempts (%s) %d: want a number of polls of at least 1, such as %d", envName("poll-max-attempts"), p.maxAttempts, poll.DefaultMaxAttempts)
	}
	return nil
}

// pollers are the pollers of the providers whose credentials are set;
// tazapayMode is the mode the Tazapay account serves.
func (p *pollFlags) pollers(tazapayMode string) []engine.Poller {
	var out []engine.Poller
	if p.tazapayKey != "" && p.tazapaySecret != "" {
		tp := tazapay.NewPoller(p.tazapayKey, p.tazapaySecret, p.tazapayURL, p.timeout)
		tp.Mode = tazapayMode
		out = append(out, tp)
	}
	if p.yocoKey != "" {
		out = append(out, yoco.NewPoller(p.yocoKey, p.yocoURL, p.timeout))
	}
	return out
}

// config is the poll service's configuration.
func (p *pollFlags) config(onPoll func(provider, result string)) poll.Config {
	return poll.Config{Interval: p.interval, Grace: p.grace, Rate: p.rate, MaxAttempts: p.maxAttempts, BaseBackoff: p.backoff, Unpollable: unpollable, OnPoll: onPoll}
}

// service builds the poll service, or nil when no provider can be polled.
// It logs which providers are polled and which cannot be.
func (p *pollFlags) service(db engine.PollStore, tazapayMode string, now func() time.Time, log *slog.Logger, onPoll func(provider, result string)) *poll.Service {
	pollers := p.pollers(tazapayMode)
	if len(pollers) == 0 {
		return nil
	}
	svc := poll.New(db, p.config(onPoll), now, log.With(slog.String("component", "poll")), pollers...)
	log.Info("polling providers for missing webhooks", slog.Any("providers", svc.Pollable()),
		slog.Any("cannot_be_polled", unpollable), slog.Duration("interval", p.interval), slog.Float64("rate_per_second", p.rate))
	return svc
}

func runPoll(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("poll", "poll [flags] <order_id>", stderr)
	var sf storeFlags
	sf.registerExisting(fs)
	var pf pollFlags
	pf.register(fs)
	tazapayMode := fs.String("tazapay-mode", "", "mode of the Tazapay account: live or test (as serve's)")
	var lf logFlags
	lf.register(fs)
	asJSON := fs.Bool("json", false, "print the outcome as the API's JSON")
	if err := parse(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give one order id")
	}
	if err := pf.check(); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	db, err := sf.openExisting(ctx, log, time.Now)
	if err != nil {
		return err
	}
	defer db.Close()
	svc := poll.New(db, pf.config(nil), time.Now, log, pf.pollers(*tazapayMode)...)
	out, err := svc.PollOrder(ctx, fs.Arg(0))
	if err != nil && out.Result == "" {
		return err
	}
	if *asJSON {
		if perr := printJSON(stdout, out); perr != nil {
			return perr
		}
	} else {
		fmt.Fprintf(stdout, "Polled %s about order %s: %s\n", term(out.Provider), term(out.OrderID), term(out.Result))
		if out.Status != "" {
			fmt.Fprintf(stdout, "Answer    %s\n", term(out.Status))
		}
		if out.Event != nil {
			fmt.Fprintf(stdout, "Stored    event #%d (%s); the order is %s\n", out.Event.Seq, out.Event.Result, out.Event.State)
		}
		if out.Error != "" {
			fmt.Fprintf(stdout, "Error     %s\n", term(out.Error))
		}
	}
	return err
}
