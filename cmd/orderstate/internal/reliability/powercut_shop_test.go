package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// shop is the shop's side of the traffic, and a person at its console: it
// registers orders whose webhooks the providers send (now and then for
// another amount than the checkout's, which the rules flag), reports each
// customer's redirect (mostly success, before or after the payment, which
// the sweep flags missing a second later), acknowledges open anomalies,
// and reads the anomaly list and the reports. It keeps what was answered,
// and checks after each cut that the store still holds it.
type shop struct {
	prefix string

	mu      sync.Mutex
	regs    []*registration
	byOrder map[*order]*registration
	acks    []*anomalyAck
	files   map[string]bool // report files read after a cut
	found   map[any]bool    // registrations and acknowledgements found lost, counted once

	reportsShown, filesChecked int
	lost                       int // acknowledged writes and report files found lost or damaged
}

// registration is one order the shop registered, and its redirect.
type registration struct {
	o        *order
	id       string
	amount   int64
	currency string
	tried    bool
	ackedIn  int // the life in which it was first answered 2xx; 0: not yet

	outcome    string // of the redirect, once sent
	redirectIn int    // the life in which the redirect was first answered 2xx; 0: not yet
}

// anomalyAck is an acknowledgement answered 2xx.
type anomalyAck struct {
	id                 int64
	note               string
	provider, checkout string
	in                 int // its life
}

// reportJSON is a stored report as GET /v1/reports lists it.
type reportJSON struct {
	ID          int64     `json:"id"`
	CreatedAt   time.Time `json:"created_at"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
}

func newShop(prefix string) *shop {
	return &shop{prefix: prefix, byOrder: map[*order]*registration{}, files: map[string]bool{}, found: map[any]bool{}}
}

// run starts the shop's two workers for one life: the registrar
// (registrations and redirects) and the clerk (anomalies and reports).
func (s *shop) run(ctx context.Context, r *powerRun, lf *life, wg *sync.WaitGroup, seed uint64) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.registrar(ctx, r, lf, rand.New(rand.NewPCG(seed, 11)))
	}()
	go func() {
		defer wg.Done()
		s.clerk(ctx, r, lf, rand.New(rand.NewPCG(seed, 13)))
	}()
}

// send makes one request of the shop's; ok is false for no answer at all
// and for an answer but 2xx received after the power went (whatever a
// dying store says): the shop retries those. A 2xx counts whenever it
// came, as the store answers it only once the write is on the disk; what
// a read showed counts only if it came before the cut.
func send(ctx context.Context, lf *life, method, path string, body any) (status int, answer []byte, ok bool) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			panic(err)
		}
	}
	h := http.Header{"Content-Type": {"application/json"}}
	st, answer, err := lf.p.do(ctx, method, path, b, h)
	if err != nil || lf.cutBegun() && (method == http.MethodGet || st/100 != 2) {
		return 0, nil, false
	}
	return st, answer, true
}

func (s *shop) registrar(ctx context.Context, r *powerRun, lf *life, rng *rand.Rand) {
	// What the last lives sent and never heard back about, first.
	s.mu.Lock()
	var retry []*registration
	for _, g := range s.regs {
		if g.ackedIn == 0 || g.outcome != "" && g.redirectIn == 0 {
			retry = append(retry, g)
		}
	}
	s.mu.Unlock()
	for _, g := range retry {
		if ctx.Err() != nil {
			return
		}
		s.register(ctx, r, lf, g)
		s.redirect(ctx, r, lf, g, "")
	}
	for ctx.Err() == nil {
		lf.ld.waitQuiet(ctx)
		if rng.IntN(5) < 3 {
			if g := s.newRegistration(r.l, rng); g != nil {
				s.register(ctx, r, lf, g)
			}
		} else if g := s.unredirected(rng); g != nil {
			outcome := "success"
			switch rng.IntN(8) {
			case 0:
				outcome = "cancel"
			case 1:
				outcome = "failure"
			}
			s.redirect(ctx, r, lf, g, outcome)
		}
		time.Sleep(time.Duration(5+rng.IntN(10)) * time.Millisecond)
	}
}

// newRegistration registers one of the latest orders not yet registered,
// whose webhooks may have come or not; one in six for another amount.
func (s *shop) newRegistration(l *ledger, rng *rand.Rand) *registration {
	l.mu.Lock()
	latest := l.orders[len(l.orders)-min(64, len(l.orders)):]
	s.mu.Lock()
	defer s.mu.Unlock()
	var free []*order
	for _, o := range latest {
		if s.byOrder[o] == nil {
			free = append(free, o)
		}
	}
	l.mu.Unlock()
	if len(free) == 0 {
		return nil
	}
	o := free[rng.IntN(len(free))]
	g := &registration{o: o, id: fmt.Sprintf("shop_%s%d", s.prefix, len(s.regs)), amount: o.amount, currency: o.currency}
	if rng.IntN(6) == 0 {
		g.amount += 100
	}
	s.regs = append(s.regs, g)
	s.byOrder[o] = g
	return g
}

// unredirected picks a registration answered 2xx whose customer has not
// come back yet.
func (s *shop) unredirected(rng *rand.Rand) *registration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*registration
	for _, g := range s.regs[max(0, len(s.regs)-200):] {
		if g.ackedIn != 0 && g.outcome == "" {
			out = append(out, g)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out[rng.IntN(len(out))]
}

// register sends g (again, if it was sent before and not answered).
func (s *shop) register(ctx context.Context, r *powerRun, lf *life, g *registration) {
	s.mu.Lock()
	if g.ackedIn != 0 {
		s.mu.Unlock()
		return
	}
	g.tried = true
	s.mu.Unlock()
	st, answer, ok := send(ctx, lf, http.MethodPut, "/v1/orders/"+g.id, map[string]any{
		"provider": g.o.provider, "checkout_id": g.o.checkout, "amount": g.amount, "currency": g.currency})
	if !ok || st == http.StatusServiceUnavailable {
		return
	}
	if st != http.StatusOK {
		r.t.Errorf("registration of %s (%s %s): %d %s", g.id, g.o.provider, g.o.checkout, st, answer)
		return
	}
	var v orderJSON
	if err := json.Unmarshal(answer, &v); err != nil {
		r.t.Errorf("registration of %s: %v: %s", g.id, err, answer)
		return
	}
	if d := g.differs(&v); d != "" {
		r.t.Errorf("registration of %s answered with %s", g.id, d)
	}
	s.mu.Lock()
	g.ackedIn = lf.n
	g.o.registered = g.amount
	s.mu.Unlock()
	lf.note(r.sight(g.o, &v), v.Anomalies)
}

// redirect reports g's customer back with outcome, or sends again the
// redirect sent before and not answered when outcome is empty.
func (s *shop) redirect(ctx context.Context, r *powerRun, lf *life, g *registration, outcome string) {
	s.mu.Lock()
	if g.ackedIn == 0 || g.redirectIn != 0 || outcome == "" && g.outcome == "" || outcome != "" && g.outcome != "" {
		s.mu.Unlock()
		return
	}
	if outcome != "" {
		g.outcome = outcome
	}
	outcome = g.outcome
	s.mu.Unlock()
	st, answer, ok := send(ctx, lf, http.MethodPost, "/v1/orders/"+g.id+"/redirect", map[string]string{"outcome": outcome})
	if !ok || st == http.StatusServiceUnavailable {
		return
	}
	if st != http.StatusOK {
		r.t.Errorf("redirect of %s (registered, answered 2xx): %d %s", g.id, st, answer)
		return
	}
	var v orderJSON
	if err := json.Unmarshal(answer, &v); err != nil {
		r.t.Errorf("redirect of %s: %v: %s", g.id, err, answer)
		return
	}
	if v.Redirect == nil || v.Redirect.Outcome != outcome {
		r.t.Errorf("redirect %s of %s answered with redirect %+v", outcome, g.id, v.Redirect)
	}
	s.mu.Lock()
	g.redirectIn = lf.n
	s.mu.Unlock()
	lf.note(r.sight(g.o, &v), v.Anomalies)
}

// differs says how an order's answer differs from the registration.
func (g *registration) differs(v *orderJSON) string {
	want := fmt.Sprintf("%s registered %v %s %s %d %s live", g.id, true, g.o.provider, g.o.checkout, g.amount, g.currency)
	got := fmt.Sprintf("%s registered %v %s %s %d %s %s", v.OrderID, v.Registered, v.Provider, v.CheckoutID, v.Amount, v.Currency, v.Mode)
	if got != want {
		return fmt.Sprintf("%q, want %q", got, want)
	}
	return ""
}

func (s *shop) clerk(ctx context.Context, r *powerRun, lf *life, rng *rand.Rand) {
	for i := 0; ctx.Err() == nil; i++ {
		lf.ld.waitQuiet(ctx)
		// Mostly what needs a person, now and then everything.
		path := "/v1/anomalies?status=open&limit=50"
		if i%3 == 2 {
			path = "/v1/anomalies?limit=50"
		}
		st, answer, ok := send(ctx, lf, http.MethodGet, path, nil)
		if ok && st == http.StatusOK {
			var list struct {
				Anomalies []anomalyJSON `json:"anomalies"`
			}
			if err := json.Unmarshal(answer, &list); err != nil {
				r.t.Errorf("GET %s: %v: %s", path, err, answer)
			}
			lf.mu.Lock()
			lf.seen.noteAnomalies(list.Anomalies)
			lf.mu.Unlock()
			var open []anomalyJSON
			for _, a := range list.Anomalies {
				if a.Status == "open" {
					open = append(open, a)
				}
			}
			if len(open) > 0 && rng.IntN(2) == 0 {
				s.ack(ctx, r, lf, open[rng.IntN(len(open))])
			}
		}
		if i%5 == 4 {
			s.listReports(ctx, r, lf)
		}
		time.Sleep(time.Duration(15+rng.IntN(10)) * time.Millisecond)
	}
}

// ack acknowledges an anomaly shown open, with a note of its own.
func (s *shop) ack(ctx context.Context, r *powerRun, lf *life, a anomalyJSON) {
	s.mu.Lock()
	note := fmt.Sprintf("checked at the provider (%s note %d)", s.prefix, len(s.acks))
	s.mu.Unlock()
	path := fmt.Sprintf("/v1/anomalies/%d/ack", a.ID)
	st, answer, ok := send(ctx, lf, http.MethodPost, path, map[string]string{"note": note})
	if !ok || st == http.StatusServiceUnavailable {
		return
	}
	var got anomalyJSON
	if st == http.StatusOK {
		if err := json.Unmarshal(answer, &got); err != nil {
			r.t.Errorf("POST %s: %v: %s", path, err, answer)
			return
		}
	}
	if st != http.StatusOK || got.Status != "acknowledged" || !strings.Contains(got.Note, note) {
		r.t.Errorf("POST %s of an anomaly listed open: %d %s", path, st, answer)
		return
	}
	s.mu.Lock()
	s.acks = append(s.acks, &anomalyAck{id: a.ID, note: note, provider: got.Provider, checkout: got.CheckoutID, in: lf.n})
	s.mu.Unlock()
	lf.mu.Lock()
	lf.seen.noteAnomalies([]anomalyJSON{got})
	lf.mu.Unlock()
}

// listReports notes the stored reports the list shows.
func (s *shop) listReports(ctx context.Context, r *powerRun, lf *life) {
	st, answer, ok := send(ctx, lf, http.MethodGet, "/v1/reports?limit=20", nil)
	if !ok || st != http.StatusOK {
		return
	}
	var list struct {
		Reports []reportJSON `json:"reports"`
	}
	if err := json.Unmarshal(answer, &list); err != nil {
		r.t.Errorf("GET /v1/reports: %v: %s", err, answer)
		return
	}
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.seen.reports == nil {
		lf.seen.reports = map[int64]reportJSON{}
	}
	for _, rep := range list.Reports {
		lf.seen.reports[rep.ID] = rep
	}
}

// registeredSince lists the orders registered or redirected in life c.
func (s *shop) registeredSince(c int) []*order {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*order
	for _, g := range s.regs {
		if g.tried && (g.ackedIn == 0 || g.ackedIn >= c || g.redirectIn >= c) {
			out = append(out, g.o)
		}
	}
	return out
}

// check asks the restarted serve for the shop's writes life c had
// answered 2xx, and a sample of earlier ones.
func (s *shop) check(r *powerRun, c int, p *proc) {
	s.mu.Lock()
	var regs, older []*registration
	for _, g := range s.regs {
		switch {
		case g.ackedIn == c || g.redirectIn == c:
			regs = append(regs, g)
		case g.ackedIn != 0:
			older = append(older, g)
		}
	}
	var acks, olderAcks []*anomalyAck
	for _, a := range s.acks {
		if a.in == c {
			acks = append(acks, a)
		} else {
			olderAcks = append(olderAcks, a)
		}
	}
	s.mu.Unlock()
	for range min(20, len(older)) {
		regs = append(regs, older[r.sample.IntN(len(older))])
	}
	for range min(20, len(olderAcks)) {
		acks = append(acks, olderAcks[r.sample.IntN(len(olderAcks))])
	}
	s.checkWrites(r, c, p, regs, acks)
}

// checkAll asks for every write answered 2xx.
func (s *shop) checkAll(r *powerRun, p *proc) {
	s.mu.Lock()
	regs, acks := slices.Clone(s.regs), slices.Clone(s.acks)
	s.mu.Unlock()
	s.checkWrites(r, r.cuts, p, regs, acks)
}

// checkWrites checks each registration answered 2xx is there with what it
// said, and its redirect if that was answered 2xx, and each acknowledged
// anomaly is acknowledged, with its note.
func (s *shop) checkWrites(r *powerRun, c int, p *proc, regs []*registration, acks []*anomalyAck) {
	for _, g := range regs {
		if g.ackedIn == 0 || s.found[g] {
			continue
		}
		var lost string
		v, ok := r.getOrderNow(p, "/v1/orders/"+g.id)
		switch {
		case !ok:
			lost = fmt.Sprintf("order %s was registered (%s %s, answered 2xx) and is not there after the restart", g.id, g.o.provider, g.o.checkout)
		case g.differs(v) != "":
			lost = fmt.Sprintf("order %s was registered (answered 2xx) and is %s after the restart", g.id, g.differs(v))
		case g.redirectIn != 0 && (v.Redirect == nil || v.Redirect.Outcome != g.outcome):
			lost = fmt.Sprintf("order %s's redirect %s was answered 2xx and the order shows %+v after the restart", g.id, g.outcome, v.Redirect)
		}
		if lost != "" {
			s.found[g] = true
			r.lose(c, &s.lost, 1, "LOST at cut %d: %s", c, lost)
		}
	}
	for _, a := range acks {
		if s.found[a] {
			continue
		}
		v, _ := r.getOrderNow(p, "/v1/checkouts/"+a.provider+"/"+a.checkout)
		var cur *anomalyJSON
		if v != nil {
			for i := range v.Anomalies {
				if v.Anomalies[i].ID == a.id {
					cur = &v.Anomalies[i]
				}
			}
		}
		if cur == nil || cur.Status != "acknowledged" || !strings.Contains(cur.Note, a.note) {
			s.found[a] = true
			r.lose(c, &s.lost, 1, "LOST at cut %d: anomaly %d (%s %s) was acknowledged with %q (answered 2xx) and is %+v after the restart", c, a.id, a.provider, a.checkout, a.note, cur)
		}
	}
}

// checkReportFiles reads the report files the disk holds after cut c that
// no earlier cut read: each must be whole (its JSON parses), since
// serve writes a file whole or not at all. It keeps their periods, which
// must be stored reports, and returns how many files it read.
func (r *powerRun) checkReportFiles(c int, seen *shown) int {
	s := r.shop
	dir := filepath.Join(r.backing, reportsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return 0
		}
		r.t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || s.files[name] {
			continue // a file being written when the power went, or one read before
		}
		s.files[name] = true
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			r.t.Fatal(err)
		}
		n++
		s.filesChecked++
		var rep struct {
			PeriodEnd time.Time `json:"period_end"`
		}
		switch {
		case len(b) == 0:
			r.lose(c, &s.lost, 1, "LOST at cut %d: report file %s is empty after the cut", c, name)
		case filepath.Ext(name) == ".json":
			if err := json.Unmarshal(b, &rep); err != nil {
				r.lose(c, &s.lost, 1, "LOST at cut %d: report file %s is not whole after the cut (%d bytes): %v", c, name, len(b), err)
			} else {
				seen.files = append(seen.files, rep.PeriodEnd)
			}
		case filepath.Ext(name) == ".html" && !bytes.Contains(b, []byte("</html>")):
			r.lose(c, &s.lost, 1, "LOST at cut %d: report file %s is not whole after the cut (%d bytes, no </html>)", c, name, len(b))
		}
	}
	return n
}

// checkReportsShown checks each report the list showed is still stored
// as listed, and each report file found after the cut is a stored report.
func (r *powerRun) checkReportsShown(c int, p *proc, seen *shown) {
	s := r.shop
	for id, shown := range seen.reports {
		s.reportsShown++
		st, body, err := p.get(fmt.Sprintf("/v1/reports/%d", id))
		if err != nil {
			r.t.Fatal(err)
		}
		var now reportJSON
		if st == http.StatusOK {
			if err := json.Unmarshal(body, &now); err != nil {
				r.t.Fatalf("GET /v1/reports/%d: %v", id, err)
			}
		}
		if st != http.StatusOK || !now.PeriodStart.Equal(shown.PeriodStart) || !now.PeriodEnd.Equal(shown.PeriodEnd) {
			r.lose(c, &r.shownLost, 1, "SHOWN THEN LOST at cut %d: report %d (%s to %s) was listed and is %d %s after the restart",
				c, id, shown.PeriodStart, shown.PeriodEnd, st, body)
		}
	}
	if len(seen.files) == 0 {
		return
	}
	st, body, err := p.get("/v1/reports?limit=100000")
	if err != nil || st != http.StatusOK {
		r.t.Fatalf("GET /v1/reports after the restart: %d %s %v", st, body, err)
	}
	var list struct {
		Reports []reportJSON `json:"reports"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		r.t.Fatal(err)
	}
	for _, end := range seen.files {
		if !slices.ContainsFunc(list.Reports, func(rep reportJSON) bool { return rep.PeriodEnd.Equal(end) }) {
			r.lose(c, &s.lost, 1, "LOST at cut %d: the report file for the period ending %s is on the disk and the store holds no such report", c, end)
		}
	}
}

// retryAll sends every registration and redirect never answered 2xx until
// each is, as a shop retries, so the end of the run knows every order the
// shop registered.
func (s *shop) retryAll(r *powerRun, p *proc) {
	lf := &life{n: r.cuts + 1, p: p, cutBegun: func() bool { return false }, ld: &load{}, aheadC: make(chan struct{}, 1)}
	for round := 0; ; round++ {
		s.mu.Lock()
		var left []*registration
		for _, g := range s.regs {
			if g.ackedIn == 0 || g.outcome != "" && g.redirectIn == 0 {
				left = append(left, g)
			}
		}
		s.mu.Unlock()
		if len(left) == 0 {
			return
		}
		if round == 20 {
			r.t.Fatalf("%d registrations or redirects still unanswered after 20 rounds of retries", len(left))
		}
		for _, g := range left {
			s.register(context.Background(), r, lf, g)
			s.redirect(context.Background(), r, lf, g, "")
		}
	}
}

// lifeSummary counts the shop's writes life c had answered.
func (s *shop) lifeSummary(c int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var regs, redirects, acks int
	for _, g := range s.regs {
		if g.ackedIn == c {
			regs++
		}
		if g.redirectIn == c {
			redirects++
		}
	}
	for _, a := range s.acks {
		if a.in == c {
			acks++
		}
	}
	return fmt.Sprintf("%d registrations, %d redirects, %d acknowledgements answered", regs, redirects, acks)
}

func (s *shop) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var regs, redirects int
	for _, g := range s.regs {
		if g.ackedIn != 0 {
			regs++
		}
		if g.redirectIn != 0 {
			redirects++
		}
	}
	return fmt.Sprintf("shop: registrations %d, redirects %d, acknowledgements %d answered 2xx, %d reports listed, %d report files read: lost %d",
		regs, redirects, len(s.acks), s.reportsShown, s.filesChecked, s.lost)
}
