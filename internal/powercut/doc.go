// Package powercut is a FUSE file system for power-loss tests, after the
// method of LazyFS: it passes every operation through to a backing
// directory, except that the data written to a regular file stays in
// memory until that file is fsynced or fdatasynced. Cut then "cuts the
// power": it drops every unsynced change (optionally tearing the last
// unsynced write) and detaches the mount. After a cut the backing
// directory holds what a disk would hold after losing power, and a test
// can open it directly (without FUSE) to check that nothing the program
// under test acknowledged has been lost.
//
// # The model
//
// File data. A write to a regular file goes into an in-memory overlay of
// dirty pages (PageSize bytes each) keyed by the backing file's inode, so
// every name and every open handle of a file sees the same data. Reads
// through the mount see the overlay over the backing file
// (read-your-writes), also after the file is closed and reopened. fsync or
// fdatasync on any handle of the file writes the overlay to the backing
// file and fsyncs it; only then is the data durable. Closing a file does
// not sync it.
//
// Size changes. truncate and ftruncate (and O_TRUNC) are pending like
// writes: the mount shows the new size at once, the backing file keeps its
// old size and content until the next fsync of the file. SQLite truncates
// the WAL (journal_size_limit, checkpoint TRUNCATE) and relies on the sync
// that follows, which this exercises.
//
// Metadata. Creating, renaming, linking and removing files and directories
// and changing modes, owners and times act on the backing directory at
// once and are durable immediately, as if every such operation were
// followed by an fsync of its directory. A file created through the mount
// therefore exists after a cut, but holds only what was synced into it;
// a file renamed over another keeps, after a cut, only its synced content
// (the well-known "rename without fsync" loss). A file whose last name is
// removed loses its pending data. This is more lenient than LazyFS for
// programs that forget to fsync a directory, and as strict for file data,
// which is what SQLite's rollback journal and WAL protocols depend on.
//
// Tearing. Cut(true) also persists a prefix of the most recent unsynced
// write (the write "in flight" when the power failed) on top of the synced
// state: the prefix ends at a page boundary strictly inside the write,
// chosen at random; a write that crosses no page boundary is kept whole or
// dropped, at random. Nothing else unsynced survives. A write followed by
// a truncate of the same file is not a tearing candidate.
//
// Passthrough files. Files selected by Options.Passthrough (SQLiteShm for
// SQLite's -shm wal-index) bypass the model: their writes reach the
// backing file at once and the kernel serves their reads, writes and mmaps
// straight from the backing file (FUSE passthrough, Linux 6.9 and later).
// SQLite mmaps the -shm with MAP_SHARED and rebuilds it from the WAL after
// a crash, so passing it through loses nothing. Overlay files are opened
// with direct I/O, which the kernel refuses to mmap shared (ENODEV); that
// is deliberate: a page fault on a FUSE file that is served by the same Go
// process can deadlock the Go runtime (a stop-the-world waits for the
// faulting thread, which waits for a server goroutine that cannot run).
// With passthrough no page fault ever reaches the server, so a test can
// run SQLite in the same process as the file system.
//
// Locks. POSIX advisory locks (fcntl F_SETLK, OFD locks) and flock are
// left to the kernel, which enforces them among all processes using the
// mount; they are not seen by the backing directory.
//
// After a cut every operation through the old mount, including those on
// files that are still open, fails with EIO, and the mountpoint shows the
// directory underneath again. The FUSE connection ends when the last file
// opened through it is closed (see FS.Done).
//
// # Use
//
//	f, err := powercut.Mount(dataDir, mnt, powercut.Options{Passthrough: powercut.SQLiteShm})
//	// run the program under test on mnt; acknowledge work as it is done
//	rep, err := f.Cut(true) // or arm f.CutAtWrite(n, true) to cut inside the n-th write
//	// stop the program; open dataDir directly and check every acknowledged
//	// piece of work is there
//
// Stats tells how many writes and syncs have gone by and how much is
// pending, for choosing when to cut. A cut from outside mostly lands
// between a program's fsync and its next write, when nothing is pending;
// CutAtWrite lands inside the window between writes and their fsync, and
// CutAtSync as a flush begins. CutWhen aims at one file or one moment of a
// program's protocol, given as a predicate over each write and sync: the
// n-th write to a SQLite database file (a checkpoint copying pages into
// it), the sync of that file that ends a checkpoint, a write at offset 0
// of its write-ahead log (the log starting over). The report of a cut
// says which request it fired at and what each file lost.
// LieOnFsync turns fsync into a no-op, for checking that the harness
// notices lost data; SyncDelay makes each fsync slow, so that what a
// program shows before its flush returns stays in view, and at risk, for
// longer.
//
// Mounting needs root (CAP_SYS_ADMIN): Mount calls mount(2) itself and
// does not need fusermount.
package powercut
