package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/orderstate/orderstate/adapters/tweed"
	"github.com/orderstate/orderstate/adapters/yoco"
	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/internal/simulate"
)

// sendFlags are orderstate send's.
type sendFlags struct {
	store     storeFlags
	providers providerFlags
	provider  string
	typ       string
	checkout  string
	amount    int64
	currency  string
	mode      string
	reference string
	eventID   string
	body      string
	replay    int64
	url       string
	timeout   time.Duration
	dryRun    bool
}

func (f *sendFlags) register(fs *flag.FlagSet) {
	f.store.registerExisting(fs)
	fs.Lookup("db").Usage = "the store --replay reads the request from (a SQLite file or a postgres:// URL)"
	f.providers.register(fs)
	fs.StringVar(&f.provider, "provider", "", "the provider whose webhook to send: tazapay, tokenz, tweed or yoco (or give it as the first argument)")
	fs.StringVar(&f.typ, "type", "", "the provider's event type, such as checkout.paid (Tazapay), order.succeeded (Tokenz), payment.succeeded (Yoco), DONE (Tweed)")
	fs.StringVar(&f.checkout, "checkout", "", "the provider's checkout id the webhook is about, as the shop registered it")
	fs.Int64Var(&f.amount, "amount", 0, "the amount the provider reports, in minor units (a refund's: the amount refunded)")
	fs.StringVar(&f.currency, "currency", "USD", "the currency the provider reports, an ISO 4217 code")
	fs.StringVar(&f.mode, "mode", "live", "live or test, where the provider's payload says (Tokenz, Yoco, Tweed)")
	fs.StringVar(&f.reference, "order", "", "the shop's order id, where the payload carries one (Tazapay reference_id, Tweed customParams.orderRef)")
	fs.StringVar(&f.eventID, "event-id", "", "the provider's event id (default: a new one); the same id again is a redelivery")
	fs.StringVar(&f.body, "body", "", "send this JSON file as the body instead of building one (signed all the same)")
	fs.Int64Var(&f.replay, "replay", 0, "re-send the raw request of the stored event with this seq (a timeline's seq), signed anew; needs --db")
	fs.StringVar(&f.url, "url", "", "the sidecar's base URL (default: from ORDERSTATE_ADDR, http://127.0.0.1:8080)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the answer")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the signed request instead of sending it")
}

// runSend sends one webhook to a running sidecar, signed with the
// configured secret exactly as the provider signs it, and prints the
// answer: the Stripe CLI's trigger, for orderstate's providers.
func runSend(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send", "send PROVIDER --type TYPE --checkout ID [--amount N --currency CUR] | send PROVIDER --body FILE | send --replay SEQ --db PATH", stderr)
	var f sendFlags
	f.register(fs)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	// The provider may come before the flags or after them.
	rest := fs.Args()
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") && f.provider == "" {
		f.provider, rest = rest[0], rest[1:]
		if err := parse(fs, rest, func(string) string { return "" }); err != nil {
			return err
		}
		rest = fs.Args()
	}
	if len(rest) > 0 {
		fs.Usage()
		return fmt.Errorf("send takes one provider and flags; got %q too", rest)
	}
	if err := positive("timeout", f.timeout, "10s"); err != nil {
		return err
	}
	d, what, err := f.delivery(ctx)
	if err != nil {
		return err
	}
	secret, signed, err := f.secret(d.Provider)
	if err != nil {
		return err
	}
	secrets := simulate.Secrets{}
	switch d.Provider {
	case simulate.Tokenz:
		secrets.Tokenz = secret
	case simulate.Yoco:
		secrets.Yoco = secret
	case simulate.Tazapay:
		secrets.Tazapay = secret
	case simulate.Tweed:
		secrets.Tweed = secret
	}
	r := d.Request(secrets, time.Now())
	if !signed {
		r.Header.Del(tweed.SignatureHeader)
	}
	target := urlFlag(f.url, env) + r.Path
	if f.dryRun {
		fmt.Fprintf(stdout, "%s %s\n", r.Method, target)
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(stdout, "%s: %s\n", k, strings.Join(r.Header[k], ", "))
		}
		_, err := fmt.Fprintf(stdout, "\n%s\n", r.Body)
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, target, bytes.NewReader(r.Body))
	if err != nil {
		return fmt.Errorf("--url %q: %w", f.url, err)
	}
	req.Header = r.Header
	how := "signed with " + envName(d.Provider+"-secret")
	if !signed {
		how = "unsigned"
	}
	fmt.Fprintf(stdout, "%s %s: %s, %d bytes, %s\n", r.Method, target, what, len(r.Body), how)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach orderstate at %s (is serve running? --url or ORDERSTATE_ADDR says where): %w", urlFlag(f.url, env), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s\n%s", resp.Proto, resp.Status, reconcilePrintable(body))
	if !bytes.HasSuffix(body, []byte("\n")) {
		fmt.Fprintln(stdout)
	}
	if resp.StatusCode/100 != 2 {
		return &exitError{code: 1, err: fmt.Errorf("orderstate answered %s", resp.Status)}
	}
	return nil
}

// reconcilePrintable leaves in an answer nothing a terminal would act on.
func reconcilePrintable(b []byte) string {
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		lines[i] = term(l)
	}
	return strings.Join(lines, "\n")
}

// delivery is the webhook the flags describe, and a few words on it.
func (f *sendFlags) delivery(ctx context.Context) (*simulate.Delivery, string, error) {
	built := f.typ != "" || f.checkout != "" || f.amount != 0 || f.reference != "" || f.eventID != ""
	switch {
	case f.replay != 0 && (f.body != "" || built || f.provider != ""):
		return nil, "", errors.New("--replay sends a stored request as it was: give it alone, with --db")
	case f.replay != 0:
		return f.replayed(ctx)
	case f.provider == "":
		return nil, "", fmt.Errorf("give the provider: orderstate send tazapay --type checkout.paid --checkout chk_... (providers: %s)",
			strings.Join(knownProviders, ", "))
	case !slices.Contains(knownProviders, f.provider):
		return nil, "", fmt.Errorf("no provider %q; providers: %s", f.provider, strings.Join(knownProviders, ", "))
	case f.body != "" && built:
		return nil, "", errors.New("--body sends the file as it is: give it without --type, --checkout, --amount, --order or --event-id")
	case f.body != "":
		b, err := os.ReadFile(f.body)
		if err != nil {
			return nil, "", err
		}
		d, err := simulate.RawWebhook(f.provider, b, "")
		return d, f.provider + " webhook from " + f.body, err
	}
	if f.typ == "" {
		return nil, "", fmt.Errorf("give the event type with --type; %s's: %s", f.provider, strings.Join(simulate.Types(f.provider), ", "))
	}
	if f.checkout == "" {
		return nil, "", errors.New("give the checkout id the webhook is about with --checkout")
	}
	cur := strings.ToUpper(strings.TrimSpace(f.currency))
	if err := engine.CheckCurrency("--currency", cur); err != nil {
		return nil, "", errors.New(engine.ErrorMessage(err))
	}
	if f.amount < 0 {
		return nil, "", fmt.Errorf("--amount %d: want minor units, zero or more", f.amount)
	}
	if f.mode != engine.ModeLive && f.mode != engine.ModeTest {
		return nil, "", fmt.Errorf("--mode %q: want live or test", f.mode)
	}
	d, err := simulate.NewWebhook(simulate.WebhookSpec{Provider: f.provider, Type: f.typ, CheckoutID: f.checkout, Amount: f.amount,
		Currency: cur, Mode: f.mode, Reference: f.reference, EventID: f.eventID})
	if err != nil {
		return nil, "", err
	}
	return d, fmt.Sprintf("%s %s, event %s, checkout %s", f.provider, f.typ, d.Event.EventID, f.checkout), nil
}

// replayed is the stored raw request of event --replay, to be signed anew:
// the store keeps no signature (it redacts them), and Tokenz and Yoco sign
// the moment they send.
func (f *sendFlags) replayed(ctx context.Context) (*simulate.Delivery, string, error) {
	db, err := f.store.openExisting(ctx, discardLogger(), time.Now)
	if err != nil {
		return nil, "", err
	}
	defer db.Close()
	raw, err := db.RawRequest(ctx, f.replay)
	if err != nil {
		return nil, "", errors.New(engine.ErrorMessage(err))
	}
	if raw.PurgedAt != nil {
		return nil, "", fmt.Errorf("the raw request of event %d was purged at %s (--retain-raw, or orderstate purge); there is nothing to re-send",
			raw.Seq, raw.PurgedAt.Format(time.RFC3339))
	}
	delivery := ""
	switch raw.Provider {
	case simulate.Yoco:
		delivery = raw.Header[http.CanonicalHeaderKey(yoco.IDHeader)]
	case simulate.Tweed:
		delivery = raw.Header[http.CanonicalHeaderKey(tweed.DeliveryHeader)]
	}
	d, err := simulate.RawWebhook(raw.Provider, raw.Body, delivery)
	if err != nil {
		return nil, "", err
	}
	return d, fmt.Sprintf("%s event %s (seq %d) as received at %s", raw.Provider, term(raw.EventID), raw.Seq,
		raw.ReceivedAt.Format(time.RFC3339)), nil
}

// secret is what the provider's webhooks are signed with: the first of
// the configured secrets, which serve takes too. signed is false for
// Tweed allowed unsigned without a secret.
func (f *sendFlags) secret(provider string) (string, bool, error) {
	p := f.providers
	// Only this provider's secret matters here: another's may be unset,
	// or (Yoco's) not in the form that provider's adapter takes.
	p.tokenz, p.yoco, p.tazapay, p.tweed = "", "", "", ""
	var v string
	switch provider {
	case simulate.Tokenz:
		v, p.tokenz = f.providers.tokenz, f.providers.tokenz
	case simulate.Yoco:
		v, p.yoco = f.providers.yoco, f.providers.yoco
	case simulate.Tazapay:
		v, p.tazapay = f.providers.tazapay, f.providers.tazapay
	case simulate.Tweed:
		v, p.tweed = f.providers.tweed, f.providers.tweed
	}
	if _, err := p.adapters(discardLogger()); err != nil {
		return "", false, err
	}
	s := secrets(v)
	if len(s) == 0 {
		if provider == simulate.Tweed && f.providers.tweedAllowUnsigned {
			return "", false, nil
		}
		return "", false, fmt.Errorf("no %s secret to sign with: set %s (the one serve uses) or --%s-secret",
			provider, envName(provider+"-secret"), provider)
	}
	return s[0], true, nil
}
