package reliability

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	crashCycles = flag.Int("crash.cycles", 0, "SIGKILL cycles TestCrashDurability runs (0: $ORDERSTATE_CRASH_CYCLES, else 3)")
	crashSeed   = flag.Uint64("crash.seed", 0, "seed of TestCrashDurability's random choices (0: from the clock; the seed is logged)")
)

// ledger is everything the test sent and what came back.
type ledger struct {
	mu     sync.Mutex
	prefix string
	rng    *rand.Rand
	orders []*order
	fresh  []*hook // generated, not yet handed out
	next   int     // orders generated so far
	// ackLog lists the hooks in the order they were first acknowledged,
	// and tried the hook of every delivery, in order: a harness that
	// checks after each crash what was sent since the last one reads them
	// from where it stopped.
	ackLog, tried []*hook
}

// newHook hands out the next event nobody has sent yet. Events are made in
// batches of orders and shuffled within a batch, so an order's events
// arrive out of order and interleaved with other orders'.
func (l *ledger) newHook() *hook {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fresh) == 0 {
		for range 8 {
			for _, p := range providers {
				o := newOrder(l.prefix, p, l.next, l.rng.IntN(12))
				l.next++
				l.orders = append(l.orders, o)
				l.fresh = append(l.fresh, o.hooks...)
			}
		}
		l.rng.Shuffle(len(l.fresh), func(i, j int) { l.fresh[i], l.fresh[j] = l.fresh[j], l.fresh[i] })
	}
	h := l.fresh[0]
	l.fresh = l.fresh[1:]
	h.handed = true
	return h
}

// handOutAll marks every generated event as handed out, so the final
// retries complete every order the test started.
func (l *ledger) handOutAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.fresh {
		h.handed = true
	}
	l.fresh = nil
}

// unacked lists, shuffled, the events handed out but never acknowledged:
// what a provider retries (and what a kill stopped before it was sent).
func (l *ledger) unacked() []*hook {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*hook
	for _, o := range l.orders {
		for _, h := range o.hooks {
			if h.handed && !h.acked {
				out = append(out, h)
			}
		}
	}
	l.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// record notes one delivery's outcome and reports whether it was acked.
func (l *ledger) record(t *testing.T, h *hook, status int, res ingestResult, err error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	h.attempts++
	l.tried = append(l.tried, h)
	switch {
	case err != nil, status == http.StatusServiceUnavailable:
		// The process died mid-request, or refused to take it: the
		// provider retries.
		return false
	case status/100 == 2:
		if !h.acked {
			l.ackLog = append(l.ackLog, h)
		}
		h.acked, h.result = true, res.Result
		return true
	}
	t.Errorf("%s %s: a correctly signed webhook got %d: %s", h.provider, h.key, status, res.Error)
	return false
}

func cyclesWanted(t *testing.T) int {
	return countWanted(t, *crashCycles, "ORDERSTATE_CRASH_CYCLES", 3)
}

// countWanted is a harness's count of cycles: its flag when set, else the
// variable env, else def.
func countWanted(t *testing.T, flagValue int, env string, def int) int {
	if flagValue > 0 {
		return flagValue
	}
	if v := os.Getenv(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive integer", env, v)
		}
		return n
	}
	return def
}

// TestCrashDurability kills `orderstate serve` with SIGKILL at random
// moments while it takes concurrent signed webhooks from all four
// providers, restarts it on the same SQLite file, and retries what was not
// acknowledged, as the providers do. It then checks the promise behind a
// 2xx: every acknowledged webhook is in the store, each event is stored
// once however many times it was delivered, and no order is half-applied.
//
// SIGKILL loses no page the kernel already has, so this proves the
// application's side (acknowledge only after commit, one transaction per
// batch, a clean restart on whatever the WAL holds); power loss is the
// log flush every answer waits for (engine's logSyncer).
func TestCrashDurability(t *testing.T) {
	cycles := cyclesWanted(t)
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("crash: %d cycles, seed %d (rerun with -crash.seed=%d)", cycles, seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "crash.db")
	// The ledger draws from its own source: the sender goroutine uses it.
	l := &ledger{prefix: "k", rng: rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, seed))}

	const workers = 8
	var ackedInCycles, startupKills, checkedLost int
	for c := range cycles {
		// Before one cycle in four, an extra kill while the process starts:
		// opening the file, recovering the WAL, migrating a fresh file.
		if rng.IntN(4) == 0 {
			p := startProc(t, dbPath, procOpts{noWait: true})
			time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
			p.kill()
			startupKills++
		}
		p := startProc(t, dbPath, procOpts{})
		ld := startLoad(p, l, workers, func(h *hook, st int, res ingestResult, err error) bool {
			return l.record(t, h, st, res, err)
		})
		// Let the load run a random while, then kill without warning.
		time.Sleep(time.Duration(30+rng.IntN(400)) * time.Millisecond)
		acked := ld.stop(p.kill)
		ackedInCycles += acked
		// What was acknowledged must be there now, before any retry could
		// paper over a loss.
		lost := lostAcked(t, dbPath, l)
		checkedLost += lost
		t.Logf("cycle %d: %d acknowledged before SIGKILL, %d lost", c+1, acked, lost)
	}

	// The providers' retries, against a last, undisturbed run.
	p := startProc(t, dbPath, procOpts{})
	retryAll(t, p, l, workers)
	if code := p.term(30 * time.Second); code != 0 {
		t.Errorf("serve exited %d after SIGTERM\n%s", code, p.stderr.String())
	}

	lost := lostAcked(t, dbPath, l) + checkedLost
	half := halfApplied(t, dbPath, l)
	retriedAfterFailure, committedUnacked, hooks := 0, 0, 0
	for _, o := range l.orders {
		for _, h := range o.hooks {
			if h.attempts == 0 {
				continue
			}
			hooks++
			if h.attempts > 1 {
				retriedAfterFailure++
				if h.result == "duplicate" {
					committedUnacked++
				}
			}
		}
	}
	once := storedOnce(t, dbPath, l)
	summary := fmt.Sprintf("crash summary: cycles=%d (plus %d kills while starting) acknowledged=%d (before a kill; %d webhooks in all) lost=%d half-applied=%d "+
		"retried-after-no-ack=%d (already committed: %d, stored once: %v)",
		cycles, startupKills, ackedInCycles, hooks, lost, half, retriedAfterFailure, committedUnacked, once)
	t.Log(summary)
	if testing.Verbose() {
		fmt.Println(summary)
	}
	if lost != 0 || half != 0 || !once {
		t.Fail()
	}
}

// load is webhooks from a ledger sent to one serve by concurrent workers:
// first the events handed out and never acknowledged (the providers'
// retries), then fresh ones, until stop.
type load struct {
	stopFeed, cancel context.CancelFunc
	wg               sync.WaitGroup
	acked            atomic.Int64
	// quietUntil holds the workers back until then (UnixNano): a lull in
	// the providers' traffic.
	quietUntil atomic.Int64
}

// quiet holds every worker's next delivery back for d.
func (ld *load) quiet(d time.Duration) { ld.quietUntil.Store(time.Now().Add(d).UnixNano()) }

// waitQuiet returns once no lull holds the workers back, or ctx ends.
func (ld *load) waitQuiet(ctx context.Context) {
	for ctx.Err() == nil && time.Now().UnixNano() < ld.quietUntil.Load() {
		time.Sleep(time.Millisecond)
	}
}

// startLoad starts the feed and the workers; record notes each delivery's
// outcome and says whether it was acknowledged.
func startLoad(p *proc, l *ledger, workers int, record func(h *hook, status int, res ingestResult, err error) bool) *load {
	ctx, cancel := context.WithCancel(context.Background())
	feed, stopFeed := context.WithCancel(ctx)
	ld := &load{stopFeed: stopFeed, cancel: cancel}
	queue := make(chan *hook)
	go func() {
		defer close(queue)
		for _, h := range l.unacked() {
			select {
			case queue <- h:
			case <-feed.Done():
				return
			}
		}
		for {
			select {
			case queue <- l.newHook():
			case <-feed.Done():
				return
			}
		}
	}()
	for range workers {
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			for h := range queue {
				ld.waitQuiet(ctx)
				st, res, err := p.post(ctx, h)
				if record(h, st, res, err) {
					ld.acked.Add(1)
				}
			}
		}()
	}
	return ld
}

// stop ends the load with kill (which stops the process): the feed stops
// first, so that only the requests in flight at the kill count as failed
// deliveries, not a stream sent to a dead port. It returns how many
// deliveries were acknowledged.
func (ld *load) stop(kill func()) int {
	ld.stopFeed()
	kill()
	ld.cancel()
	ld.wg.Wait()
	return int(ld.acked.Load())
}

// retryAll is the providers' retries against an undisturbed process: every
// event generated is handed out and delivered until all are acknowledged.
func retryAll(t *testing.T, p *proc, l *ledger, workers int) {
	t.Helper()
	l.handOutAll()
	retried := l.unacked()
	for round := 0; len(retried) > 0; round++ {
		if round == 20 {
			t.Fatalf("%d webhooks still unacknowledged after 20 rounds of retries", len(retried))
		}
		var wg sync.WaitGroup
		ch := make(chan *hook)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for h := range ch {
					st, res, err := p.post(context.Background(), h)
					l.record(t, h, st, res, err)
				}
			}()
		}
		for _, h := range retried {
			ch <- h
		}
		close(ch)
		wg.Wait()
		retried = l.unacked()
	}
}

// lostAcked counts acknowledged webhooks the file does not hold.
func lostAcked(t *testing.T, path string, l *ledger) int {
	t.Helper()
	lost := missingAcked(t, path, l)
	for _, h := range lost {
		t.Errorf("LOST: %s %s was acknowledged (%s) and the store does not hold it once", h.provider, h.key, h.result)
	}
	return len(lost)
}

// missingAcked lists the acknowledged webhooks the file does not hold
// exactly once.
func missingAcked(t *testing.T, path string, l *ledger) []*hook {
	t.Helper()
	db := openStore(t, path)
	defer db.Close()
	stored, err := db.Originals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var lost []*hook
	for _, o := range l.orders {
		for _, h := range o.hooks {
			if h.acked && stored.Stored(h.provider, h.key) != 1 {
				lost = append(lost, h)
			}
		}
	}
	return lost
}

// storedOnce checks every event delivered is stored exactly once as an
// original, and nothing else is.
func storedOnce(t *testing.T, path string, l *ledger) bool {
	t.Helper()
	db := openStore(t, path)
	defer db.Close()
	stored, err := db.Originals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ok := true
	sent := 0
	for _, o := range l.orders {
		for _, h := range o.hooks {
			if h.attempts == 0 {
				continue
			}
			sent++
			if n := stored.Stored(h.provider, h.key); n != 1 {
				t.Errorf("%s %s delivered %d times is stored %d times", h.provider, h.key, h.attempts, n)
				ok = false
			}
		}
	}
	counts, err := db.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if originals := int(counts.Events); originals != sent {
		t.Errorf("the store holds %d events; %d distinct events were delivered", originals, sent)
		ok = false
	}
	return ok
}

// halfApplied counts the ways the store could disagree with itself: an
// order whose stored state is not the replay of its events, or not what the
// set of its events decides; an event without its raw request; an order no
// event created; and anything SQLite's own checks find.
func halfApplied(t *testing.T, path string, l *ledger) int {
	t.Helper()
	half, found := inconsistencies(t, path)
	for _, f := range found {
		t.Error(f)
	}
	db := openStore(t, path)
	defer db.Close()
	ctx := context.Background()
	for _, o := range l.orders {
		state, found, err := db.StateOf(ctx, o.provider, o.checkout)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			t.Errorf("%s order %s: not in the store", o.provider, o.checkout)
			half++
			continue
		}
		if want := o.expected(); state != want {
			t.Errorf("%s order %s is %s; its events decide %s", o.provider, o.checkout, state, want)
			half++
		}
	}
	return half
}

// inconsistencies counts, and describes, the ways the store disagrees with
// itself whatever was sent to it: orders whose stored state is not the
// replay of their stored events, events without their raw request, orders
// no event names or no id leads to, dangling references, and what SQLite's
// integrity_check finds.
func inconsistencies(t *testing.T, path string) (int, []string) {
	t.Helper()
	n := 0
	var found []string
	diffs, out := runReplay(t, path)
	if diffs != 0 {
		found = append(found, fmt.Sprintf("orderstate replay: %d orders would change:\n%s", diffs, out))
		n += diffs
	}
	db := openStore(t, path)
	defer db.Close()
	audit, err := db.Audit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		n    int64
	}{
		{"events without their raw request", audit.EventsWithoutRaw},
		{"orders no event names", audit.OrdersWithoutEvents},
		{"orders without an alias", audit.OrdersWithoutAlias},
		{"foreign keys that point nowhere", audit.ForeignKeyViolations},
	} {
		if c.n != 0 {
			found = append(found, fmt.Sprintf("%d %s", c.n, c.what))
			n += int(c.n)
		}
	}
	if audit.Integrity != "ok" {
		found = append(found, "integrity_check: "+audit.Integrity)
		n++
	}
	return n, found
}
