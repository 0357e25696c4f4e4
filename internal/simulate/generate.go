package simulate

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	sm "github.com/orderstate/orderstate/statemachine"
)

// Generator makes the orders of a day.
type Generator struct {
	cfg    Config
	names  []string
	cumMix []float64
	faults Faults
}

// NewGenerator returns a generator for cfg, defaults filled in.
func NewGenerator(cfg Config) *Generator {
	if cfg.Day.IsZero() {
		cfg.Day = DefaultDay
	}
	if cfg.DayLength <= 0 {
		cfg.DayLength = 24 * time.Hour
	}
	if cfg.Orders <= 0 {
		cfg.Orders = 1
	}
	if cfg.Faults == nil {
		cfg.Faults = DefaultFaults()
	}
	if cfg.IDPrefix == "" {
		cfg.IDPrefix = "SO-"
	}
	mix := cfg.Mix
	if mix == nil {
		mix = DefaultMix
	}
	g := &Generator{cfg: cfg, faults: cfg.Faults}
	total := 0.0
	for _, p := range ProviderNames {
		if w := mix[p]; w > 0 {
			total += w
			g.names = append(g.names, p)
			g.cumMix = append(g.cumMix, total)
		}
	}
	for i := range g.cumMix {
		g.cumMix[i] /= total
	}
	return g
}

// Config is the configuration in effect.
func (g *Generator) Config() Config { return g.cfg }

// Orders generates every order of the day.
func (g *Generator) Orders() []*Order {
	out := make([]*Order, g.cfg.Orders)
	for i := range out {
		out[i] = g.Order(i)
	}
	return out
}

// Order generates order i. It depends only on the seed and i.
func (g *Generator) Order(i int) *Order {
	r := rand.New(rand.NewPCG(g.cfg.Seed, uint64(i)))
	s := &story{g: g, r: r, o: &Order{Index: i, ID: fmt.Sprintf("%s%06d", g.cfg.IDPrefix, i+1)}}
	if n := g.cfg.Filler; n > 0 {
		// From a stream of its own, so that the order's other draws are
		// the same as without filler.
		fr := rand.New(rand.NewPCG(g.cfg.Seed, uint64(i)|1<<63))
		s.note = filler(n*3/4 + fr.IntN(n/2+1))
	}
	slot := g.cfg.DayLength / time.Duration(g.cfg.Orders)
	s.t0 = g.cfg.Day.Add(time.Duration(i)*slot + time.Duration(r.Int64N(int64(max(slot, time.Millisecond)))))
	s.o.Provider = g.pickProvider(r.Float64())
	s.setup()
	// From a stream of its own, so that the other orders' draws are the
	// same whether or not the fault is on.
	s.unsentDraw = rand.New(rand.NewPCG(g.cfg.Seed, uint64(i)|1<<62)).Float64()
	s.tell()
	s.deliver()
	s.o.Want = ExpectPolled(s.o.Deliveries, s.o.Provider, s.o.Polled)
	return s.o
}

func (g *Generator) pickProvider(x float64) string {
	for i, c := range g.cumMix {
		if x < c {
			return g.names[i]
		}
	}
	return g.names[len(g.names)-1]
}

// story is one order being made up.
type story struct {
	g *Generator
	r *rand.Rand
	o *Order

	t0     time.Time
	fig    figures
	events []*pev

	redirect   string
	redirectAt time.Time

	// checkout is the provider's id of the checkout the events are about:
	// the one the shop registered, unless the customer paid through
	// another (FaultSecondCheckout).
	checkout string

	// Provider details the bodies share.
	description    string
	card           yocoCard
	paymentID      string // Yoco p_
	payin          string // Tazapay pay_
	paidAttempt    string // Tazapay pat_ of the attempt that succeeded
	txRef          string
	expiresAt      time.Time
	quantity       int
	paymentCreated time.Time
	requestID      string
	txHash         string
	tweedDelivery  bool
	// note is the filler every body carries (Config.Filler); "" for none.
	note string
	// unsentDraw decides FaultUnsent.
	unsentDraw float64
}

func (s *story) chance(p float64) bool { return s.r.Float64() < p }

// between returns a duration uniformly in [lo, hi).
func (s *story) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.r.Int64N(int64(hi-lo)))
}

func (s *story) fault(name string) bool {
	return s.chance(s.g.faults[name])
}

func (s *story) injected(name string) { s.o.Faults = append(s.o.Faults, name) }

var currencies = map[string][]string{
	Tokenz:  {"TWD"},
	Yoco:    {"ZAR"},
	Tazapay: {"USD", "SGD"},
	Tweed:   {"USD", "EUR"},
}

// setup picks what the shop registers.
func (s *story) setup() {
	o, r := s.o, s.r
	cs := currencies[o.Provider]
	o.Currency = cs[r.IntN(len(cs))]
	o.Amount = int64(500+r.IntN(40000)) * 10
	o.Mode = "live"
	if s.chance(0.03) {
		o.Mode = "test"
	}
	s.fig = figures{amount: o.Amount, currency: o.Currency, mode: o.Mode}
	switch o.Provider {
	case Tokenz:
		o.CheckoutID = "order_" + token(r, 10, base62)
		s.description = fmt.Sprintf("%d x Oolong 150g", 1+r.IntN(4))
	case Yoco:
		o.CheckoutID = "ch_" + token(r, 12, base62)
		s.paymentID = "p_" + token(r, 10, base62)
		s.card = yocoCard{ExpiryMonth: 1 + r.IntN(12), ExpiryYear: 27 + r.IntN(5),
			MaskedCard: "************" + fmt.Sprintf("%04d", r.IntN(10000)), Scheme: []string{"visa", "mastercard"}[r.IntN(2)]}
	case Tazapay:
		o.CheckoutID = "chk_" + token(r, 20, lower36)
		s.payin = "pay_" + token(r, 20, lower36)
		s.txRef = "TR" + token(r, 15, digits)
		// A shop that kept the payin from Tazapay's create-checkout answer
		// registers it, and payment attempts, which name only the payin,
		// then find the order; half do. By index, so that the rest of the
		// day's draws stay as they were.
		if o.Index%2 == 0 {
			o.OtherIDs = []string{s.payin}
		}
	case Tweed:
		o.CheckoutID = uuid(r)
		s.quantity = 1 + r.IntN(3)
		s.requestID = "req_" + token(r, 6, lower36)
		s.txHash = "0x" + token(r, 64, hexDigits)
		s.tweedDelivery = s.chance(0.7)
	}
}

// tell makes up the order's story: its flow, the provider events of that
// flow, and the faults that change what the provider says.
func (s *story) tell() {
	o := s.o
	// Faults that decide the flow come first; a provider that cannot
	// produce one never draws it.
	flow := ""
	switch o.Provider {
	case Tazapay:
		if s.fault(FaultPaidAfterExpiry) {
			flow = "paid_after_expiry"
			s.injected(FaultPaidAfterExpiry)
		}
	case Tweed:
		if s.fault(FaultFailedAfterDone) {
			flow = "failed_after_done"
			s.injected(FaultFailedAfterDone)
		} else if s.fault(FaultFailedAfterTx) {
			flow = "failed_after_tx"
			s.injected(FaultFailedAfterTx)
		}
	}
	unsent := false
	if flow == "" && (o.Provider == Tazapay || o.Provider == Yoco) && s.unsentDraw < s.g.faults[FaultUnsent] {
		flow, unsent = "paid", true
		s.injected(FaultUnsent)
	}
	missing := false
	if flow == "" && s.fault(FaultMissing) {
		flow, missing = "paid", true
		s.injected(FaultMissing)
	}
	if flow == "" {
		flow = s.pickFlow()
	}
	o.Flow = flow

	captures := flow != "abandoned" && flow != "expired" && flow != "failed" && flow != "slow"
	if captures && s.fault(FaultAmount) {
		delta := max(o.Amount/20, 10)
		if s.chance(0.5) {
			delta = -delta
		}
		s.fig.amount = o.Amount + delta
		s.injected(FaultAmount)
	}
	if captures && s.fault(FaultCurrency) {
		s.fig.currency = otherCurrency(o.Currency)
		s.injected(FaultCurrency)
	}
	s.checkout = o.CheckoutID
	if (o.Provider == Tazapay || o.Provider == Tweed) && captures && !unsent && s.fault(FaultSecondCheckout) {
		// The customer paid through a checkout the shop never
		// registered; its events name the order by the shop's reference.
		if o.Provider == Tazapay {
			s.checkout, s.payin = "chk_"+token(s.r, 20, lower36), "pay_"+token(s.r, 20, lower36)
		} else {
			s.checkout = uuid(s.r)
		}
		s.injected(FaultSecondCheckout)
	}
	if o.Provider != Tazapay && flow != "abandoned" && s.fault(FaultMode) {
		s.fig.mode = map[string]string{"live": "test", "test": "live"}[o.Mode]
		s.injected(FaultMode)
	}

	switch o.Provider {
	case Tokenz:
		s.tokenz(flow)
	case Yoco:
		s.yoco(flow)
	case Tazapay:
		s.tazapay(flow)
	case Tweed:
		s.tweed(flow)
	}

	if missing || unsent {
		s.redirect = "success"
		for _, e := range s.events {
			e.dropped = e.dropped || e.capture
		}
	}
	if unsent {
		// The provider's API has the payment the webhooks would have
		// brought, as the poller maps it.
		p := &Event{Type: "payment_status=paid status=active", Kind: sm.KindPaid, CheckoutID: o.CheckoutID,
			DedupeKey: "poll:" + o.CheckoutID + ":paid", Amount: s.fig.amount, Currency: s.fig.currency}
		switch o.Provider {
		case Tazapay:
			p.Refs, p.Reference = []string{s.payin}, o.ID
		case Yoco:
			p.Type, p.Refs, p.Mode = "status=completed", []string{s.paymentID}, s.fig.mode
		}
		p.EventID = p.DedupeKey
		o.Polled = p
	}
	if s.fault(FaultRedirect) {
		s.lie(flow)
		s.injected(FaultRedirect)
	}
	sort.SliceStable(s.events, func(i, j int) bool { return s.events[i].at.Before(s.events[j].at) })
}

// flows lists each provider's ordinary outcomes with their weights.
var flows = map[string][]struct {
	name string
	w    float64
}{
	Tokenz:  {{"paid", 0.84}, {"abandoned", 0.16}},
	Yoco:    {{"paid", 0.64}, {"refunded", 0.08}, {"partially_refunded", 0.12}, {"abandoned", 0.16}},
	Tazapay: {{"paid", 0.54}, {"refunded", 0.07}, {"partially_refunded", 0.08}, {"expired", 0.17}, {"slow", 0.05}, {"abandoned", 0.09}},
	Tweed:   {{"paid", 0.68}, {"failed", 0.18}, {"abandoned", 0.14}},
}

func (s *story) pickFlow() string {
	x := s.r.Float64()
	fs := flows[s.o.Provider]
	for _, f := range fs {
		if x < f.w {
			return f.name
		}
		x -= f.w
	}
	return fs[0].name
}

func otherCurrency(c string) string {
	switch c {
	case "USD":
		return "SGD"
	case "SGD", "EUR", "TWD", "ZAR":
		return "USD"
	}
	return "EUR"
}

// add appends a provider event at time at.
func (s *story) add(typ string, kind sm.Kind, at time.Time) *pev {
	e := &pev{typ: typ, kind: kind, at: at}
	switch s.o.Provider {
	case Tokenz:
		e.id = "event_" + token(s.r, 10, upper36)
	case Yoco:
		e.id = "evt_" + token(s.r, 11, base62)
		e.msgID = "msg_" + token(s.r, 24, base62)
	case Tazapay:
		e.id = "evt_" + token(s.r, 20, lower36)
	case Tweed:
		if s.tweedDelivery {
			e.msgID = uuid(s.r)
		}
	}
	s.events = append(s.events, e)
	return e
}

// returns sets the customer's redirect back, when they came back at all.
func (s *story) returns(outcome string, at time.Time, likely float64) {
	if s.chance(likely) {
		s.redirect, s.redirectAt = outcome, at
	}
}

func (s *story) tokenz(flow string) {
	s.add("order.created", sm.KindCheckoutCreated, s.t0.Add(s.between(200*time.Millisecond, 3*time.Second)))
	if flow == "abandoned" {
		s.returns("cancel", s.t0.Add(s.between(time.Minute, 10*time.Minute)), 0.4)
		return
	}
	paid := s.add("order.succeeded", sm.KindPaid, s.t0.Add(s.between(40*time.Second, 6*time.Minute)))
	paid.capture = true
	s.returns("success", paid.at.Add(s.between(500*time.Millisecond, 15*time.Second)), 0.9)
}

func (s *story) yoco(flow string) {
	if flow == "abandoned" {
		// Yoco sends nothing for a checkout nobody paid.
		s.returns("cancel", s.t0.Add(s.between(time.Minute, 10*time.Minute)), 0.4)
		return
	}
	paid := s.add("payment.succeeded", sm.KindPaid, s.t0.Add(s.between(30*time.Second, 5*time.Minute)))
	paid.capture = true
	s.returns("success", paid.at.Add(s.between(500*time.Millisecond, 15*time.Second)), 0.9)
	at := paid.at.Add(s.between(time.Hour, 8*time.Hour))
	switch flow {
	case "refunded":
		s.yocoRefund("refund.succeeded", sm.KindRefunded, at, s.fig.amount)
	case "partially_refunded":
		part := s.fig.amount * int64(20+s.r.IntN(30)) / 100
		if s.chance(0.2) {
			s.yocoRefund("refund.failed", sm.KindInformational, at, part)
			at = at.Add(s.between(10*time.Minute, time.Hour))
		}
		s.yocoRefund("refund.succeeded", sm.KindRefunded, at, part)
		if s.chance(0.3) {
			s.yocoRefund("refund.succeeded", sm.KindRefunded, at.Add(s.between(time.Hour, 3*time.Hour)), part/2)
		}
	}
}

func (s *story) yocoRefund(typ string, kind sm.Kind, at time.Time, amount int64) {
	e := s.add(typ, kind, at)
	e.refundID, e.amount = "rfd_"+token(s.r, 10, base62), amount
}

func (s *story) tazapay(flow string) {
	const expiry = time.Hour
	s.expiresAt = s.t0.Add(expiry)
	if s.chance(0.3) || flow == "abandoned" && s.chance(0.5) {
		// checkout.created is off by default at Tazapay.
		c := s.add("checkout.created", sm.KindCheckoutCreated, s.t0.Add(s.between(200*time.Millisecond, 2*time.Second)))
		c.status, c.paymentStatus = "active", "unpaid"
	}
	at := s.t0.Add(s.between(30*time.Second, 4*time.Minute))
	switch flow {
	case "abandoned":
		s.returns("cancel", s.t0.Add(s.between(time.Minute, 10*time.Minute)), 0.4)
		return
	case "slow":
		// A bank transfer: the attempt stays processing past the day.
		a := s.attempt("payment_attempt.created", sm.KindPaymentProcessing, "processing", at)
		s.returns("success", a.at.Add(s.between(5*time.Second, time.Minute)), 0.5)
		return
	case "expired", "paid_after_expiry":
		if s.chance(0.4) {
			a := s.attempt("payment_attempt.created", sm.KindPaymentProcessing, "requires_action", at)
			f := s.add("payment_attempt.failed", sm.KindPaymentAttemptFailed, a.at.Add(s.between(5*time.Second, 40*time.Second)))
			f.attemptID, f.status = a.attemptID, "failed"
		}
		x := s.add("checkout.expired", sm.KindExpired, s.expiresAt.Add(s.between(0, 2*time.Second)))
		x.status, x.paymentStatus = "expired", "unpaid"
		if flow == "expired" {
			s.returns("cancel", s.t0.Add(s.between(time.Minute, 20*time.Minute)), 0.3)
			return
		}
		// The customer paid on a page still open past its expiry.
		late := s.attempt("payment_attempt.created", sm.KindPaymentProcessing, "requires_action", s.expiresAt.Add(-s.between(5*time.Second, 30*time.Second)))
		s.paidAttempt = late.attemptID
		ok := s.add("payment_attempt.succeeded", sm.KindPaid, x.at.Add(s.between(5*time.Second, 2*time.Minute)))
		ok.attemptID, ok.status, ok.capture = late.attemptID, "succeeded", true
		p := s.add("checkout.paid", sm.KindPaid, ok.at.Add(s.between(50*time.Millisecond, 500*time.Millisecond)))
		p.status, p.paymentStatus, p.capture = "expired", "paid", true
		s.returns("success", p.at.Add(s.between(500*time.Millisecond, 15*time.Second)), 0.6)
		return
	}
	// Attempts fail before one succeeds.
	fails := 0
	if x := s.r.Float64(); x < 0.1 {
		fails = 2
	} else if x < 0.3 {
		fails = 1
	}
	for range fails {
		a := s.attempt("payment_attempt.created", sm.KindPaymentProcessing, "requires_action", at)
		f := s.add("payment_attempt.failed", sm.KindPaymentAttemptFailed, a.at.Add(s.between(5*time.Second, 40*time.Second)))
		f.attemptID, f.status = a.attemptID, "failed"
		at = f.at.Add(s.between(10*time.Second, time.Minute))
	}
	a := s.attempt("payment_attempt.created", sm.KindPaymentProcessing, "requires_action", at)
	s.paidAttempt = a.attemptID
	ok := s.add("payment_attempt.succeeded", sm.KindPaid, a.at.Add(s.between(3*time.Second, 30*time.Second)))
	ok.attemptID, ok.status, ok.capture = a.attemptID, "succeeded", true
	p := s.add("checkout.paid", sm.KindPaid, ok.at.Add(s.between(50*time.Millisecond, 500*time.Millisecond)))
	p.status, p.paymentStatus, p.capture = "active", "paid", true
	s.returns("success", p.at.Add(s.between(500*time.Millisecond, 15*time.Second)), 0.9)
	if s.chance(0.4) {
		inv := s.add("checkout.tax_invoice_generated", sm.KindInformational, p.at.Add(s.between(30*time.Second, 5*time.Minute)))
		inv.status, inv.paymentStatus, inv.capture = "active", "paid", true
	}
	if s.chance(0.1) {
		// Tazapay's own sample: a paid checkout that later expires still
		// says payment_status paid, which makes it a restatement of the
		// payment, not an expiry.
		x := s.add("checkout.expired", sm.KindPaid, s.expiresAt.Add(s.between(0, 2*time.Second)))
		x.status, x.paymentStatus, x.capture = "expired", "paid", true
	}
	if flow != "refunded" && flow != "partially_refunded" {
		return
	}
	amount := s.fig.amount
	if flow == "partially_refunded" {
		amount = amount * int64(20+s.r.IntN(40)) / 100
	}
	rat := p.at.Add(s.between(time.Hour, 6*time.Hour))
	rfd := "rfd_" + token(s.r, 20, lower36)
	pend := s.add("refund.pending", sm.KindInformational, rat)
	pend.refundID, pend.amount, pend.status = rfd, amount, "pending"
	done := s.add("refund.succeeded", sm.KindRefunded, rat.Add(s.between(time.Minute, 30*time.Minute)))
	done.refundID, done.amount, done.status = rfd, amount, "succeeded"
}

// attempt adds a Tazapay payment attempt event with a new attempt id.
func (s *story) attempt(typ string, kind sm.Kind, status string, at time.Time) *pev {
	a := s.add(typ, kind, at)
	a.attemptID, a.status = "pat_"+token(s.r, 20, lower36), status
	return a
}

func (s *story) tweed(flow string) {
	s.add("CREATED", sm.KindCheckoutCreated, s.t0.Add(s.between(200*time.Millisecond, 2*time.Second)))
	if flow == "abandoned" {
		s.returns("cancel", s.t0.Add(s.between(time.Minute, 10*time.Minute)), 0.4)
		return
	}
	sub := s.add("PERFORM_CHECKOUT_SUBMITTED", sm.KindPaymentProcessing, s.t0.Add(s.between(20*time.Second, 3*time.Minute)))
	s.paymentCreated = sub.at.Add(time.Second)
	pay := func(typ string, kind sm.Kind, status string, at time.Time) *pev {
		e := s.add(typ, kind, at)
		e.payment, e.tweedStatus = true, status
		return e
	}
	if flow == "failed" {
		at := sub.at.Add(s.between(10*time.Second, 2*time.Minute))
		if s.chance(0.5) {
			b := pay("TRANSACTION_BROADCAST", sm.KindPaymentProcessing, "processing", at)
			at = b.at.Add(s.between(20*time.Second, 3*time.Minute))
		}
		pay("FAILED", sm.KindFailed, "requires_payment_method", at)
		s.returns("failure", at.Add(s.between(2*time.Second, 20*time.Second)), 0.7)
		return
	}
	b := pay("TRANSACTION_BROADCAST", sm.KindPaymentProcessing, "processing", sub.at.Add(s.between(5*time.Second, 30*time.Second)))
	// The customer is sent back once the transfer is broadcast, before
	// the chain confirms it.
	s.returns("success", b.at.Add(s.between(2*time.Second, 20*time.Second)), 0.9)
	at := b.at.Add(s.between(20*time.Second, 3*time.Minute))
	if flow == "failed_after_tx" && s.chance(0.5) {
		pay("FAILED_AFTER_TX_COMPLETED", sm.KindFailedAfterSettlement, "succeeded", at)
		return
	}
	done := pay("DONE", sm.KindPaid, "succeeded", at)
	done.capture = true
	switch flow {
	case "failed_after_done":
		pay("FAILED", sm.KindFailed, "failed", done.at.Add(s.between(time.Minute, 30*time.Minute)))
	case "failed_after_tx":
		pay("FAILED_AFTER_TX_COMPLETED", sm.KindFailedAfterSettlement, "succeeded", done.at.Add(s.between(time.Minute, 30*time.Minute)))
	}
}

// lie makes the customer's redirect contradict what the provider says: back
// with cancel from a payment that went through, or with success from one
// that failed, expired or was never made.
func (s *story) lie(flow string) {
	at := s.redirectAt
	if at.IsZero() {
		at = s.t0.Add(s.between(time.Minute, 10*time.Minute))
	}
	switch flow {
	case "abandoned", "expired", "failed", "slow":
		s.redirect = "success"
	default:
		s.redirect = "cancel"
	}
	s.redirectAt = at
}

// retrySchedule is when each provider redelivers after the first attempt.
// Yoco and Tazapay document theirs; Tokenz and Tweed document none, so
// they are assumed to back off like Stripe and GitHub do.
func retrySchedule(provider string, n int, r *rand.Rand) []time.Duration {
	var base []time.Duration
	switch provider {
	case Yoco:
		base = []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour}
	case Tazapay:
		// 1s, then powers of two with jitter.
		base = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}
		for i := 1; i < len(base); i++ {
			base[i] += time.Duration(r.Int64N(int64(base[i] / 2)))
		}
	case Tokenz:
		base = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour}
	case Tweed:
		base = []time.Duration{10 * time.Second, time.Minute, 10 * time.Minute, time.Hour}
	}
	out := make([]time.Duration, n)
	var sum time.Duration
	for i := range out {
		sum += base[min(i, len(base)-1)]
		out[i] = sum
	}
	return out
}

// deliver turns the story into the sequence of requests that reach
// orderstate, layering on the delivery faults.
func (s *story) deliver() {
	o, r := s.o, s.r
	live := func() []*pev {
		var out []*pev
		for _, e := range s.events {
			if !e.dropped {
				out = append(out, e)
			}
		}
		return out
	}
	if evs := live(); len(evs) > 0 && s.fault(FaultDrop) {
		evs[r.IntN(len(evs))].dropped = true
		s.injected(FaultDrop)
	}
	if evs := live(); len(evs) > 0 && s.fault(FaultRetry) {
		for range 1 + r.IntN(min(2, len(evs))) {
			e := evs[r.IntN(len(evs))]
			e.retries = retrySchedule(o.Provider, 1+r.IntN(3), r)
			e.lostFirst = s.chance(0.25)
		}
		s.injected(FaultRetry)
	}
	shuffled := s.fault(FaultShuffle) && len(live()) > 1
	if shuffled {
		s.injected(FaultShuffle)
	}
	for _, e := range s.events {
		e.delay = s.between(100*time.Millisecond, 5*time.Second)
		if shuffled {
			e.delay += time.Duration(r.Int64N(int64(30 * time.Minute)))
		}
	}

	fields := map[string]any{"provider": o.Provider, "checkout_id": o.CheckoutID, "amount": o.Amount,
		"currency": o.Currency, "mode": o.Mode}
	if len(o.OtherIDs) > 0 {
		fields["other_ids"] = o.OtherIDs
	}
	reg := mustJSON(fields)
	ds := []Delivery{{Action: Register, Provider: o.Provider, OrderID: o.ID, At: s.t0, Body: reg}}
	for _, e := range s.events {
		if e.dropped {
			continue
		}
		body, ev := s.render(e)
		first := e.at.Add(e.delay)
		if !e.lostFirst || len(e.retries) == 0 {
			ds = append(ds, Delivery{Action: Webhook, Provider: o.Provider, OrderID: o.ID, At: first, Body: body, Event: ev, msgID: e.msgID})
		}
		for k, d := range e.retries {
			ds = append(ds, Delivery{Action: Webhook, Provider: o.Provider, OrderID: o.ID, At: first.Add(d), Body: body,
				Event: ev, Attempt: k + 1, msgID: e.msgID})
		}
	}
	if s.redirect != "" {
		ds = append(ds, Delivery{Action: Redirect, Provider: o.Provider, OrderID: o.ID, At: s.redirectAt,
			Body: mustJSON(map[string]string{"outcome": s.redirect}), Outcome: s.redirect})
	}
	if s.fault(FaultForged) {
		ds = append(ds, s.forge())
		s.injected(FaultForged)
	}
	// The registration goes first whatever the delays: the shop registers
	// the order before it sends the customer to pay.
	sort.SliceStable(ds[1:], func(i, j int) bool { return ds[1+i].At.Before(ds[1+j].At) })
	o.Deliveries = ds
}

// forge makes a webhook that would change the order if it were believed:
// a payment for it, or a failure of a paid Tweed checkout, signed with the
// wrong secret.
func (s *story) forge() Delivery {
	at := s.t0.Add(s.between(time.Minute, 20*time.Minute))
	var e *pev
	switch s.o.Provider {
	case Tokenz:
		e = &pev{typ: "order.succeeded", kind: sm.KindPaid, id: "event_" + token(s.r, 10, upper36)}
	case Yoco:
		e = &pev{typ: "payment.succeeded", kind: sm.KindPaid, id: "evt_" + token(s.r, 11, base62), msgID: "msg_" + token(s.r, 24, base62)}
	case Tazapay:
		e = &pev{typ: "checkout.paid", kind: sm.KindPaid, id: "evt_" + token(s.r, 20, lower36), status: "active", paymentStatus: "paid"}
	case Tweed:
		if s.paymentCreated.IsZero() {
			s.paymentCreated = at
		}
		e = &pev{typ: "FAILED", kind: sm.KindFailed, payment: true, tweedStatus: "failed", msgID: uuid(s.r)}
	}
	e.at = at
	body, ev := s.render(e)
	return Delivery{Action: Webhook, Provider: s.o.Provider, OrderID: s.o.ID, At: at, Body: body, Event: ev, Forged: true, msgID: e.msgID}
}
