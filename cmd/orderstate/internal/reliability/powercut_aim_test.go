package reliability

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/orderstate/orderstate/internal/powercut"
)

// aim is a way of choosing the moment the power goes.
type aim int

const (
	aimTimed          aim = iota // after a random while
	aimWrite                     // inside the n-th write from then
	aimSync                      // as the n-th sync from then begins
	aimAhead                     // as a GET shows an event not yet acknowledged
	aimCheckpointCopy            // inside the n-th write to the database file: a checkpoint copying pages into it
	aimCheckpointSync            // as the sync of the database file that ends a checkpoint begins
	aimRestartHeader             // as the log starts over: the write of its new header at offset 0
	aimRestartFrames             // inside the n-th write to the log after it started over
	aimRestartFlush              // as the n-th sync of the log after it started over begins
	aimReportFile                // inside the n-th write to a report file
	numAims
)

var aimNames = [numAims]string{
	aimTimed: "timed", aimWrite: "write", aimSync: "sync", aimAhead: "ahead",
	aimCheckpointCopy: "checkpoint-copy", aimCheckpointSync: "checkpoint-sync",
	aimRestartHeader: "restart-header", aimRestartFrames: "restart-frames", aimRestartFlush: "restart-flush",
	aimReportFile: "report-file",
}

var powercutAims = flag.String("powercut.aims", "", "comma-separated aims the power-cut tests draw their cuts from (empty: all, by aimWeights): "+strings.Join(aimNames[:], ", "))

// aimWeights are how often each aim is drawn, out of 16: 3 of 16 cuts aim
// at the checkpointer (its copy into the database file, its sync of it),
// 3 of 16 at the log's restart (its new header, the first frames and syncs
// after it), 1 of 16 at a report's files being written.
var aimWeights = [numAims]int{
	aimTimed: 2, aimWrite: 2, aimSync: 2, aimAhead: 3,
	aimCheckpointCopy: 2, aimCheckpointSync: 1,
	aimRestartHeader: 1, aimRestartFrames: 1, aimRestartFlush: 1,
	aimReportFile: 1,
}

func (a aim) checkpoint() bool { return a == aimCheckpointCopy || a == aimCheckpointSync }
func (a aim) restart() bool {
	return a == aimRestartHeader || a == aimRestartFrames || a == aimRestartFlush
}

func (r *powerRun) pickAim() aim {
	weights := aimWeights
	if *powercutAims != "" {
		weights = [numAims]int{}
		for _, name := range strings.Split(*powercutAims, ",") {
			i := slices.Index(aimNames[:], strings.TrimSpace(name))
			if i < 0 {
				r.t.Fatalf("-powercut.aims: no aim %q; the aims are %s", name, strings.Join(aimNames[:], ", "))
			}
			weights[i] = 1
		}
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.rng.IntN(total)
	for a, w := range weights {
		if n < w {
			return aim(a)
		}
		n -= w
	}
	panic("unreachable")
}

// The files of the store, as the mount names them.
const (
	dbFile  = storeName
	walFile = storeName + "-wal"
)

// nth fires at the n-th write (or sync) of any file, or of the files
// whose path starts with file when it is not empty.
func nth(n int, sync bool, file string) func(powercut.Op) bool {
	seen := 0
	return func(op powercut.Op) bool {
		if op.Sync == sync && strings.HasPrefix(op.Path, file) {
			seen++
		}
		return seen >= n
	}
}

// afterRestart fires once the log has started over (SQLite writes a new
// header at its offset 0, then the frames of the first commit after it):
// at that header's write for k == 0, else at the k-th write (or sync) of
// the log that follows it.
func afterRestart(k int, sync bool) func(powercut.Op) bool {
	restarted, seen := false, 0
	return func(op powercut.Op) bool {
		if op.Path != walFile {
			return false
		}
		if !op.Sync && op.Offset == 0 {
			restarted, seen = true, 0
			return k == 0
		}
		if restarted && op.Sync == sync {
			seen++
		}
		return restarted && k > 0 && seen >= k
	}
}

// cut cuts the power as a aims, and says how.
func (a aim) cut(r *powerRun, lf *life, tear bool, begun *atomic.Bool) (string, *powercut.CutReport, error) {
	f := r.fs
	now := func() (*powercut.CutReport, error) {
		begun.Store(true)
		return f.Cut(tear)
	}
	// armed waits up to wait for the trigger, cutting from here if it
	// has not fired by then. lull holds the traffic back for a moment
	// every half second meanwhile: the log starts over only when the
	// checkpointer has copied all of it, which under steady traffic it
	// never quite does.
	armed := func(how string, fire func(powercut.Op) bool, lull bool, wait time.Duration) (string, *powercut.CutReport, error) {
		ch := f.CutWhen(tear, fire)
		deadline := time.After(wait)
		var tick <-chan time.Time
		if lull {
			tk := time.NewTicker(500 * time.Millisecond)
			defer tk.Stop()
			tick = tk.C
			lf.ld.quiet(150 * time.Millisecond)
		}
		for {
			select {
			case res := <-ch:
				begun.Store(true)
				r.aims.fired[a]++
				return how, res.Report, res.Err
			case <-tick:
				lf.ld.quiet(150 * time.Millisecond)
			case <-deadline:
				rep, err := now()
				if errors.Is(err, powercut.ErrNotMounted) {
					// It fired as the wait ended.
					res := <-ch
					r.aims.fired[a]++
					return how, res.Report, res.Err
				}
				return fmt.Sprintf("%s (not reached in %v; cut from here)", how, wait), rep, err
			}
		}
	}
	const wait, restartWait = 20 * time.Second, 8 * time.Second
	if a != aimTimed && a != aimAhead && !a.restart() {
		// A while under load first, up to 2.5 s, so the life sees the
		// reconciler's jobs (each second) and the store grows between
		// cuts.
		time.Sleep(time.Duration(r.rng.IntN(2500)) * time.Millisecond)
	}
	switch a {
	case aimTimed:
		d := time.Duration(r.rng.IntN(800)) * time.Millisecond
		time.Sleep(d)
		rep, err := now()
		return fmt.Sprintf("after %v", d), rep, err
	case aimWrite:
		n := 1 + r.rng.IntN(400)
		return armed(fmt.Sprintf("at write %d from then", n), nth(n, false, ""), false, wait)
	case aimSync:
		// As the store starts to flush: what it answered before the
		// flush, and only that, is lost.
		n := 1 + r.rng.IntN(40)
		return armed(fmt.Sprintf("as sync %d from then began", n), nth(n, true, ""), false, wait)
	case aimAhead:
		// Right after an answer listed an event whose sender has not been
		// answered yet: the moment a read may be ahead of the disk.
		how := "as a GET listed an unacknowledged event"
		select {
		case <-lf.aheadC:
		case <-time.After(3 * time.Second):
			how = "after 3s in which no GET listed an unacknowledged event"
		}
		rep, err := now()
		return how, rep, err
	case aimCheckpointCopy:
		n := 1 + r.rng.IntN(32)
		return armed(fmt.Sprintf("in a checkpoint, at write %d to the database file from then", n), nth(n, false, dbFile), false, wait)
	case aimCheckpointSync:
		n := 1 + r.rng.IntN(2)
		return armed(fmt.Sprintf("as a checkpoint's sync %d of the database file from then began", n), nth(n, true, dbFile), false, wait)
	case aimRestartHeader:
		return armed("as the log started over, at the write of its header", afterRestart(0, false), true, restartWait)
	case aimRestartFrames:
		k := 1 + r.rng.IntN(8)
		return armed(fmt.Sprintf("at write %d to the log after it started over", k), afterRestart(k, false), true, restartWait)
	case aimRestartFlush:
		k := 1 + r.rng.IntN(2)
		return armed(fmt.Sprintf("as sync %d of the log after it started over began", k), afterRestart(k, true), true, restartWait)
	case aimReportFile:
		// The report is stored by then; its files are being written.
		n := 1 + r.rng.IntN(3)
		return armed(fmt.Sprintf("at write %d to a report file", n), nth(n, false, reportsDir+"/"), false, wait)
	}
	panic(fmt.Sprintf("aim %d", a))
}

// aimCounts counts the cuts by aim and where they landed.
type aimCounts struct {
	aimed, fired [numAims]int
	// inCheckpoint counts the cuts that found the database file with
	// pages a checkpoint had copied into it and not yet synced, or that
	// fired at a write or sync of that file; inRestart, those that found
	// the log's first page not yet synced (its new header or the first
	// frames after it), or that fired in the log's restart.
	inCheckpoint, inRestart int
}

// landed counts a cut of aim a and says where it landed.
func (ac *aimCounts) landed(a aim, rep *powercut.CutReport) string {
	ac.aimed[a]++
	ckpt, restart := false, false
	if at := rep.At; at != nil {
		ckpt = at.Path == dbFile
		restart = a.restart() || at.Path == walFile && !at.Sync && at.Offset == 0
	}
	for _, d := range rep.Dropped {
		ckpt = ckpt || d.Path == dbFile && d.Bytes > 0
		restart = restart || d.Path == walFile && d.From == 0
	}
	var where []string
	if ckpt {
		ac.inCheckpoint++
		where = append(where, "in a checkpoint")
	}
	if restart {
		ac.inRestart++
		where = append(where, "in the log's restart")
	}
	if len(where) == 0 {
		return ""
	}
	return " [" + strings.Join(where, ", ") + "]"
}

func (ac *aimCounts) summary() string {
	var ckAimed, ckFired, rsAimed, rsFired int
	for a := range numAims {
		switch {
		case a.checkpoint():
			ckAimed += ac.aimed[a]
			ckFired += ac.fired[a]
		case a.restart():
			rsAimed += ac.aimed[a]
			rsFired += ac.fired[a]
		}
	}
	return fmt.Sprintf("cuts aimed at a checkpoint %d (reached %d), at the log's restart %d (reached %d); "+
		"cuts that landed in a checkpoint %d, in the log's restart %d",
		ckAimed, ckFired, rsAimed, rsFired, ac.inCheckpoint, ac.inRestart)
}
