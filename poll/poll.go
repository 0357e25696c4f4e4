// Package poll asks providers what became of orders whose webhooks have not
// come: the orders flagged missing_webhook or stuck, and those still pending
// a grace period after the customer came back. What a provider's API
// answers enters the store as an event with source "poll", through the same
// dedupe, rules and transaction as a webhook (engine.Store.Ingest).
//
// It is a good citizen of each provider's API: one rate limiter per
// provider (golang.org/x/time/rate), exponential backoff with jitter per
// order, a bounded number of attempts after which the order's anomalies
// stay open with a note saying so, 429 and Retry-After honoured for the
// whole provider, and a timeout on every call (the pollers' own). Each
// provider is polled on a goroutine of its own, apart from ingest and the
// sweep: a provider that is down or slow holds up nothing but its own
// polls. The backoff state is kept in memory: a restart starts each order's
// attempts afresh, which at worst costs MaxAttempts calls per order again.
package poll

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Defaults; see Config.
const (
	DefaultInterval    = time.Minute
	DefaultGrace       = 5 * time.Minute
	DefaultWindow      = 72 * time.Hour
	DefaultRate        = 2.0
	DefaultMaxAttempts = 8
	DefaultBaseBackoff = time.Minute
	DefaultMaxBackoff  = 6 * time.Hour
	DefaultLimit       = 500
)

// Results of a poll, the values of the result label of the polls metric
// besides the engine.PollError reasons.
const (
	// ResultRecovered: the answer gave the order its outcome.
	ResultRecovered = "recovered"
	// ResultChanged: the answer moved the order, not to an outcome.
	ResultChanged = "changed"
	// ResultUnchanged: the answer establishes nothing new (still unpaid,
	// a status nobody confirmed, or what the order already says).
	ResultUnchanged = "unchanged"
	// ResultConflict: the answer contradicts the order's outcome.
	ResultConflict = "conflict"
	// ResultStoreError: the answer could not be stored.
	ResultStoreError = "store_error"
)

// Config tunes polling; zero fields take the defaults.
type Config struct {
	// Interval is how often each provider's candidates are read.
	Interval time.Duration
	// Grace is how long after the customer's redirect an order still in
	// flight is first asked about.
	Grace time.Duration
	// Window bounds how far back candidates are read: an order redirected
	// or flagged longer ago is left to a person.
	Window time.Duration
	// Rate is the calls per second allowed to each provider's API (burst 1).
	Rate float64
	// MaxAttempts bounds the polls of one order that establish nothing.
	MaxAttempts int
	// BaseBackoff is the wait after an order's first unfruitful poll; it
	// doubles with each attempt, with jitter, up to MaxBackoff.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Limit bounds the candidates read at once; a pass reads them all,
	// a page at a time.
	Limit int
	// Unpollable names the configured providers that have no retrieve API.
	Unpollable []string
	// OnPoll, when set, hears of every call made: provider and result (a
	// Result* constant or an engine.PollError reason).
	OnPoll func(provider, result string)
}

func (c Config) withDefaults() Config {
	c.Interval = cmp.Or(c.Interval, DefaultInterval)
	c.Grace = cmp.Or(c.Grace, DefaultGrace)
	c.Window = cmp.Or(c.Window, DefaultWindow)
	c.Rate = cmp.Or(c.Rate, DefaultRate)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, DefaultMaxAttempts)
	c.BaseBackoff = cmp.Or(c.BaseBackoff, DefaultBaseBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultMaxBackoff)
	c.Limit = cmp.Or(c.Limit, DefaultLimit)
	return c
}

// Service polls the providers that have a Poller.
type Service struct {
	store   engine.PollStore
	cfg     Config
	now     func() time.Time
	log     *slog.Logger
	pollers map[string]engine.Poller
	limits  map[string]*rate.Limiter
	// Jitter returns a number in [0, 1); tests fix it.
	Jitter func() float64

	mu      sync.Mutex
	orders  map[int64]*attempts
	blocked map[string]time.Time // provider -> no call before
	counts  map[[2]string]int
	running map[string]bool
	// gaveUp counts the orders given up on, once their anomalies say so.
	gaveUp int
}

// attempts is one order's history of unfruitful polls.
type attempts struct {
	n      int
	first  time.Time
	next   time.Time
	last   string
	gaveUp bool
}

// New is a service asking through pollers, storing into store, on the
// clock now.
func New(store engine.PollStore, cfg Config, now func() time.Time, log *slog.Logger, pollers ...engine.Poller) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.withDefaults()
	s := &Service{store: store, cfg: cfg, now: now, log: log, pollers: map[string]engine.Poller{}, limits: map[string]*rate.Limiter{},
		Jitter: rand.Float64, orders: map[int64]*attempts{}, blocked: map[string]time.Time{}, counts: map[[2]string]int{},
		running: map[string]bool{}}
	for _, p := range pollers {
		s.pollers[p.Provider()] = p
		s.limits[p.Provider()] = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	return s
}

// Pollable lists the providers that can be asked, sorted.
func (s *Service) Pollable() []string {
	out := make([]string, 0, len(s.pollers))
	for p := range s.pollers {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Stats is what polling did since the service started.
func (s *Service) Stats() engine.PollStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := engine.PollStats{Pollable: s.Pollable(), Unpollable: slices.Sorted(slices.Values(s.cfg.Unpollable))}
	for k, n := range s.counts {
		st.Polls = append(st.Polls, engine.PollCount{Provider: k[0], Result: k[1], Count: n})
	}
	st.GaveUp = s.gaveUp
	st.Sort()
	return st
}

// Outcome is what one poll did.
type Outcome struct {
	OrderID  string `json:"order_id"`
	Provider string `json:"provider"`
	// Result is a Result* constant or an engine.PollError reason.
	Result string `json:"result"`
	// Status is the provider's answer in its own words.
	Status string `json:"provider_status,omitempty"`
	// Event is what storing the answer's fact did; nil when none was stored.
	Event *engine.IngestResult `json:"event,omitempty"`
	// Error says why the provider gave no usable answer.
	Error string `json:"error,omitempty"`
	// RetryAfter is how long the provider asked to be left alone.
	RetryAfter string `json:"retry_after,omitempty"`
}

// Run polls every provider on its own goroutine every Interval until ctx
// ends, and returns once they have stopped.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, provider := range s.Pollable() {
		wg.Go(func() {
			t := time.NewTicker(s.cfg.Interval)
			defer t.Stop()
			for {
				s.Pass(ctx, provider)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	wg.Wait()
}

// Tick runs one pass for every provider, one after the other.
func (s *Service) Tick(ctx context.Context) {
	for _, p := range s.Pollable() {
		s.Pass(ctx, p)
	}
}

// Pass asks provider about each of its candidates that is due. A pass
// still running when the next is due is not doubled.
func (s *Service) Pass(ctx context.Context, provider string) {
	s.mu.Lock()
	if s.running[provider] {
		s.mu.Unlock()
		return
	}
	s.running[provider] = true
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.running[provider] = false; s.mu.Unlock() }()

	now := s.now()
	s.forget(now.Add(-s.cfg.Window))
	// Page through every candidate, newest first: those backing off or
	// given up on are passed over, never in the way of older ones.
	var before engine.Key
	for {
		orders, err := s.store.PollCandidates(ctx, now.Add(-s.cfg.Window), now.Add(-s.cfg.Grace), before, s.cfg.Limit)
		if err != nil {
			s.log.Warn("cannot read the orders to poll; will retry", slog.String("provider", provider), slog.Any("err", err))
			return
		}
		for _, o := range orders {
			if ctx.Err() != nil {
				return
			}
			if o.Provider != provider || o.State.Final() || !s.due(o) {
				continue
			}
			out := s.ask(ctx, o, true)
			if out.Result == "rate_limited" {
				return // the provider said to wait: the rest waits with it
			}
		}
		if len(orders) < s.cfg.Limit {
			return
		}
		before = engine.PollKey(orders[len(orders)-1])
	}
}

// forget drops the backoff of orders first polled before from: they are
// past the window and no longer read, so memory stays bounded.
func (s *Service) forget(from time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ref, a := range s.orders {
		if a.first.Before(from) {
			delete(s.orders, ref)
		}
	}
}

// due reports whether o's backoff has passed and it has attempts left.
func (s *Service) due(o engine.SweepOrder) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.orders[o.Ref]
	if a == nil {
		return true
	}
	return !a.gaveUp && !s.now().Before(a.next)
}

// PollOrder asks the order's provider now, whatever its backoff, and
// returns what the poll did. Returns ENOTFOUND for an unknown order,
// EINVALID when its provider cannot be polled, and EPROVIDER with the
// outcome when the provider gave no usable answer.
func (s *Service) PollOrder(ctx context.Context, orderID string) (Outcome, error) {
	o, err := s.store.Order(ctx, orderID)
	if err != nil {
		return Outcome{}, err
	}
	if _, ok := s.pollers[o.Provider]; !ok {
		return Outcome{}, s.cannotPoll(o.Provider)
	}
	so := engine.SweepOrder{Ref: o.Ref, OrderID: o.OrderID, Provider: o.Provider, CheckoutID: o.CheckoutID, State: o.State,
		StateSince: o.StateSince, Redirect: o.Redirect}
	for _, a := range o.Anomalies {
		if a.Status == engine.StatusOpen {
			so.Open = append(so.Open, a.Kind)
		}
	}
	out := s.ask(ctx, so, false)
	if out.Error != "" {
		return out, engine.Errorf(engine.EPROVIDER, "%s", out.Error)
	}
	return out, nil
}

func (s *Service) cannotPoll(provider string) error {
	if slices.Contains(s.cfg.Unpollable, provider) || provider == "tokenz" || provider == "tweed" {
		return engine.Errorf(engine.EINVALID, "%s documents no API to ask about a checkout, so its orders cannot be polled", provider)
	}
	return engine.Errorf(engine.EINVALID, "polling %s is off: set its API credentials (ORDERSTATE_%s_API_KEY) to turn it on",
		provider, upper(provider))
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// ask makes one call about o, stores what it establishes, and keeps o's
// backoff. A scheduled ask (sched) respects the provider's Retry-After
// without calling; an asked-for one waits for the rate limiter as well.
func (s *Service) ask(ctx context.Context, o engine.SweepOrder, sched bool) Outcome {
	out := Outcome{OrderID: o.OrderID, Provider: o.Provider}
	s.mu.Lock()
	until := s.blocked[o.Provider]
	s.mu.Unlock()
	if wait := until.Sub(s.now()); wait > 0 {
		out.Result, out.RetryAfter = "rate_limited", wait.Round(time.Second).String()
		out.Error = fmt.Sprintf("%s asked to be left alone for %s more (Retry-After)", o.Provider, out.RetryAfter)
		return out
	}
	if err := s.limits[o.Provider].Wait(ctx); err != nil {
		out.Result, out.Error = "error", "no call made: "+err.Error()
		return out
	}
	answer, err := s.pollers[o.Provider].Poll(ctx, o.CheckoutID)
	if err != nil {
		var pe *engine.PollError
		if !errors.As(err, &pe) {
			pe = &engine.PollError{Reason: "error", Message: err.Error()}
		}
		out.Result, out.Error = pe.Reason, pe.Message
		if pe.RetryAfter > 0 || pe.Status == http.StatusTooManyRequests {
			wait := max(pe.RetryAfter, s.cfg.BaseBackoff)
			s.mu.Lock()
			s.blocked[o.Provider] = s.now().Add(wait)
			s.mu.Unlock()
			out.RetryAfter = wait.String()
		}
		s.count(o.Provider, out.Result)
		s.log.Warn("poll failed", slog.String("provider", o.Provider), slog.String("order_id", o.OrderID),
			slog.String("checkout_id", o.CheckoutID), slog.String("reason", pe.Reason), slog.String("err", pe.Message))
		s.unfruitful(ctx, o, pe.Message, sched)
		return out
	}
	out.Status = answer.Status
	if answer.Event == nil {
		out.Result = ResultUnchanged
		s.count(o.Provider, out.Result)
		s.unfruitful(ctx, o, fmt.Sprintf("%s still answers %s", o.Provider, answer.Status), sched)
		return out
	}
	ev := *answer.Event
	ev.Provider = o.Provider
	res, err := s.store.Ingest(ctx, ev, &engine.Request{Header: http.Header{"Content-Type": {"application/json"}}, Body: answer.Raw})
	if err != nil {
		out.Result, out.Error = ResultStoreError, "the answer could not be stored: "+err.Error()
		s.count(o.Provider, out.Result)
		s.log.Warn("cannot store a poll's answer; will ask again", slog.String("provider", o.Provider),
			slog.String("order_id", o.OrderID), slog.Any("err", err))
		return out
	}
	out.Event = &res
	switch {
	case res.Result == sm.Conflict:
		out.Result = ResultConflict
	case res.Result == sm.Applied && res.State.Final() && !o.State.Final():
		out.Result = ResultRecovered
	case res.Result == sm.Applied && res.State != o.State:
		out.Result = ResultChanged
	default:
		out.Result = ResultUnchanged
	}
	s.count(o.Provider, out.Result)
	s.log.Info("poll answered", slog.String("provider", o.Provider), slog.String("order_id", o.OrderID),
		slog.String("status", answer.Status), slog.String("result", out.Result), slog.String("state", string(res.State)))
	if res.State.Final() {
		s.mu.Lock()
		delete(s.orders, o.Ref)
		s.mu.Unlock()
		return out
	}
	s.unfruitful(ctx, o, fmt.Sprintf("%s answers %s", o.Provider, answer.Status), sched)
	return out
}

func (s *Service) count(provider, result string) {
	s.mu.Lock()
	s.counts[[2]string{provider, result}]++
	s.mu.Unlock()
	if s.cfg.OnPoll != nil {
		s.cfg.OnPoll(provider, result)
	}
}

// unfruitful records a poll of o that did not settle it: the next is due
// after a backoff that doubles with each attempt, with jitter; after
// MaxAttempts the order is left alone, and its open anomalies say so.
// A poll someone asked for counts, but never gives up by itself.
func (s *Service) unfruitful(ctx context.Context, o engine.SweepOrder, last string, sched bool) {
	now := s.now()
	s.mu.Lock()
	a := s.orders[o.Ref]
	if a == nil {
		a = &attempts{first: now}
		s.orders[o.Ref] = a
	}
	a.n++
	a.last = last
	a.next = now.Add(s.Backoff(a.n))
	if until := s.blocked[o.Provider]; a.next.Before(until) {
		a.next = until
	}
	giveUp := sched && a.n >= s.cfg.MaxAttempts && !a.gaveUp
	if giveUp {
		a.gaveUp = true
	}
	n, first := a.n, a.first
	s.mu.Unlock()
	if !giveUp {
		return
	}
	note := fmt.Sprintf("Polling %s gave up after %d attempts over %s; the last: %s. The anomaly stays open: check the order in %s's dashboard.",
		o.Provider, n, now.Sub(first).Round(time.Second), last, o.Provider)
	s.log.Warn("polling gave up on an order; its anomalies stay open", slog.String("provider", o.Provider),
		slog.String("order_id", o.OrderID), slog.Int("attempts", n), slog.String("last", last))
	s.noteOpen(ctx, o, note)
	s.mu.Lock()
	s.gaveUp++
	s.mu.Unlock()
}

// noteOpen adds note to o's open missing_webhook and stuck anomalies.
func (s *Service) noteOpen(ctx context.Context, o engine.SweepOrder, note string) {
	found, err := s.store.Anomalies(ctx, engine.AnomalyFilter{OrderRef: o.Ref, Status: engine.StatusOpen})
	if err != nil {
		s.log.Warn("cannot note that polling gave up", slog.String("order_id", o.OrderID), slog.Any("err", err))
		return
	}
	for _, a := range found {
		if a.Kind != engine.AnomalyMissingWebhook && a.Kind != engine.AnomalyStuck {
			continue
		}
		if err := s.store.NoteAnomaly(ctx, a.ID, note); err != nil {
			s.log.Warn("cannot note that polling gave up", slog.String("order_id", o.OrderID), slog.Any("err", err))
		}
	}
}

// Backoff is the wait after an order's nth unfruitful poll:
// BaseBackoff·2^(n-1), capped at MaxBackoff, then scaled by a jitter in
// [0.5, 1.5) so that orders flagged together do not all come due together.
func (s *Service) Backoff(n int) time.Duration {
	d := s.cfg.BaseBackoff
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	return time.Duration(float64(d) * (0.5 + s.Jitter()))
}
