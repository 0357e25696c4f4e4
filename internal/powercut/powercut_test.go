package powercut

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// mountT mounts backing on a fresh mountpoint. The mount is cut (detached)
// at the end of the test if the test has not cut or unmounted it, so a
// failing test leaves no mount behind.
func mountT(t *testing.T, backing string, opts Options) (*FS, string) {
	t.Helper()
	mp := t.TempDir()
	f, err := Mount(backing, mp, opts)
	require.NoError(t, err, "mounting needs root and /dev/fuse")
	t.Cleanup(func() {
		if _, err := f.Cut(false); err != nil && !errors.Is(err, ErrNotMounted) {
			t.Errorf("cleanup: %v", err)
		}
		assertNotMounted(t, mp)
	})
	return f, mp
}

// assertNotMounted checks that nothing is mounted on dir any more.
func assertNotMounted(t *testing.T, dir string) {
	t.Helper()
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	for _, line := range bytes.Split(mounts, []byte("\n")) {
		fields := bytes.Fields(line)
		if len(fields) > 4 && string(fields[4]) == dir {
			t.Errorf("still mounted: %s", line)
		}
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, ents, "mountpoint %s after the cut", dir)
}

func fill(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

func readBacking(t *testing.T, backing, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(backing, name))
	require.NoError(t, err)
	return b
}

func TestUnsyncedWritesAreLostAtCut(t *testing.T) {
	backing := t.TempDir()
	f, mp := mountT(t, backing, Options{})
	name := filepath.Join(mp, "f")

	fh, err := os.Create(name)
	require.NoError(t, err)
	data := fill('a', 10000)
	_, err = fh.Write(data)
	require.NoError(t, err)

	// The process sees its writes, through another descriptor too.
	got, err := os.ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, data, got)
	st, err := os.Stat(name)
	require.NoError(t, err)
	assert.EqualValues(t, 10000, st.Size())

	// The disk does not: the file exists (creation is durable), empty.
	assert.Empty(t, readBacking(t, backing, "f"))
	stats := f.Stats()
	assert.EqualValues(t, 1, stats.Writes)
	assert.EqualValues(t, 10000, stats.WriteBytes)
	assert.Equal(t, 1, stats.PendingFiles)
	assert.EqualValues(t, 3*4096, stats.PendingBytes)

	// Closing does not sync; a reopened file still reads the overlay.
	require.NoError(t, fh.Close())
	got, err = os.ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, data, got)

	fh, err = os.OpenFile(name, os.O_RDWR, 0)
	require.NoError(t, err)
	rep, err := f.Cut(false)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.DroppedFiles)
	assert.EqualValues(t, 3*4096, rep.DroppedBytes)
	assert.Nil(t, rep.Torn)

	// A file still open through the dead mount fails.
	_, err = fh.Write([]byte("x"))
	assert.ErrorIs(t, err, syscall.EIO)
	_, err = fh.ReadAt(make([]byte, 1), 0)
	assert.ErrorIs(t, err, syscall.EIO)
	assert.ErrorIs(t, fh.Sync(), syscall.EIO)
	fh.Close()

	assertEmptyDir(t, mp)
	assert.Empty(t, readBacking(t, backing, "f"))
	select {
	case <-f.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the FUSE connection did not end after the last file was closed")
	}
	_, err = f.Cut(false)
	assert.ErrorIs(t, err, ErrNotMounted)
}

func TestCutKeepsExactlyTheSyncedState(t *testing.T) {
	backing := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(backing, "f"), fill('o', 6000), 0o644))
	f, mp := mountT(t, backing, Options{})
	name := filepath.Join(mp, "f")

	fh, err := os.OpenFile(name, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = fh.WriteAt(fill('a', 5000), 3000) // overwrite and extend: 8000 bytes
	require.NoError(t, err)
	require.NoError(t, fh.Sync())
	synced := append(fill('o', 3000), fill('a', 5000)...)
	assert.Equal(t, synced, readBacking(t, backing, "f"), "fsync writes the overlay through")

	// After the sync: an overwrite, an extension, a truncate below the
	// synced size, another extension by a write past the end.
	_, err = fh.WriteAt(fill('b', 100), 0)
	require.NoError(t, err)
	_, err = fh.WriteAt(fill('c', 4000), 8000)
	require.NoError(t, err)
	require.NoError(t, fh.Truncate(1000))
	_, err = fh.WriteAt(fill('d', 10), 20000)
	require.NoError(t, err)

	want := make([]byte, 20010)
	copy(want, fill('b', 100))
	copy(want[100:], fill('o', 900))
	copy(want[20000:], fill('d', 10))
	got, err := os.ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, want, got, "the mount shows every write and the truncate")
	assert.Equal(t, synced, readBacking(t, backing, "f"))

	_, err = f.Cut(false)
	require.NoError(t, err)
	fh.Close()
	assert.Equal(t, synced, readBacking(t, backing, "f"), "only the synced state survives")
}

func TestFdatasyncAndTruncateBecomeDurable(t *testing.T) {
	backing := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(backing, "f"), fill('o', 10000), 0o644))
	f, mp := mountT(t, backing, Options{})
	name := filepath.Join(mp, "f")

	// truncate by name (no open file), then a write, then fdatasync.
	require.NoError(t, os.Truncate(name, 5000))
	fh, err := os.OpenFile(name, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = fh.WriteAt(fill('x', 10), 7000)
	require.NoError(t, err)
	require.NoError(t, unix.Fdatasync(int(fh.Fd())))
	want := make([]byte, 7010)
	copy(want, fill('o', 5000))
	copy(want[7000:], fill('x', 10))
	assert.Equal(t, want, readBacking(t, backing, "f"))

	// A pending truncate alone is lost at a cut.
	require.NoError(t, fh.Truncate(0))
	st, err := fh.Stat()
	require.NoError(t, err)
	assert.EqualValues(t, 0, st.Size())
	_, err = f.Cut(false)
	require.NoError(t, err)
	fh.Close()
	assert.Equal(t, want, readBacking(t, backing, "f"))
}

func TestMetadataIsDurableAtOnce(t *testing.T) {
	backing := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(backing, "old"), fill('o', 100), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(backing, "gone"), fill('g', 100), 0o644))
	f, mp := mountT(t, backing, Options{})

	// The "write a temporary file, rename it over" mistake: without an
	// fsync of the new file, the rename survives and the data does not.
	require.NoError(t, os.WriteFile(filepath.Join(mp, "tmp"), fill('n', 100), 0o644))
	require.NoError(t, os.Rename(filepath.Join(mp, "tmp"), filepath.Join(mp, "old")))
	got, err := os.ReadFile(filepath.Join(mp, "old"))
	require.NoError(t, err)
	assert.Equal(t, fill('n', 100), got)

	require.NoError(t, os.Mkdir(filepath.Join(mp, "dir"), 0o755))
	fh, err := os.Create(filepath.Join(mp, "dir", "synced"))
	require.NoError(t, err)
	_, err = fh.Write([]byte("kept"))
	require.NoError(t, err)
	require.NoError(t, fh.Sync())
	require.NoError(t, fh.Close())

	// Data pending in a file that is then removed does not resurrect.
	require.NoError(t, os.WriteFile(filepath.Join(mp, "gone"), fill('G', 50), 0o644))
	require.NoError(t, os.Remove(filepath.Join(mp, "gone")))
	require.NoError(t, os.WriteFile(filepath.Join(mp, "new"), fill('N', 50), 0o644))

	_, err = f.Cut(false)
	require.NoError(t, err)

	assert.Empty(t, readBacking(t, backing, "old"), "renamed-over file keeps only its synced (empty) content")
	assert.Equal(t, []byte("kept"), readBacking(t, backing, "dir/synced"))
	assert.Empty(t, readBacking(t, backing, "new"))
	_, err = os.Stat(filepath.Join(backing, "gone"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(filepath.Join(backing, "tmp"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestTearKeepsAPageAlignedPrefixOfTheLastWrite(t *testing.T) {
	seen := map[int]bool{}
	for seed := uint64(1); seed <= 6; seed++ {
		backing := t.TempDir()
		base := fill('o', 3*4096)
		require.NoError(t, os.WriteFile(filepath.Join(backing, "f"), base, 0o644))
		f, mp := mountT(t, backing, Options{Seed: seed})
		fh, err := os.OpenFile(filepath.Join(mp, "f"), os.O_RDWR, 0)
		require.NoError(t, err)

		// An earlier unsynced write, in another file and in this one.
		require.NoError(t, os.WriteFile(filepath.Join(mp, "other"), fill('e', 5000), 0o644))
		_, err = fh.WriteAt(fill('e', 500), 0)
		require.NoError(t, err)
		// The last write: five pages' worth from an unaligned offset.
		const off, n = 1000, 5 * 4096
		_, err = fh.WriteAt(fill('x', n), off)
		require.NoError(t, err)

		rep, err := f.Cut(true)
		require.NoError(t, err)
		fh.Close()
		require.NotNil(t, rep.Torn)
		tear := *rep.Torn
		assert.Equal(t, "f", tear.Path)
		assert.EqualValues(t, off, tear.Offset)
		assert.Equal(t, n, tear.Len)
		assert.Greater(t, tear.Kept, 0)
		assert.Less(t, tear.Kept, n)
		assert.Zero(t, (off+tear.Kept)%4096, "the kept prefix ends on a page boundary")
		seen[tear.Kept] = true

		want := append([]byte(nil), base...)
		if end := off + tear.Kept; end > len(want) {
			want = append(want, make([]byte, end-len(want))...)
		}
		copy(want[off:], fill('x', tear.Kept))
		assert.Equal(t, want, readBacking(t, backing, "f"), "seed %d: synced state plus the kept prefix, nothing else", seed)
		assert.Empty(t, readBacking(t, backing, "other"))
	}
	assert.Greater(t, len(seen), 1, "different seeds tear at different places")
}

func TestTearWithoutPendingWritesKeepsTheSyncedState(t *testing.T) {
	backing := t.TempDir()
	f, mp := mountT(t, backing, Options{})
	fh, err := os.Create(filepath.Join(mp, "f"))
	require.NoError(t, err)
	_, err = fh.Write(fill('a', 9000))
	require.NoError(t, err)
	require.NoError(t, fh.Sync())
	rep, err := f.Cut(true)
	require.NoError(t, err)
	fh.Close()
	assert.Nil(t, rep.Torn)
	assert.Zero(t, rep.DroppedFiles)
	assert.Equal(t, fill('a', 9000), readBacking(t, backing, "f"))
}

func TestLieOnFsyncPersistsNothing(t *testing.T) {
	backing := t.TempDir()
	f, mp := mountT(t, backing, Options{LieOnFsync: true})
	fh, err := os.Create(filepath.Join(mp, "f"))
	require.NoError(t, err)
	_, err = fh.Write(fill('a', 100))
	require.NoError(t, err)
	require.NoError(t, fh.Sync(), "the lie: fsync reports success")
	st := f.Stats()
	assert.EqualValues(t, 1, st.Syncs)
	assert.EqualValues(t, 1, st.LiedSyncs)
	_, err = f.Cut(false)
	require.NoError(t, err)
	fh.Close()
	assert.Empty(t, readBacking(t, backing, "f"))
}

func TestUnmountPersistsEverything(t *testing.T) {
	backing := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(backing, "shrink"), fill('s', 9000), 0o644))
	f, mp := mountT(t, backing, Options{LieOnFsync: true})

	require.NoError(t, os.WriteFile(filepath.Join(mp, "a"), fill('a', 12345), 0o644))
	require.NoError(t, os.Truncate(filepath.Join(mp, "shrink"), 10))
	fh, err := os.OpenFile(filepath.Join(mp, "append"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	for range 3 {
		_, err = fh.Write([]byte("line\n"))
		require.NoError(t, err)
	}
	require.NoError(t, fh.Sync()) // a lie: still pending
	require.NoError(t, fh.Close())
	assert.Empty(t, readBacking(t, backing, "append"))

	require.NoError(t, f.Unmount())
	assertNotMounted(t, mp)
	select {
	case <-f.Done():
	default:
		t.Error("Unmount returned before the FUSE server stopped")
	}
	assert.Equal(t, fill('a', 12345), readBacking(t, backing, "a"))
	assert.Equal(t, fill('s', 10), readBacking(t, backing, "shrink"))
	assert.Equal(t, []byte("line\nline\nline\n"), readBacking(t, backing, "append"))
	assert.ErrorIs(t, f.Unmount(), ErrNotMounted)
}

// The kernel enforces POSIX advisory locks among the users of the mount:
// open file description locks (F_OFD_SETLK) conflict even within one
// process.
func TestLocksAreEnforcedOnTheMount(t *testing.T) {
	backing := t.TempDir()
	_, mp := mountT(t, backing, Options{})
	name := filepath.Join(mp, "locked")
	a, err := os.Create(name)
	require.NoError(t, err)
	defer a.Close()
	b, err := os.OpenFile(name, os.O_RDWR, 0)
	require.NoError(t, err)
	defer b.Close()

	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	require.NoError(t, unix.FcntlFlock(a.Fd(), unix.F_OFD_SETLK, &lk))
	lk2 := lk
	err = unix.FcntlFlock(b.Fd(), unix.F_OFD_SETLK, &lk2)
	assert.ErrorIs(t, err, unix.EAGAIN)
	lk.Type = unix.F_UNLCK
	require.NoError(t, unix.FcntlFlock(a.Fd(), unix.F_OFD_SETLK, &lk))
	lk2.Type = unix.F_WRLCK
	assert.NoError(t, unix.FcntlFlock(b.Fd(), unix.F_OFD_SETLK, &lk2))
}

// Overlay files cannot be mmapped shared (they are opened with direct
// I/O); passthrough files can, and the mapping is the backing file's.
func TestMmap(t *testing.T) {
	backing := t.TempDir()
	f, mp := mountT(t, backing, Options{Passthrough: SQLiteShm})
	require.True(t, f.KernelPassthrough(), "this kernel has no FUSE passthrough (Linux 6.9+)")

	overlay, err := os.Create(filepath.Join(mp, "db"))
	require.NoError(t, err)
	defer overlay.Close()
	require.NoError(t, overlay.Truncate(4096))
	_, err = unix.Mmap(int(overlay.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	assert.ErrorIs(t, err, unix.ENODEV)

	shm, err := os.Create(filepath.Join(mp, "db-shm"))
	require.NoError(t, err)
	defer shm.Close()
	require.NoError(t, shm.Truncate(4096))
	m, err := unix.Mmap(int(shm.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(t, err)
	copy(m[100:], "shared")
	require.NoError(t, unix.Munmap(m))
	assert.Equal(t, []byte("shared"), readBacking(t, backing, "db-shm")[100:106])
	assert.Zero(t, f.Stats().PassthroughIO)
}

// CutAtWrite cuts inside the chosen write: it and everything unsynced
// before it are lost, and it fails.
func TestCutAtWrite(t *testing.T) {
	backing := t.TempDir()
	f, mp := mountT(t, backing, Options{})
	fh, err := os.Create(filepath.Join(mp, "f"))
	require.NoError(t, err)
	defer fh.Close()
	_, err = fh.Write([]byte("synced"))
	require.NoError(t, err)
	require.NoError(t, fh.Sync())

	fired := f.CutAtWrite(2, false)
	_, err = fh.Write([]byte(" one"))
	require.NoError(t, err)
	select {
	case <-fired:
		t.Fatal("fired early")
	default:
	}
	_, err = fh.Write([]byte(" two"))
	assert.ErrorIs(t, err, syscall.EIO)
	select {
	case r := <-fired:
		require.NoError(t, r.Err)
		assert.Equal(t, 1, r.Report.DroppedFiles)
	case <-time.After(5 * time.Second):
		t.Fatal("the armed cut did not fire")
	}
	_, err = fh.Write([]byte(" three"))
	assert.ErrorIs(t, err, syscall.EIO)
	assert.Equal(t, []byte("synced"), readBacking(t, backing, "f"))
	assertEmptyDir(t, mp)
}

// CutAtSync cuts as the n-th sync arrives, before it persists anything:
// the writes it would have made durable are gone, the earlier synced ones
// stay, and the sync fails.
func TestCutAtSyncDropsWhatThatSyncWouldHaveKept(t *testing.T) {
	backing := t.TempDir()
	f, mp := mountT(t, backing, Options{})
	fh, err := os.Create(filepath.Join(mp, "f"))
	require.NoError(t, err)
	defer fh.Close()
	_, err = fh.Write(fill('a', 4096))
	require.NoError(t, err)
	require.NoError(t, fh.Sync())

	res := f.CutAtSync(2, false)
	_, err = fh.Write(fill('b', 4096))
	require.NoError(t, err)
	require.NoError(t, fh.Sync(), "the first sync from here passes")
	_, err = fh.Write(fill('c', 4096))
	require.NoError(t, err)
	require.Error(t, fh.Sync(), "the second is where the power goes")
	cut := <-res
	require.NoError(t, cut.Err)
	require.Equal(t, append(fill('a', 4096), fill('b', 4096)...), readBacking(t, backing, "f"))
}

// CutWhen fires at the first request its predicate picks, whatever else
// goes by first, and the report says at which and what each file lost.
func TestCutWhenAimsAtOneFile(t *testing.T) {
	backing := t.TempDir()
	f, mp := mountT(t, backing, Options{})
	a, err := os.Create(filepath.Join(mp, "a"))
	require.NoError(t, err)
	defer a.Close()
	b, err := os.Create(filepath.Join(mp, "b"))
	require.NoError(t, err)
	defer b.Close()
	_, err = b.Write(fill('b', 8192))
	require.NoError(t, err)
	require.NoError(t, b.Sync())

	var seen []Op
	res := f.CutWhen(false, func(op Op) bool {
		seen = append(seen, op)
		return !op.Sync && op.Path == "b" && op.Offset == 0
	})
	_, err = a.Write(fill('a', 100))
	require.NoError(t, err)
	require.NoError(t, a.Sync(), "a sync of another file passes")
	_, err = b.WriteAt(fill('c', 10), 4096)
	require.NoError(t, err, "a write to b elsewhere than at offset 0 passes")
	_, err = b.WriteAt(fill('d', 10), 0)
	require.ErrorIs(t, err, syscall.EIO)
	cut := <-res
	require.NoError(t, cut.Err)
	require.Equal(t, &Op{Path: "b", Offset: 0, Len: 10}, cut.Report.At)
	require.Equal(t, []Op{{Path: "a", Len: 100}, {Sync: true, Path: "a"}, {Path: "b", Offset: 4096, Len: 10}, {Path: "b", Len: 10}}, seen)
	require.Equal(t, []Dropped{{Path: "b", Bytes: 8192, From: 0}}, cut.Report.Dropped)
	require.False(t, f.Live())
	require.Equal(t, fill('a', 100), readBacking(t, backing, "a"))
	require.Equal(t, fill('b', 8192), readBacking(t, backing, "b"))
}

// A sync CutWhen picks is cut before it persists anything.
func TestCutWhenAtASync(t *testing.T) {
	backing := t.TempDir()
	f, mp := mountT(t, backing, Options{})
	fh, err := os.Create(filepath.Join(mp, "f"))
	require.NoError(t, err)
	defer fh.Close()
	res := f.CutWhen(false, func(op Op) bool { return op.Sync && op.Path == "f" })
	require.True(t, f.Live())
	_, err = fh.Write(fill('a', 5000))
	require.NoError(t, err)
	require.NoError(t, fh.Truncate(4000))
	require.Error(t, fh.Sync())
	cut := <-res
	require.NoError(t, cut.Err)
	require.Equal(t, &Op{Sync: true, Path: "f"}, cut.Report.At)
	require.Equal(t, []Dropped{{Path: "f", Bytes: 4096, From: 0, Resized: true}}, cut.Report.Dropped)
	require.Empty(t, readBacking(t, backing, "f"))
}

// A slow sync persists nothing until its delay is over: a cut meanwhile
// loses what it would have kept, and the sync fails.
func TestSyncDelay(t *testing.T) {
	backing := t.TempDir()
	f, mp := mountT(t, backing, Options{SyncDelay: 300 * time.Millisecond})
	fh, err := os.Create(filepath.Join(mp, "f"))
	require.NoError(t, err)
	defer fh.Close()
	_, err = fh.Write(fill('a', 100))
	require.NoError(t, err)
	began := time.Now()
	require.NoError(t, fh.Sync())
	require.GreaterOrEqual(t, time.Since(began), 300*time.Millisecond)
	require.Equal(t, fill('a', 100), readBacking(t, backing, "f"))

	_, err = fh.Write(fill('b', 100))
	require.NoError(t, err)
	synced := make(chan error, 1)
	go func() { synced <- fh.Sync() }()
	time.Sleep(100 * time.Millisecond)
	_, err = f.Cut(false)
	require.NoError(t, err)
	require.Error(t, <-synced)
	require.Equal(t, fill('a', 100), readBacking(t, backing, "f"))
}
