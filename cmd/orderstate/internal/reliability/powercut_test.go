package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderstate/orderstate/engine/sqlite"
	"github.com/orderstate/orderstate/internal/powercut"
)

var (
	powercutCycles = flag.Int("powercut.cycles", 0, "power cuts TestPowerCutDurability makes (0: $ORDERSTATE_POWERCUT_CYCLES, else 4)")
	powercutSeed   = flag.Uint64("powercut.seed", 0, "seed of the power-cut tests' random choices (0: from the clock; the seed is logged)")
)

func powercutCyclesWanted(t *testing.T) int {
	return countWanted(t, *powercutCycles, "ORDERSTATE_POWERCUT_CYCLES", 4)
}

// TestPowerCutDurability runs `orderstate serve` on a powercut file system
// (internal/powercut), which keeps every write in memory until its file is
// fsynced, and cuts the power at moments chosen to hurt (see aims) while
// serve takes every kind of write it has and answers reads of what they
// changed: the providers' signed webhooks, the shop's registrations and
// customers' redirects, acknowledgements of anomalies, and the reconciler's
// sweep (every second, raising and resolving anomalies) and reports (every
// second, stored and written as files on the same disk). After each
// cut serve is killed (it would die with the power), and the directory is
// read as a disk would hold it after the power loss:
//
//   - every webhook answered 2xx is stored (lost);
//   - every registration, redirect and acknowledgement answered 2xx is
//     there, with what it said; every report file is whole and is a
//     stored report (shop writes lost);
//   - everything a GET showed before the cut is still there after serve
//     restarts on that directory, or superseded by a later change: each
//     event an order's timeline listed, each anomaly as the anomaly list or
//     an order showed it, each stored report the list showed
//     (shown-then-lost);
//   - the store opens and agrees with itself: integrity, every event with
//     its raw request, every order's state the replay of its events
//     (half-applied).
//
// Each cut checks every webhook acknowledged so far, and of the rest what
// its life sent and showed plus a sample of what earlier lives did, so 50
// cuts take minutes; at the end the providers' and the shop's retries
// complete everything against an undisturbed serve, and all of it is
// checked: every order must hold the state its events decide, every
// acknowledged write must be there.
func TestPowerCutDurability(t *testing.T) {
	cycles := powercutCyclesWanted(t)
	r := newPowerRun(t, "p", powercut.Options{}, true)
	for c := 1; c <= cycles; c++ {
		r.cycle(c)
	}
	r.finish()
	r.summary("")
	if r.lost != 0 || r.shownLost != 0 || r.half != 0 || r.shop.lost != 0 {
		t.Fail()
	}
}

// TestPowerCutCatchesLyingFsync runs the same cycles on a disk that
// acknowledges fsync without persisting anything (LieOnFsync): every
// acknowledged webhook is then lost at the cut, and the harness must say
// so within a few cuts.
func TestPowerCutCatchesLyingFsync(t *testing.T) {
	const most = 5
	r := newPowerRun(t, "q", powercut.Options{LieOnFsync: true}, false)
	// A first life shut down cleanly: Unmount writes everything out, so
	// the schema is on the disk and the store opens after a cut.
	_, mp := r.mount()
	p := startProc(t, filepath.Join(mp, storeName), r.procOpts(mp))
	if code := p.term(30 * time.Second); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM\n%s", code, p.stderr.String())
	}
	if err := r.fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	for c := 1; c <= most && r.caughtAt == 0; c++ {
		r.cycle(c)
		// What GETs showed before the cut is checked after a restart,
		// also when a lost acknowledgement has been found already.
		p := r.start()
		p.kill()
		r.unmountAfterKill()
	}
	r.summary("lying fsync: ")
	if r.lost == 0 && r.shownLost == 0 && r.shop.lost == 0 {
		t.Fatalf("%d power cuts on a disk that ignores fsync and nothing acknowledged or shown was found lost", most)
	}
	t.Logf("the loss was caught after cut %d", r.caughtAt)
}

// storeName is the store's file in its directory.
const storeName = "orderstate.db"

// Each cut checks every webhook acknowledged so far (one read of the
// file's events), and of the rest at most this many besides what the life
// it ended touched; the end of the run checks all of it.
const (
	sampleOrders = 100 // orders' consistency, read from the file
	sampleShown  = 300 // orders a GET showed, asked of the restarted serve
)

// powerRun is a series of power cuts of one store directory.
type powerRun struct {
	t    *testing.T
	seed uint64
	// rng draws the cuts (their aims and moments) and the disks, sample
	// what the checks sample: a seed replays the same cuts whatever the
	// checks found.
	rng, sample *rand.Rand
	l           *ledger
	shop        *shop
	backing     string // the store's directory on the real disk
	work        string // mountpoints, and serve's working directory
	opts        powercut.Options
	// report makes each loss a test error; the lying-fsync test counts
	// losses without failing on them.
	report bool

	fs        *powercut.FS  // the latest mount
	syncDelay time.Duration // of its syncs
	mounts    int           // mounts so far, which name their mountpoints
	pending   *shown        // what the last life was shown and answered, checked at the next start
	lastCut   time.Time     // when the last cut was made

	triedChecked int            // how much of the ledger's tried log the cuts have checked
	lostHooks    map[*hook]bool // acknowledged webhooks found lost, counted once

	cuts, acked, lost, shownLost, half, sightings, ahead int
	caughtAt                                             int // the first cut after which a loss was found
	aims                                                 aimCounts
	checking                                             time.Duration // spent checking after the cuts
	lastShownCheck                                       time.Duration // of what the last life showed, after the restart
}

func newPowerRun(t *testing.T, prefix string, opts powercut.Options, report bool) *powerRun {
	seed := *powercutSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("powercut: seed %d (rerun with -powercut.seed=%d)", seed, seed)
	work := t.TempDir()
	r := &powerRun{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed>>1|1)), sample: rand.New(rand.NewPCG(seed>>1, seed)),
		l:    &ledger{prefix: prefix, rng: rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, seed))},
		shop: newShop(prefix), lostHooks: map[*hook]bool{},
		backing: filepath.Join(work, "disk"), work: work, opts: opts, report: report,
	}
	if err := os.Mkdir(r.backing, 0o755); err != nil {
		t.Fatal(err)
	}
	return r
}

// lose adds n losses found after cut c to counter, and makes them a test
// error when the run reports them.
func (r *powerRun) lose(c int, counter *int, n int, format string, args ...any) {
	r.t.Helper()
	*counter += n
	if r.caughtAt == 0 {
		r.caughtAt = c
	}
	if r.report {
		r.t.Errorf(format, args...)
	}
}

// mount mounts a fresh powercut file system over the store's directory.
// It is cut at the end of the test if it is still mounted.
func (r *powerRun) mount() (*powercut.FS, string) {
	t := r.t
	t.Helper()
	r.mounts++
	mp := filepath.Join(r.work, fmt.Sprintf("mnt%d", r.mounts))
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := r.opts
	opts.Passthrough = powercut.SQLiteShm
	opts.Seed = r.rng.Uint64()
	// Half the lives on a disk slow to flush (2-20 ms a sync): a read that
	// ran ahead of the flush would show what the cut then takes back for
	// that long.
	if r.rng.IntN(2) == 0 {
		opts.SyncDelay = time.Duration(2+r.rng.IntN(19)) * time.Millisecond
	}
	r.syncDelay = opts.SyncDelay
	f, err := powercut.Mount(r.backing, mp, opts)
	if err != nil {
		t.Fatalf("mount powercut (needs root and /dev/fuse): %v", err)
	}
	t.Cleanup(func() {
		if _, err := f.Cut(false); err != nil && !errors.Is(err, powercut.ErrNotMounted) {
			t.Errorf("cleanup: %v", err)
		}
	})
	r.fs = f
	return f, mp
}

// procOpts runs serve with its reports on the mount too, and the
// reconciler's jobs often enough to write during every life: a sweep each
// second, which raises missing_webhook a second after a redirect with no
// outcome and stuck three seconds into pending, and a report every second,
// kept short (a few anomalies of each kind listed) so that a run's store
// holds its orders rather than a hundred copies of the same list.
func (r *powerRun) procOpts(mp string) procOpts {
	return procOpts{dir: r.work, args: []string{
		"--reports-dir", filepath.Join(mp, reportsDir),
		"--sweep-schedule", "@every 1s", "--report-schedule", "@every 1s",
		"--report-max-per-kind", "5", "--report-max-orders", "5", "--report-max-detailed", "2",
		"--redirect-grace", "1s", "--stuck-after", "3s",
	}}
}

// reportsDir is where serve writes its report files, beside the store.
const reportsDir = "reports"

// start mounts the directory, starts serve on it (which recovers whatever
// the last cut left), and checks what the last life was shown and
// answered.
func (r *powerRun) start() *proc {
	_, mp := r.mount()
	p := startProc(r.t, filepath.Join(mp, storeName), r.procOpts(mp))
	if r.pending != nil {
		began := time.Now()
		r.checkShown(p, r.pending)
		r.lastShownCheck = time.Since(began)
		r.checking += r.lastShownCheck
		r.pending = nil
	}
	return p
}

// unmountAfterKill waits for the FUSE connection of a mount whose users
// are dead to end, cutting it first if it is still live.
func (r *powerRun) unmountAfterKill() {
	t := r.t
	t.Helper()
	if _, err := r.fs.Cut(false); err != nil && !errors.Is(err, powercut.ErrNotMounted) {
		t.Fatal(err)
	}
	select {
	case <-r.fs.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the FUSE connection outlived serve")
	}
}

// sighting is one answer that showed an order (a GET of it, or the answer
// to a registration or a redirect), received before the cut began.
type sighting struct {
	order     *order
	at        time.Time
	state     string
	anomalies []string
	events    []shownEvent
	ahead     bool // it listed more events than were acknowledged when it was received
}

// shownEvent is one entry of an order's timeline as a GET listed it.
type shownEvent struct {
	seq    int64
	id     string // provider_event_id
	kind   string
	result string
}

func (e shownEvent) String() string {
	return fmt.Sprintf("#%d %s (%s, %s)", e.seq, e.id, e.kind, e.result)
}

// orderJSON is an order as the API answers it.
type orderJSON struct {
	OrderID    string        `json:"order_id"`
	Provider   string        `json:"provider"`
	CheckoutID string        `json:"checkout_id"`
	State      string        `json:"state"`
	Amount     int64         `json:"amount"`
	Currency   string        `json:"currency"`
	Mode       string        `json:"mode"`
	Registered bool          `json:"registered"`
	Redirect   *redirectJSON `json:"redirect"`
	Anomalies  []anomalyJSON `json:"anomalies"`
	Events     []struct {
		Seq             int64  `json:"seq"`
		ProviderEventID string `json:"provider_event_id"`
		Kind            string `json:"kind"`
		Result          string `json:"result"`
	} `json:"events"`
}

type redirectJSON struct {
	Outcome string `json:"outcome"`
}

// anomalyJSON is an anomaly as the API answers it.
type anomalyJSON struct {
	ID         int64     `json:"id"`
	Kind       string    `json:"kind"`
	Status     string    `json:"status"`
	Provider   string    `json:"provider"`
	CheckoutID string    `json:"checkout_id"`
	Count      int       `json:"count"`
	UpdatedAt  time.Time `json:"updated_at"`
	Note       string    `json:"note"`
}

// sight makes a sighting of an order's answer; ahead is whether it listed
// more events than the ledger has acknowledgements for: an event shown
// before its sender was answered (or while the answer was on its way).
func (r *powerRun) sight(o *order, v *orderJSON) sighting {
	s := sighting{order: o, at: time.Now(), state: v.State}
	for _, a := range v.Anomalies {
		s.anomalies = append(s.anomalies, a.Kind)
	}
	originals := 0
	for _, e := range v.Events {
		s.events = append(s.events, shownEvent{seq: e.Seq, id: e.ProviderEventID, kind: e.Kind, result: e.Result})
		if e.Result != "duplicate" {
			originals++
		}
	}
	s.ahead = originals > r.l.ackedOf(o)
	return s
}

// pickOrder picks an order some of whose events have been handed out to a
// sender: a third of the time one with an event in flight (handed out and
// not yet answered), whose change may be visible before it is
// acknowledged; a third among the latest orders; else any. nil when there
// is none yet.
func (l *ledger) pickOrder(rng *rand.Rand) *order {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.orders) == 0 {
		return nil
	}
	latest := l.orders[len(l.orders)-min(64, len(l.orders)):]
	var o *order
	switch rng.IntN(3) {
	case 0:
		var flying []*order
		for _, o := range latest {
			for _, h := range o.hooks {
				if h.handed && !h.acked {
					flying = append(flying, o)
					break
				}
			}
		}
		if len(flying) == 0 {
			return nil
		}
		o = flying[rng.IntN(len(flying))]
	case 1:
		o = latest[rng.IntN(len(latest))]
	default:
		o = l.orders[rng.IntN(len(l.orders))]
	}
	for _, h := range o.hooks {
		if h.handed {
			return o
		}
	}
	return nil
}

// ackedOf counts an order's acknowledged events.
func (l *ledger) ackedOf(o *order) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, h := range o.hooks {
		if h.acked {
			n++
		}
	}
	return n
}

// life is what one run of serve between two cuts was shown and answered.
type life struct {
	n        int
	p        *proc
	cutBegun func() bool
	ld       *load

	mu     sync.Mutex
	seen   shown
	aheadC chan struct{} // signalled, without waiting, by each answer ahead of the acknowledgements
}

// note keeps an order's answer received before the cut.
func (lf *life) note(s sighting, anomalies []anomalyJSON) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	lf.seen.orders = append(lf.seen.orders, s)
	lf.seen.noteAnomalies(anomalies)
	if s.ahead {
		select {
		case lf.aheadC <- struct{}{}:
		default:
		}
	}
}

// watch GETs orders the load has sent to until ctx ends, keeping the
// answers received before the cut began.
func (r *powerRun) watch(ctx context.Context, lf *life, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for ctx.Err() == nil {
		o := r.l.pickOrder(rng)
		if o == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		v, ok := r.getOrder(ctx, lf, "/v1/checkouts/"+o.provider+"/"+o.checkout)
		if ok {
			lf.note(r.sight(o, v), v.Anomalies)
		}
	}
}

// getOrder GETs an order and decodes it; false for an answer received
// after the power went (the process would be dead) or one that is not 200.
func (r *powerRun) getOrder(ctx context.Context, lf *life, path string) (*orderJSON, bool) {
	st, body, err := lf.p.do(ctx, http.MethodGet, path, nil, nil)
	if lf.cutBegun() || err != nil || st != http.StatusOK {
		return nil, false
	}
	var v orderJSON
	if err := json.Unmarshal(body, &v); err != nil {
		r.t.Errorf("GET %s: %v: %s", path, err, body)
		return nil, false
	}
	return &v, true
}

// cycle is one life of serve on the mount, ended by a power cut.
func (r *powerRun) cycle(c int) {
	t := r.t
	t.Helper()
	const workers, readers = 8, 3
	start := time.Now()
	p := r.start()
	f := r.fs

	// The cut begins when begun is set (a cut from here) or when an armed
	// trigger fires: Live and the cut take the same lock, so an answer
	// received while the mount is live came before the cut.
	var begun atomic.Bool
	lf := &life{n: c, p: p, aheadC: make(chan struct{}, 1)}
	lf.cutBegun = func() bool { return begun.Load() || !f.Live() }
	errPowerGone := errors.New("answered after the power cut")
	lf.ld = startLoad(p, r.l, workers, func(h *hook, st int, res ingestResult, err error) bool {
		if err == nil && st/100 != 2 && lf.cutBegun() {
			// Whatever a dying store answers but 2xx: the provider
			// retries. A 2xx still counts, whenever it came: the store
			// answers it only once the write is on the disk.
			err = errPowerGone
		}
		return r.l.record(t, h, st, res, err)
	})
	ctx, stopWatching := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.watch(ctx, lf, r.seed+uint64(c*readers+i))
		}()
	}
	r.shop.run(ctx, r, lf, &wg, r.seed+uint64(c))

	// A cut before the first acknowledgement checks nothing.
	for deadline := time.Now().Add(20 * time.Second); lf.ld.acked.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("cycle %d: no webhook acknowledged in 20s\n%s", c, p.stderr.String())
		}
	}
	tear := r.rng.IntN(2) == 0
	a := r.pickAim()
	how, rep, err := a.cut(r, lf, tear, &begun)
	cutAt := time.Now()
	p.kill() // the process dies with the power
	if err != nil {
		t.Fatalf("cycle %d: cut: %v", c, err)
	}
	after := f.Stats()
	acked := lf.ld.stop(p.kill)
	stopWatching()
	wg.Wait()
	r.unmountAfterKill()
	r.cuts++
	r.acked += acked
	landed := r.aims.landed(a, rep)
	life := time.Since(start)

	// The directory now holds what the disk would after the power loss.
	began := time.Now()
	db := openStore(t, filepath.Join(r.backing, storeName))
	lost := r.checkAcked(c, db)
	half := r.checkConsistent(c, db)
	db.Close()
	files := r.checkReportFiles(c, &lf.seen)
	checks := time.Since(began)
	r.checking += checks

	seen := &lf.seen
	r.sightings += len(seen.orders)
	ahead := 0
	for _, s := range seen.orders {
		if s.ahead {
			ahead++
		}
	}
	r.ahead += ahead
	seen.cut = c
	r.pending = seen
	var torn string
	if rep.Torn != nil {
		torn = fmt.Sprintf(", tore %s at %d keeping %d of %d bytes", rep.Torn.Path, rep.Torn.Offset, rep.Torn.Kept, rep.Torn.Len)
	}
	var dropped []string
	for _, d := range rep.Dropped {
		dropped = append(dropped, fmt.Sprintf("%s %d bytes from %d", d.Path, d.Bytes, d.From))
	}
	t.Logf("cut %d %s%s (tear %v; %d writes, %d syncs taking %v more in this life): %d acknowledged, %d lost, %d half-applied; "+
		"shop: %s; %d GET answers before the cut (%d ahead of the acknowledgements), %d anomalies and %d reports shown, %d report files read; "+
		"dropped [%s]%s; life %v (checks of the life before %v), checks %v",
		c, how, landed, tear, after.Writes, after.Syncs, r.syncDelay, acked, lost, half,
		r.shop.lifeSummary(c), len(seen.orders), ahead, len(seen.anomalies), len(seen.reports), files,
		strings.Join(dropped, ", "), torn, life.Round(time.Millisecond), r.lastShownCheck.Round(time.Millisecond), checks.Round(time.Millisecond))
	r.lastCut = cutAt
}

// checkAcked reads the file for every webhook acknowledged so far, and
// counts those it does not hold once.
func (r *powerRun) checkAcked(c int, db *sqlite.Inspector) int {
	t := r.t
	t.Helper()
	stored, err := db.Originals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r.l.mu.Lock()
	hooks := slices.Clone(r.l.ackLog)
	r.l.mu.Unlock()
	lost := 0
	for _, h := range hooks {
		if n := stored.Stored(h.provider, h.key); n != 1 && !r.lostHooks[h] {
			r.lostHooks[h] = true // counted once, though later cuts find it lost too
			lost++
			r.lose(c, &r.lost, 1, "LOST at cut %d: %s %s was acknowledged (%s) and the store holds it %d times", c, h.provider, h.key, h.result, n)
		}
	}
	return lost
}

// checkConsistent checks the store agrees with itself after cut c:
// SQLite's integrity check, no order that nothing made, and each order a
// webhook or a registration was sent for since the last cut (and a sample
// of the others) in the state its stored events replay to, every event
// with its raw request. The whole store is replayed at the end of the run.
func (r *powerRun) checkConsistent(c int, db *sqlite.Inspector) int {
	t := r.t
	t.Helper()
	orders := map[*order]bool{}
	r.l.mu.Lock()
	for _, h := range r.l.tried[r.triedChecked:] {
		orders[h.o] = true
	}
	r.triedChecked = len(r.l.tried)
	for range min(sampleOrders, len(r.l.orders)) {
		orders[r.l.orders[r.sample.IntN(len(r.l.orders))]] = true
	}
	r.l.mu.Unlock()
	for _, o := range r.shop.registeredSince(c) {
		orders[o] = true
	}
	ctx := context.Background()
	half := 0
	for o := range orders {
		ck, err := db.CheckOrder(ctx, o.provider, o.checkout)
		if err != nil {
			t.Fatal(err)
		}
		if ck.State != ck.Replayed || ck.EventsWithoutRaw != 0 {
			half++
			r.lose(c, &r.half, 1, "HALF-APPLIED at cut %d: %s order %s is %s; its %d stored events replay to %s; %d without their raw request",
				c, o.provider, o.checkout, ck.State, ck.Events, ck.Replayed, ck.EventsWithoutRaw)
		}
	}
	audit, err := db.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		what string
		n    int64
	}{
		{"events without their raw request", audit.EventsWithoutRaw},
		{"orders neither a webhook nor a registration made", audit.StrayOrders},
		{"orders without an alias", audit.OrdersWithoutAlias},
		{"foreign keys that point nowhere", audit.ForeignKeyViolations},
	} {
		if k.n != 0 {
			half += int(k.n)
			r.lose(c, &r.half, int(k.n), "HALF-APPLIED at cut %d: %d %s", c, k.n, k.what)
		}
	}
	if audit.Integrity != "ok" {
		half++
		r.lose(c, &r.half, 1, "HALF-APPLIED at cut %d: integrity_check: %s", c, audit.Integrity)
	}
	return half
}

// shown is what one life was shown and answered before its cut, checked
// when serve starts again on what the disk kept.
type shown struct {
	cut       int
	orders    []sighting
	anomalies map[int64]anomalyJSON // by id, the latest version shown
	reports   map[int64]reportJSON
	files     []time.Time // period ends of the report files on the disk after the cut
}

// noteAnomalies keeps, of each anomaly, the latest version shown.
func (s *shown) noteAnomalies(as []anomalyJSON) {
	if s.anomalies == nil {
		s.anomalies = map[int64]anomalyJSON{}
	}
	for _, a := range as {
		if old, ok := s.anomalies[a.ID]; !ok || a.UpdatedAt.After(old.UpdatedAt) {
			s.anomalies[a.ID] = a
		}
	}
}

// checkShown asks the restarted serve for what the last life was shown
// and answered: the orders GETs showed (every event they listed must still
// be there), the anomalies they showed (each as shown or changed since),
// the reports listed, and the shop's acknowledged writes.
func (r *powerRun) checkShown(p *proc, seen *shown) {
	t := r.t
	t.Helper()
	c := seen.cut
	byOrder := map[*order][]sighting{}
	for _, s := range seen.orders {
		byOrder[s.order] = append(byOrder[s.order], s)
	}
	// Every order whose answer ran ahead of the acknowledgements, and a
	// sample of the others.
	var rest []*order
	check := map[*order]bool{}
	for o, ss := range byOrder {
		if slices.ContainsFunc(ss, func(s sighting) bool { return s.ahead }) {
			check[o] = true
		} else {
			rest = append(rest, o)
		}
	}
	r.sample.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	for _, o := range rest[:min(sampleShown, len(rest))] {
		check[o] = true
	}
	for o := range check {
		r.checkOrderShown(c, p, o, byOrder[o])
	}
	r.checkAnomaliesShown(c, p, seen.anomalies)
	r.checkReportsShown(c, p, seen)
	r.shop.check(r, c, p)
}

// getOrderNow GETs an order from the restarted serve.
func (r *powerRun) getOrderNow(p *proc, path string) (*orderJSON, bool) {
	t := r.t
	t.Helper()
	st, body, err := p.get(path)
	if err != nil {
		t.Fatalf("GET %s after the restart: %v", path, err)
	}
	switch st {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, false
	default:
		t.Fatalf("GET %s after the restart: %d %s", path, st, body)
	}
	var v orderJSON
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return &v, true
}

// checkOrderShown checks every event the sightings of o listed is still
// the order's.
func (r *powerRun) checkOrderShown(c int, p *proc, o *order, ss []sighting) {
	now, ok := r.getOrderNow(p, "/v1/checkouts/"+o.provider+"/"+o.checkout)
	if !ok {
		now = &orderJSON{State: "(no such order)"}
	}
	has := map[shownEvent]bool{}
	for _, e := range now.Events {
		has[shownEvent{seq: e.Seq, id: e.ProviderEventID}] = true
	}
	gone := map[shownEvent]sighting{} // each missing event, with the first answer that showed it
	for _, s := range ss {
		for _, e := range s.events {
			k := shownEvent{seq: e.seq, id: e.id}
			if _, ok := gone[k]; !has[k] && !ok {
				gone[k] = s
			}
		}
	}
	if len(gone) == 0 {
		return
	}
	var lines []string
	for k, s := range gone {
		var ev shownEvent
		for _, e := range s.events {
			if e.seq == k.seq && e.id == k.id {
				ev = e
			}
		}
		lines = append(lines, fmt.Sprintf("%v, first shown %v before the cut with the order %s (anomalies %v)",
			ev, r.lastCut.Sub(s.at).Round(time.Microsecond), s.state, s.anomalies))
	}
	slices.Sort(lines)
	r.lose(c, &r.shownLost, len(gone), "SHOWN THEN LOST at cut %d: %s order %s is %s after the restart; answers before the cut listed events it no longer has:\n\t%s",
		c, o.provider, o.checkout, now.State, strings.Join(lines, "\n\t"))
}

// checkAnomaliesShown checks each anomaly shown is still there as shown
// or as changed since: updated no earlier than when it was shown, and if
// not updated since, with the status and count it was shown with.
func (r *powerRun) checkAnomaliesShown(c int, p *proc, as map[int64]anomalyJSON) {
	type key struct{ provider, checkout string }
	byOrder := map[key][]anomalyJSON{}
	for _, a := range as {
		k := key{a.Provider, a.CheckoutID}
		byOrder[k] = append(byOrder[k], a)
	}
	keys := make([]key, 0, len(byOrder))
	for k := range byOrder {
		keys = append(keys, k)
	}
	r.sample.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for _, k := range keys[:min(sampleShown, len(keys))] {
		now, _ := r.getOrderNow(p, "/v1/checkouts/"+k.provider+"/"+k.checkout)
		for _, a := range byOrder[k] {
			var cur *anomalyJSON
			if now != nil {
				for i := range now.Anomalies {
					if now.Anomalies[i].ID == a.ID {
						cur = &now.Anomalies[i]
					}
				}
			}
			switch {
			case cur == nil:
				r.lose(c, &r.shownLost, 1, "SHOWN THEN LOST at cut %d: anomaly %d (%s, %s, on %s %s) is gone after the restart",
					c, a.ID, a.Kind, a.Status, a.Provider, a.CheckoutID)
			case cur.Kind != a.Kind || cur.UpdatedAt.Before(a.UpdatedAt) ||
				cur.UpdatedAt.Equal(a.UpdatedAt) && (cur.Status != a.Status || cur.Count != a.Count):
				r.lose(c, &r.shownLost, 1, "SHOWN THEN LOST at cut %d: anomaly %d on %s %s was shown %s %s (count %d, updated %s) and is %s %s (count %d, updated %s) after the restart",
					c, a.ID, a.Provider, a.CheckoutID, a.Kind, a.Status, a.Count, a.UpdatedAt.Format(time.RFC3339Nano),
					cur.Kind, cur.Status, cur.Count, cur.UpdatedAt.Format(time.RFC3339Nano))
			}
		}
	}
}

// finish restarts serve on the last cut's directory (checking what it was
// shown), lets the providers' and the shop's retries complete everything,
// checks every acknowledged write through it, shuts down cleanly and
// checks the whole store.
func (r *powerRun) finish() {
	t := r.t
	t.Helper()
	p := r.start()
	retryAll(t, p, r.l, 8)
	r.shop.retryAll(r, p)
	r.shop.checkAll(r, p)
	if code := p.term(30 * time.Second); code != 0 {
		t.Errorf("serve exited %d after SIGTERM\n%s", code, p.stderr.String())
	}
	if err := r.fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(r.backing, storeName)
	for _, h := range missingAcked(t, db, r.l) {
		if !r.lostHooks[h] {
			r.lostHooks[h] = true
			r.lose(r.cuts, &r.lost, 1, "LOST at the end: %s %s was acknowledged (%s) and the store does not hold it once", h.provider, h.key, h.result)
		}
	}
	r.half += halfApplied(t, db, r.l)
	if !storedOnce(t, db, r.l) {
		r.half++
	}
}

func (r *powerRun) summary(prefix string) {
	line := fmt.Sprintf("%spower cuts %d: acknowledged %d, lost %d, shown-then-lost %d, half-applied %d "+
		"(%d GET answers before a cut checked, %d of them listing events not yet acknowledged); %s; %s; checks took %v",
		prefix, r.cuts, r.acked, r.lost, r.shownLost, r.half, r.sightings, r.ahead,
		r.shop.summary(), r.aims.summary(), r.checking.Round(100*time.Millisecond))
	r.t.Log(line)
	if testing.Verbose() {
		fmt.Println(line)
	}
}
