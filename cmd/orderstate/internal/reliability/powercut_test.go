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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderstate/orderstate/internal/powercut"
)

var (
	powercutCycles = flag.Int("powercut.cycles", 0, "power cuts TestPowerCutDurability makes (0: $ORDERSTATE_POWERCUT_CYCLES, else 4)")
	powercutSeed   = flag.Uint64("powercut.seed", 0, "seed of the power-cut tests' random choices (0: from the clock; the seed is logged)")
)

func powercutCyclesWanted(t *testing.T) int {
	if *powercutCycles > 0 {
		return *powercutCycles
	}
	if v := os.Getenv("ORDERSTATE_POWERCUT_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("ORDERSTATE_POWERCUT_CYCLES=%q: want a positive integer", v)
		}
		return n
	}
	return 4
}

// TestPowerCutDurability runs `orderstate serve` on a powercut file system
// (internal/powercut), which keeps every write in memory until its file is
// fsynced, and cuts the power at random moments while serve takes
// concurrent signed webhooks and answers concurrent reads of the orders
// they change. After each cut serve is killed (it would die with the
// power), and the directory is read as a disk would hold it after the
// power loss:
//
//   - every webhook answered 2xx is stored (lost);
//   - every event a GET /v1/checkouts/... listed before the cut is still
//     the order's after serve restarts on that directory: an order never
//     goes back to a state it was seen past (shown-then-lost);
//   - the store opens and agrees with itself: integrity_check, every event
//     with its raw request, every order's state the replay of its events
//     (half-applied).
//
// At the end the providers' retries complete every order against an
// undisturbed serve, and every order must hold the state its events decide.
func TestPowerCutDurability(t *testing.T) {
	cycles := powercutCyclesWanted(t)
	r := newPowerRun(t, "p", powercut.Options{}, true)
	for c := 1; c <= cycles; c++ {
		r.cycle(c)
	}
	r.finish()
	r.summary("")
	if r.lost != 0 || r.shownLost != 0 || r.half != 0 {
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
	f, mp := r.mount()
	p := startProc(t, filepath.Join(mp, storeName), procOpts{dir: r.work})
	if code := p.term(30 * time.Second); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM\n%s", code, p.stderr.String())
	}
	if err := f.Unmount(); err != nil {
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
	if r.lost == 0 && r.shownLost == 0 {
		t.Fatalf("%d power cuts on a disk that ignores fsync and nothing acknowledged or shown was found lost", most)
	}
	t.Logf("the loss was caught after cut %d", r.caughtAt)
}

// storeName is the store's file in its directory.
const storeName = "orderstate.db"

// powerRun is a series of power cuts of one store directory.
type powerRun struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	l       *ledger
	backing string // the store's directory on the real disk
	work    string // mountpoints, and serve's working directory for its reports
	opts    powercut.Options
	// report makes each loss a test error; the lying-fsync test counts
	// losses without failing on them.
	report bool

	fs      *powercut.FS // the latest mount
	mounts  int          // mounts so far, which name their mountpoints
	pending []sighting   // what GETs showed before the last cut, checked at the next start
	lastCut time.Time    // when the last cut was made

	cuts, acked, lost, shownLost, half, sightings, ahead int
	caughtAt                                             int // the first cut after which a loss was found
}

func newPowerRun(t *testing.T, prefix string, opts powercut.Options, report bool) *powerRun {
	seed := *powercutSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("powercut: seed %d (rerun with -powercut.seed=%d)", seed, seed)
	work := t.TempDir()
	r := &powerRun{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed>>1|1)),
		l:       &ledger{prefix: prefix, rng: rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, seed))},
		backing: filepath.Join(work, "disk"), work: work, opts: opts, report: report,
	}
	if err := os.Mkdir(r.backing, 0o755); err != nil {
		t.Fatal(err)
	}
	return r
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

// start mounts the directory, starts serve on it (which recovers whatever
// the last cut left), and checks what GETs showed before that cut.
func (r *powerRun) start() *proc {
	_, mp := r.mount()
	p := startProc(r.t, filepath.Join(mp, storeName), procOpts{dir: r.work})
	if r.pending != nil {
		n := r.checkShown(p, r.pending)
		r.shownLost += n
		if n > 0 && r.caughtAt == 0 {
			r.caughtAt = r.cuts
		}
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

// sighting is one answer of GET /v1/checkouts/{provider}/{checkout} that
// was received before the cut began.
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

// watch GETs orders the load has sent to until ctx ends, and returns the
// answers received before cutBegun said the power was going.
// Each answer that lists an event not yet acknowledged is signalled on
// ahead, without waiting.
func (r *powerRun) watch(ctx context.Context, p *proc, seed uint64, cutBegun func() bool, ahead chan<- struct{}) []sighting {
	rng := rand.New(rand.NewPCG(seed, 7))
	var seen []sighting
	for ctx.Err() == nil {
		o := r.l.pickOrder(rng)
		if o == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		st, body, err := p.do(ctx, http.MethodGet, "/v1/checkouts/"+o.provider+"/"+o.checkout, nil, nil)
		if cutBegun() {
			// Received after the power went (the process would be dead).
			continue
		}
		if err != nil || st != http.StatusOK {
			continue
		}
		var v orderView
		if err := json.Unmarshal(body, &v); err != nil {
			r.t.Errorf("GET %s %s: %v: %s", o.provider, o.checkout, err, body)
			continue
		}
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
		// More events than the ledger has acknowledgements for: this
		// answer showed an event before its sender was answered (or
		// while the answer was on its way).
		s.ahead = originals > r.l.ackedOf(o)
		seen = append(seen, s)
		if s.ahead {
			select {
			case ahead <- struct{}{}:
			default:
			}
		}
	}
	return seen
}

// cycle is one life of serve on the mount, ended by a power cut.
func (r *powerRun) cycle(c int) {
	t := r.t
	t.Helper()
	const workers, readers = 8, 3
	start := time.Now()
	p := r.start()
	f := r.fs

	// The cut begins when begun is set (a cut from here) or when the
	// armed write is reached: Stats and the cut take the same lock, so
	// an answer received while Writes is below the trigger came before
	// the cut.
	var begun atomic.Bool
	var armedAt, armedSync atomic.Uint64
	cutBegun := func() bool {
		if begun.Load() {
			return true
		}
		st := f.Stats()
		w, s := armedAt.Load(), armedSync.Load()
		return w != 0 && st.Writes >= w || s != 0 && st.Syncs >= s
	}
	errPowerGone := errors.New("answered after the power cut")
	ld := startLoad(p, r.l, workers, func(h *hook, st int, res ingestResult, err error) bool {
		if err == nil && st/100 != 2 && cutBegun() {
			// Whatever a dying store answers: the provider retries.
			err = errPowerGone
		}
		return r.l.record(t, h, st, res, err)
	})
	ctx, stopWatching := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var seen []sighting
	aheadSeen := make(chan struct{}, 1)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := r.watch(ctx, p, r.seed+uint64(c*readers+i), cutBegun, aheadSeen)
			mu.Lock()
			seen = append(seen, s...)
			mu.Unlock()
		}()
	}

	// A cut before the first acknowledgement checks nothing.
	for deadline := time.Now().Add(20 * time.Second); ld.acked.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("cycle %d: no webhook acknowledged in 20s\n%s", c, p.stderr.String())
		}
	}
	tear := r.rng.IntN(2) == 0
	var how string
	var rep *powercut.CutReport
	var err error
	switch r.rng.IntN(4) {
	case 3:
		// As the store starts to flush: what it answered before the
		// flush, and only that, is lost.
		n := 1 + r.rng.IntN(40)
		how = fmt.Sprintf("as sync %d from then began", n)
		armedSync.Store(f.Stats().Syncs + uint64(n))
		select {
		case res := <-f.CutAtSync(n, tear):
			rep, err = res.Report, res.Err
		case <-time.After(20 * time.Second):
			how += " (not reached in 20s; cut from here)"
			begun.Store(true)
			rep, err = f.Cut(tear)
		}
		begun.Store(true)
	case 0:
		d := time.Duration(r.rng.IntN(800)) * time.Millisecond
		how = fmt.Sprintf("after %v", d)
		time.Sleep(d)
		begun.Store(true)
		rep, err = f.Cut(tear)
	case 1:
		n := 1 + r.rng.IntN(400)
		how = fmt.Sprintf("at write %d from then", n)
		armedAt.Store(f.Stats().Writes + uint64(n))
		select {
		case res := <-f.CutAtWrite(n, tear):
			rep, err = res.Report, res.Err
		case <-time.After(20 * time.Second):
			how += " (not reached in 20s; cut from here)"
			begun.Store(true)
			rep, err = f.Cut(tear)
		}
		begun.Store(true)
	default:
		// Right after a GET listed an event whose sender has not been
		// answered yet: the moment a read may be ahead of the disk.
		how = "as a GET listed an unacknowledged event"
		select {
		case <-aheadSeen:
		case <-time.After(3 * time.Second):
			how = "after 3s in which no GET listed an unacknowledged event"
		}
		begun.Store(true)
		rep, err = f.Cut(tear)
	}
	cutAt := time.Now()
	p.kill() // the process dies with the power
	if err != nil {
		t.Fatalf("cycle %d: cut: %v", c, err)
	}
	after := f.Stats()
	acked := ld.stop(p.kill)
	stopWatching()
	wg.Wait()
	r.unmountAfterKill()
	r.cuts++
	r.acked += acked
	r.sightings += len(seen)
	ahead := 0
	for _, s := range seen {
		if s.ahead {
			ahead++
		}
	}
	r.ahead += ahead

	// The directory now holds what the disk would after the power loss.
	db := filepath.Join(r.backing, storeName)
	lost := missingAcked(t, db, r.l)
	if r.report {
		for _, h := range lost {
			t.Errorf("LOST at cut %d: %s %s was acknowledged (%s) and the store does not hold it", c, h.provider, h.key, h.result)
		}
	}
	half, found := inconsistencies(t, db)
	if r.report {
		for _, f := range found {
			t.Errorf("HALF-APPLIED at cut %d: %s", c, f)
		}
	}
	r.lost += len(lost)
	r.half += half
	if len(lost) > 0 && r.caughtAt == 0 {
		r.caughtAt = c
	}
	r.pending = seen
	var torn string
	if rep.Torn != nil {
		torn = fmt.Sprintf(", tore %s at %d keeping %d of %d bytes", rep.Torn.Path, rep.Torn.Offset, rep.Torn.Kept, rep.Torn.Len)
	}
	t.Logf("cut %d %s (tear %v; %d writes, %d syncs in this life): %d acknowledged, %d lost, %d half-applied, %d GET answers before the cut (%d ahead of the acknowledgements); dropped %d bytes in %d files%s; %v",
		c, how, tear, after.Writes, after.Syncs, acked, len(lost), half, len(seen), ahead, rep.DroppedBytes, rep.DroppedFiles, torn,
		time.Since(start).Round(time.Millisecond))
	r.lastCut = cutAt
}

// checkShown asks the restarted serve for every order a GET showed before
// the cut, and counts the events those GETs listed that the order no
// longer has: a read that ran ahead of the disk.
func (r *powerRun) checkShown(p *proc, seen []sighting) int {
	t := r.t
	t.Helper()
	byOrder := map[*order][]sighting{}
	for _, s := range seen {
		byOrder[s.order] = append(byOrder[s.order], s)
	}
	missing := 0
	for o, ss := range byOrder {
		st, body, err := p.get("/v1/checkouts/" + o.provider + "/" + o.checkout)
		if err != nil {
			t.Fatalf("GET %s %s after the restart: %v", o.provider, o.checkout, err)
		}
		var now orderView
		switch st {
		case http.StatusOK:
			if err := json.Unmarshal(body, &now); err != nil {
				t.Fatalf("GET %s %s: %v: %s", o.provider, o.checkout, err, body)
			}
		case http.StatusNotFound:
			now.State = "(no such order)"
		default:
			t.Fatalf("GET %s %s after the restart: %d %s", o.provider, o.checkout, st, body)
		}
		has := map[shownEvent]bool{}
		for _, e := range now.Events {
			has[shownEvent{seq: e.Seq, id: e.ProviderEventID}] = true
		}
		gone := map[shownEvent]sighting{} // each missing event, with the first GET that showed it
		for _, s := range ss {
			for _, e := range s.events {
				k := shownEvent{seq: e.seq, id: e.id}
				if _, ok := gone[k]; !has[k] && !ok {
					gone[k] = s
				}
			}
		}
		if len(gone) == 0 {
			continue
		}
		missing += len(gone)
		if !r.report {
			continue
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
		t.Errorf("SHOWN THEN LOST: %s order %s is %s after the restart; GETs before the cut listed events it no longer has:\n\t%s",
			o.provider, o.checkout, now.State, strings.Join(lines, "\n\t"))
	}
	return missing
}

// finish restarts serve on the last cut's directory (checking what GETs
// showed before it), lets the providers' retries complete every order,
// shuts down cleanly and checks the whole store.
func (r *powerRun) finish() {
	t := r.t
	t.Helper()
	p := r.start()
	retryAll(t, p, r.l, 8)
	if code := p.term(30 * time.Second); code != 0 {
		t.Errorf("serve exited %d after SIGTERM\n%s", code, p.stderr.String())
	}
	if err := r.fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(r.backing, storeName)
	r.lost += lostAcked(t, db, r.l)
	r.half += halfApplied(t, db, r.l)
	if !storedOnce(t, db, r.l) {
		r.half++
	}
}

func (r *powerRun) summary(prefix string) {
	line := fmt.Sprintf("%spower cuts %d: acknowledged %d, lost %d, shown-then-lost %d, half-applied %d (%d GET answers before a cut checked, %d of them listing events not yet acknowledged)",
		prefix, r.cuts, r.acked, r.lost, r.shownLost, r.half, r.sightings, r.ahead)
	r.t.Log(line)
	if testing.Verbose() {
		fmt.Println(line)
	}
}
