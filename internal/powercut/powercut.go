package powercut

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Options configures a mount. The zero value is usable.
type Options struct {
	// PageSize is the unit of the in-memory overlay and of tearing. It
	// must be a power of two; 0 means 4096.
	PageSize int

	// LieOnFsync makes fsync and fdatasync of files report success
	// without persisting anything, like a disk that acknowledges a cache
	// flush it never did. A harness run with it must detect lost data.
	// Unmount still writes everything out.
	LieOnFsync bool

	// Passthrough, if set, picks the files (by their path relative to the
	// mount root when opened or created) that bypass the model: their
	// writes reach the backing file at once and the kernel maps them
	// straight from it. Use SQLiteShm for a SQLite database in WAL mode.
	Passthrough func(rel string) bool

	// SyncDelay makes each fsync and fdatasync of a file take that long
	// before it persists anything, like a disk slow to flush: what a
	// program shows before its flush returns is then in view for longer,
	// and a cut meanwhile loses what the flush would have kept.
	SyncDelay time.Duration

	// Seed seeds the random choices of tearing; 0 takes one from the
	// clock. The seed in use is in CutReport.Seed.
	Seed uint64

	// Debug logs every FUSE request and reply.
	Debug bool
}

// SQLiteShm selects SQLite's shared-memory wal-index files (name-shm),
// which SQLite mmaps and rebuilds after a crash, for Options.Passthrough.
func SQLiteShm(rel string) bool { return strings.HasSuffix(rel, "-shm") }

// Stats counts what the program under test did through the mount. The
// Pending fields describe the present moment; the rest are totals since
// Mount.
type Stats struct {
	Writes     uint64 // write requests to overlay files
	WriteBytes uint64 // bytes they carried
	Truncates  uint64 // size changes of overlay files (truncate, ftruncate, O_TRUNC)
	Syncs      uint64 // fsync and fdatasync requests on overlay files
	LiedSyncs  uint64 // those of Syncs answered without persisting (LieOnFsync)
	DirSyncs   uint64 // fsync requests on directories

	// PassthroughIO counts reads and writes of passthrough files that
	// reached this process. With kernel passthrough it stays 0: the
	// kernel serves them from the backing files.
	PassthroughIO uint64

	PendingFiles int   // overlay files with unsynced changes
	PendingBytes int64 // unsynced data, counted in whole pages
}

// CutReport says what a cut threw away.
type CutReport struct {
	DroppedFiles int   // files whose unsynced changes were dropped
	DroppedBytes int64 // unsynced data dropped, counted in whole pages
	// Dropped lists those files, with what each lost.
	Dropped []Dropped
	Torn    *Tear // the partly persisted write, if Cut was asked to tear and there was one
	// At is the request an armed cut (CutAtWrite, CutAtSync, CutWhen)
	// fired at; nil for Cut.
	At   *Op
	Seed uint64
}

// Dropped is what a cut threw away of one file.
type Dropped struct {
	Path  string // relative to the mount root (empty if the name is no longer known)
	Bytes int64  // unsynced data, counted in whole pages
	// From is the offset of the lowest unsynced page, -1 when only a size
	// change was pending.
	From int64
	// Resized says a truncate or an extension of the file was pending.
	Resized bool
}

// Op is a write or a sync of an overlay file, as a trigger armed by
// CutWhen sees it.
type Op struct {
	Sync   bool   // an fsync or fdatasync; otherwise a write
	Path   string // the file, relative to the mount root (empty if it has no name)
	Offset int64  // where a write began
	Len    int    // how many bytes a write carried
}

func (o Op) String() string {
	if o.Sync {
		return "sync of " + o.Path
	}
	return fmt.Sprintf("write of %d bytes at %d of %s", o.Len, o.Offset, o.Path)
}

// Tear describes the write that Cut(true) persisted in part: the bytes
// [Offset, Offset+Kept) of a write of Len bytes at Offset are in the
// backing file, the rest of it is not.
type Tear struct {
	Path   string // relative to the mount root (empty if the name is no longer known)
	Offset int64
	Len    int
	Kept   int
}

// ErrNotMounted is returned by Cut and Unmount once the file system has
// already been cut or unmounted.
var ErrNotMounted = errors.New("powercut: not mounted")

type mountState int

const (
	live mountState = iota
	cut
	unmounted
)

// FS is a mounted powercut file system.
type FS struct {
	backing    string
	mountpoint string
	opts       Options
	pageSize   int64

	server            *fuse.Server
	served            chan struct{}
	kernelPassthrough bool

	mu           sync.Mutex
	state        mountState
	files        map[fileKey]*fileState
	seq          uint64
	seed         uint64
	rng          *rand.Rand
	stats        Stats
	pendingPages int64
	trigger      *trigger
}

// Mount serves backing at mountpoint until Cut or Unmount. Both must be
// existing directories; the mountpoint should be empty.
func Mount(backing, mountpoint string, opts Options) (*FS, error) {
	if opts.PageSize == 0 {
		opts.PageSize = 4096
	}
	if opts.PageSize < 512 || opts.PageSize&(opts.PageSize-1) != 0 {
		return nil, fmt.Errorf("powercut: page size %d is not a power of two of at least 512", opts.PageSize)
	}
	var err error
	if backing, err = absDir(backing); err != nil {
		return nil, err
	}
	if mountpoint, err = absDir(mountpoint); err != nil {
		return nil, err
	}
	seed := opts.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	f := &FS{
		backing:    backing,
		mountpoint: mountpoint,
		opts:       opts,
		pageSize:   int64(opts.PageSize),
		served:     make(chan struct{}),
		files:      make(map[fileKey]*fileState),
		seed:       seed,
		rng:        rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
	}

	timeout := time.Second
	fsopts := &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName: "powercut",
			Name:   "powercut",
			// mount(2) directly: no fusermount needed, but root is.
			DirectMountStrict: true,
			// Let other users reach the mount (a program under test
			// may run under another uid) and let the kernel check
			// permissions from the attributes.
			AllowOther:    true,
			Options:       []string{"default_permissions"},
			DisableXAttrs: true,
			Debug:         opts.Debug,
		},
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
	}
	root := &node{fsys: f}
	server, err := fuse.NewServer(fs.NewNodeFS(root, fsopts), mountpoint, &fsopts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("powercut: mount %s: %w", mountpoint, err)
	}
	f.server = server
	// The kernel has answered INIT, so passthrough can be probed; do it
	// before serving, as handlers read the result.
	if opts.Passthrough != nil {
		f.kernelPassthrough = f.probePassthrough()
	}
	go func() {
		server.Serve()
		close(f.served)
	}()
	if err := server.WaitMount(); err != nil {
		_ = syscall.Unmount(mountpoint, syscall.MNT_DETACH)
		return nil, fmt.Errorf("powercut: mount %s: %w", mountpoint, err)
	}
	return f, nil
}

func absDir(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("powercut: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("powercut: %s is not a directory", p)
	}
	return p, nil
}

// probePassthrough reports whether the kernel accepts backing files for
// FUSE passthrough on this connection.
func (f *FS) probePassthrough() bool {
	fd, err := unix.Open(f.backing, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		tmp, err := os.CreateTemp(f.backing, ".powercut-probe-*")
		if err != nil {
			return false
		}
		defer tmp.Close()
		_ = os.Remove(tmp.Name())
		fd = int(tmp.Fd())
	} else {
		defer unix.Close(fd)
	}
	id, errno := f.server.RegisterBackingFd(&fuse.BackingMap{Fd: int32(fd)})
	if errno != 0 {
		return false
	}
	f.server.UnregisterBackingFd(id)
	return true
}

// KernelPassthrough reports whether the files chosen by
// Options.Passthrough are served by the kernel from the backing files
// (FUSE passthrough). If not, they are still passed through, but their
// reads, writes and page faults are served by this process: mmapping them
// from a goroutine of this same process can then deadlock.
func (f *FS) KernelPassthrough() bool { return f.kernelPassthrough }

// Backing returns the backing directory.
func (f *FS) Backing() string { return f.backing }

// Mountpoint returns where the file system is mounted.
func (f *FS) Mountpoint() string { return f.mountpoint }

// Done is closed when the FUSE connection has ended: after Unmount, or
// after Cut once every file opened through the mount has been closed.
func (f *FS) Done() <-chan struct{} { return f.served }

// Live reports whether the power is still on: false from the moment a cut
// begins (by Cut or by an armed trigger) or Unmount. A cut takes the same
// lock, so whatever a program answered before a call that returns true
// was answered before the cut.
func (f *FS) Live() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state == live
}

// Stats returns the counters.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	for _, st := range f.files {
		if st.dirty && !st.orphan {
			s.PendingFiles++
		}
	}
	s.PendingBytes = f.pendingPages * f.pageSize
	return s
}

// Cut simulates a power cut: it drops every unsynced write and size
// change, persists a random page-aligned prefix of the last unsynced write
// if tear is set, and detaches the mount. From then on every operation on
// files still open through the mount fails with EIO, the mountpoint shows
// the directory underneath, and the backing directory holds the state
// after the power loss. An fsync that is being served when Cut is called
// completes (and is durable) first.
func (f *FS) Cut(tear bool) (*CutReport, error) {
	f.mu.Lock()
	if f.state != live {
		f.mu.Unlock()
		return nil, ErrNotMounted
	}
	rep, err := f.cutLocked(tear)
	f.mu.Unlock()
	return rep, errors.Join(err, f.detach())
}

// CutResult is the outcome of a cut armed with CutAtWrite.
type CutResult struct {
	Report *CutReport
	Err    error
}

// CutAtWrite arms a cut that happens inside the n-th write request to an
// overlay file from now on (n >= 1): that write is applied (so with tear
// it is the write that gets torn), the power is cut as by Cut(tear), and
// the write fails with EIO. This puts cuts between a program's writes and
// its fsync, where a cut from outside rarely lands. The result is sent on
// the returned channel. Arming again replaces the previous trigger, whose
// channel then never receives.
func (f *FS) CutAtWrite(n int, tear bool) <-chan CutResult {
	seen := 0
	return f.CutWhen(tear, func(op Op) bool {
		if !op.Sync {
			seen++
		}
		return seen >= n
	})
}

// CutAtSync arms a cut that happens as the n-th fsync or fdatasync of an
// overlay file from now on (n >= 1) arrives, before it makes anything
// durable: the power goes just as a program starts to flush. A program
// that answered its callers before that flush loses what it answered for;
// one that waits for it loses nothing it answered. Arming again replaces
// the previous trigger.
func (f *FS) CutAtSync(n int, tear bool) <-chan CutResult {
	seen := 0
	return f.CutWhen(tear, func(op Op) bool {
		if op.Sync {
			seen++
		}
		return seen >= n
	})
}

// CutWhen arms a cut at the first write or sync of an overlay file from
// now on for which fire returns true. A write is applied first (with tear
// it is the write that gets torn) and then fails with EIO, as with
// CutAtWrite; a sync is cut as it arrives, before it persists anything,
// and fails, as with CutAtSync. This aims a cut at one file or one moment
// of a program's protocol: a write to a database file (a checkpoint
// copying pages into it), the sync of that file that ends a checkpoint, a
// write at offset 0 of a write-ahead log (the log starting over).
//
// fire sees every write and sync through the mount in the order they are
// served, under the file system's lock: it may count and keep state
// (calls never overlap), but it must be quick and must not call the FS.
// The op it fired at is in CutReport.At. Arming again replaces the
// previous trigger, whose channel then never receives.
func (f *FS) CutWhen(tear bool, fire func(Op) bool) <-chan CutResult {
	ch := make(chan CutResult, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state != live {
		ch <- CutResult{Err: ErrNotMounted}
		return ch
	}
	f.trigger = &trigger{fire: fire, tear: tear, ch: ch}
	return ch
}

type trigger struct {
	fire func(Op) bool
	tear bool
	ch   chan CutResult
}

// firedLocked cuts the power if the armed trigger fires at op, a write
// just applied or a sync just arrived.
func (f *FS) firedLocked(op Op) bool {
	t := f.trigger
	if t == nil || !t.fire(op) {
		return false
	}
	rep, err := f.cutLocked(t.tear)
	rep.At = &op
	go func() {
		t.ch <- CutResult{Report: rep, Err: errors.Join(err, f.detach())}
	}()
	return true
}

// cutLocked drops the overlay and marks the file system dead.
func (f *FS) cutLocked(tear bool) (*CutReport, error) {
	f.state = cut
	f.trigger = nil
	rep := &CutReport{Seed: f.seed, DroppedBytes: f.pendingPages * f.pageSize}
	var err error
	if tear {
		rep.Torn, err = f.tearLocked()
	}
	for _, s := range f.files {
		if s.dirty && !s.orphan {
			rep.DroppedFiles++
			rep.Dropped = append(rep.Dropped, f.droppedLocked(s))
		}
		f.forgetLocked(s)
	}
	slices.SortFunc(rep.Dropped, func(a, b Dropped) int { return strings.Compare(a.Path, b.Path) })
	return rep, err
}

// droppedLocked describes the unsynced changes of s.
func (f *FS) droppedLocked(s *fileState) Dropped {
	d := Dropped{Path: f.nameLocked(s), Bytes: int64(len(s.pages)) * f.pageSize, From: -1, Resized: s.floor >= 0}
	for p := range s.pages {
		if d.From < 0 || p*f.pageSize < d.From {
			d.From = p * f.pageSize
		}
	}
	var st syscall.Stat_t
	if syscall.Fstat(s.fd, &st) == nil && st.Size != s.size {
		d.Resized = true
	}
	return d
}

func (f *FS) detach() error {
	if err := syscall.Unmount(f.mountpoint, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("powercut: detach %s: %w", f.mountpoint, err)
	}
	return nil
}

// Unmount is the orderly shutdown: it writes every pending change to the
// backing files (as a clean unmount writes back the page cache, whatever
// LieOnFsync says), fsyncs them and unmounts. Files open through the mount
// should be closed first; if the mount is still busy it is detached
// lazily and an error says so.
func (f *FS) Unmount() error {
	f.mu.Lock()
	if f.state != live {
		f.mu.Unlock()
		return ErrNotMounted
	}
	var errs []error
	for _, s := range f.files {
		if !s.orphan {
			if err := f.flushLocked(s, false); err != nil {
				errs = append(errs, fmt.Errorf("powercut: flush %s: %w", f.nameLocked(s), err))
			}
		}
		f.forgetLocked(s)
	}
	f.state = unmounted
	f.trigger = nil
	f.mu.Unlock()

	if err := f.server.Unmount(); err != nil {
		if derr := syscall.Unmount(f.mountpoint, syscall.MNT_DETACH); derr != nil {
			errs = append(errs, fmt.Errorf("powercut: unmount %s: %w", f.mountpoint, derr))
		} else {
			errs = append(errs, fmt.Errorf("powercut: %s was busy (%v); detached lazily", f.mountpoint, err))
		}
		return errors.Join(errs...)
	}
	select {
	case <-f.served:
	case <-time.After(10 * time.Second):
		errs = append(errs, fmt.Errorf("powercut: %s unmounted but the FUSE server did not stop", f.mountpoint))
	}
	return errors.Join(errs...)
}

// alive returns EIO once the file system has been cut or unmounted.
// f.mu must be held.
func (f *FS) aliveLocked() syscall.Errno {
	if f.state != live {
		return syscall.EIO
	}
	return 0
}

func (f *FS) passthrough(rel string) bool {
	return f.opts.Passthrough != nil && f.opts.Passthrough(rel)
}
