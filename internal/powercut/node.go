package powercut

import (
	"context"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a file or directory of the mount. It holds no data of its own:
// names resolve to the backing directory, and file data lives in the
// fileState of the backing inode.
type node struct {
	fs.Inode
	fsys *FS
}

var (
	_ fs.NodeLookuper   = (*node)(nil)
	_ fs.NodeGetattrer  = (*node)(nil)
	_ fs.NodeSetattrer  = (*node)(nil)
	_ fs.NodeOpener     = (*node)(nil)
	_ fs.NodeCreater    = (*node)(nil)
	_ fs.NodeMkdirer    = (*node)(nil)
	_ fs.NodeMknoder    = (*node)(nil)
	_ fs.NodeRmdirer    = (*node)(nil)
	_ fs.NodeUnlinker   = (*node)(nil)
	_ fs.NodeRenamer    = (*node)(nil)
	_ fs.NodeLinker     = (*node)(nil)
	_ fs.NodeSymlinker  = (*node)(nil)
	_ fs.NodeReadlinker = (*node)(nil)
	_ fs.NodeReaddirer  = (*node)(nil)
	_ fs.NodeFsyncer    = (*node)(nil)
	_ fs.NodeStatfser   = (*node)(nil)
)

const fsyncDatasync = 1 // FUSE_FSYNC_FDATASYNC

// rel returns the node's path relative to the mount root, and false if the
// node has no name any more (it was removed while open).
func (n *node) rel() (string, bool) {
	r := n.Path(nil)
	if r == "" && n.EmbeddedInode() != n.Root() {
		return "", false
	}
	return r, true
}

// path returns the node's path in the backing directory.
func (n *node) path() (string, syscall.Errno) {
	r, ok := n.rel()
	if !ok {
		return "", syscall.ENOENT
	}
	return filepath.Join(n.fsys.backing, r), 0
}

func (n *node) childPath(name string) (string, string, syscall.Errno) {
	r, ok := n.rel()
	if !ok {
		return "", "", syscall.ENOENT
	}
	rel := filepath.Join(r, name)
	return rel, filepath.Join(n.fsys.backing, rel), 0
}

// lock takes the file system lock and fails once it is cut or unmounted.
func (n *node) lock() syscall.Errno {
	n.fsys.mu.Lock()
	if errno := n.fsys.aliveLocked(); errno != 0 {
		n.fsys.mu.Unlock()
		return errno
	}
	return 0
}

func (n *node) unlock() { n.fsys.mu.Unlock() }

// attrLocked fills out from st, with the size seen through the mount.
func (f *FS) attrLocked(st *syscall.Stat_t, out *fuse.Attr) {
	out.FromStat(st)
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return
	}
	if s, ok := f.files[fileKey{uint64(st.Dev), st.Ino}]; ok {
		out.Size = uint64(s.size)
		out.Blocks = (out.Size + 511) / 512
	}
}

func (n *node) newChild(ctx context.Context, st *syscall.Stat_t) *fs.Inode {
	return n.NewInode(ctx, &node{fsys: n.fsys}, fs.StableAttr{Mode: st.Mode & syscall.S_IFMT, Ino: st.Ino})
}

// entryLocked stats p and returns its node.
func (n *node) entryLocked(ctx context.Context, p string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	n.fsys.attrLocked(&st, &out.Attr)
	return n.newChild(ctx, &st), 0
}

// chown gives a new file to the caller, as the kernel would.
func chown(ctx context.Context, p string) {
	if caller, ok := fuse.FromContext(ctx); ok && syscall.Geteuid() == 0 {
		_ = syscall.Lchown(p, int(caller.Uid), int(caller.Gid))
	}
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, errno
	}
	defer n.unlock()
	_, p, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	return n.entryLocked(ctx, p, out)
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	var st syscall.Stat_t
	var err error
	switch h := fh.(type) {
	case *handle:
		err = syscall.Fstat(h.s.fd, &st)
	case *rawHandle:
		err = syscall.Fstat(h.fd, &st)
	default:
		p, errno := n.path()
		if errno != 0 {
			return errno
		}
		err = syscall.Lstat(p, &st)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	n.fsys.attrLocked(&st, &out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	f := n.fsys

	// Work on an open descriptor where there is one: the node may have
	// lost its name.
	fd := -1
	var s *fileState
	switch h := fh.(type) {
	case *handle:
		fd, s = h.s.fd, h.s
	case *rawHandle:
		fd = h.fd
	}
	p := ""
	if fd < 0 {
		var errno syscall.Errno
		if p, errno = n.path(); errno != 0 {
			return errno
		}
	}

	if m, ok := in.GetMode(); ok {
		var err error
		if fd >= 0 {
			err = syscall.Fchmod(fd, m)
		} else {
			err = syscall.Chmod(p, m)
		}
		if err != nil {
			return fs.ToErrno(err)
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		suid, sgid := -1, -1
		if uok {
			suid = int(uid)
		}
		if gok {
			sgid = int(gid)
		}
		var err error
		if fd >= 0 {
			err = syscall.Fchown(fd, suid, sgid)
		} else {
			err = unix.Fchownat(unix.AT_FDCWD, p, suid, sgid, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return fs.ToErrno(err)
		}
	}
	if size, ok := in.GetSize(); ok {
		if fh == nil && !f.passthroughNode(n) {
			// truncate(2) by name: find or make the overlay.
			var errno syscall.Errno
			if s, errno = f.openStateLocked(p, n.EmbeddedInode()); errno != 0 {
				return errno
			}
			if s == nil {
				return syscall.EINVAL
			}
		}
		if s != nil {
			if errno := f.truncateLocked(s, int64(size)); errno != 0 {
				return errno
			}
			if s.opens <= 0 && !s.dirty {
				f.forgetLocked(s)
			}
		} else {
			var err error
			if fd >= 0 {
				err = syscall.Ftruncate(fd, int64(size))
			} else {
				err = syscall.Truncate(p, int64(size))
			}
			if err != nil {
				return fs.ToErrno(err)
			}
		}
	}
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if mok || aok {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if aok {
			ts[0] = unix.NsecToTimespec(atime.UnixNano())
		}
		if mok {
			ts[1] = unix.NsecToTimespec(mtime.UnixNano())
		}
		var err error
		if fd >= 0 {
			err = unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
		} else {
			err = unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return fs.ToErrno(err)
		}
	}

	var st syscall.Stat_t
	var err error
	if fd >= 0 {
		err = syscall.Fstat(fd, &st)
	} else {
		err = syscall.Lstat(p, &st)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	f.attrLocked(&st, &out.Attr)
	return 0
}

func (f *FS) passthroughNode(n *node) bool {
	r, ok := n.rel()
	return ok && f.passthrough(r)
}

// openFlags are the open(2) flags passed on to a passthrough file.
const openFlagsMask = ^(syscall.O_CREAT | syscall.O_EXCL | syscall.O_NOCTTY)

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, 0, errno
	}
	defer n.unlock()
	f := n.fsys
	rel, ok := n.rel()
	if !ok {
		return nil, 0, syscall.ENOENT
	}
	p := filepath.Join(f.backing, rel)
	if f.passthrough(rel) {
		fd, err := syscall.Open(p, int(flags)&openFlagsMask|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, 0, fs.ToErrno(err)
		}
		return &rawHandle{fsys: f, fd: fd}, 0, 0
	}
	s, errno := f.openStateLocked(p, n.EmbeddedInode())
	if errno != 0 {
		return nil, 0, errno
	}
	if s == nil {
		// Not a regular file (a device or a fifo): pass it through.
		fd, err := syscall.Open(p, int(flags)&openFlagsMask|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, 0, fs.ToErrno(err)
		}
		return &rawHandle{fsys: f, fd: fd}, fuse.FOPEN_DIRECT_IO, 0
	}
	return f.newHandleLocked(s, flags)
}

func (f *FS) newHandleLocked(s *fileState, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	s.opens++
	if flags&syscall.O_TRUNC != 0 && s.size != 0 {
		if errno := f.truncateLocked(s, 0); errno != 0 {
			f.releaseLocked(s)
			return nil, 0, errno
		}
	}
	return &handle{fsys: f, s: s, append: flags&syscall.O_APPEND != 0}, fuse.FOPEN_DIRECT_IO, 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, nil, 0, errno
	}
	defer n.unlock()
	f := n.fsys
	rel, p, errno := n.childPath(name)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	var fd int
	var err error
	if f.passthrough(rel) {
		fd, err = syscall.Open(p, int(flags)&openFlagsMask|syscall.O_CREAT|int(flags)&syscall.O_EXCL|syscall.O_CLOEXEC, mode)
	} else {
		fd, err = syscall.Open(p, syscall.O_RDWR|syscall.O_CREAT|int(flags)&syscall.O_EXCL|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, mode)
	}
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	chown(ctx, p)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, nil, 0, fs.ToErrno(err)
	}
	child := n.newChild(ctx, &st)
	if f.passthrough(rel) {
		out.Attr.FromStat(&st)
		return child, &rawHandle{fsys: f, fd: fd}, 0, 0
	}
	s, errno := f.adoptLocked(fd, child)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if s == nil {
		return nil, nil, 0, syscall.EINVAL
	}
	fh, fuseFlags, errno := f.newHandleLocked(s, flags)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	f.attrLocked(&st, &out.Attr)
	return child, fh, fuseFlags, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, errno
	}
	defer n.unlock()
	_, p, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	if err := syscall.Mkdir(p, mode); err != nil {
		return nil, fs.ToErrno(err)
	}
	chown(ctx, p)
	return n.entryLocked(ctx, p, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, errno
	}
	defer n.unlock()
	_, p, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	if err := syscall.Mknod(p, mode, int(dev)); err != nil {
		return nil, fs.ToErrno(err)
	}
	chown(ctx, p)
	return n.entryLocked(ctx, p, out)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, errno
	}
	defer n.unlock()
	_, p, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	if err := syscall.Symlink(target, p); err != nil {
		return nil, fs.ToErrno(err)
	}
	chown(ctx, p)
	return n.entryLocked(ctx, p, out)
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	t, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	if errno := n.lock(); errno != 0 {
		return nil, errno
	}
	defer n.unlock()
	_, p, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	tp, errno := t.path()
	if errno != 0 {
		return nil, errno
	}
	if err := syscall.Link(tp, p); err != nil {
		return nil, fs.ToErrno(err)
	}
	return n.entryLocked(ctx, p, out)
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, errno
	}
	defer n.unlock()
	p, errno := n.path()
	if errno != 0 {
		return nil, errno
	}
	buf := make([]byte, 4096)
	m, err := syscall.Readlink(p, buf)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return buf[:m], 0
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	_, p, errno := n.childPath(name)
	if errno != 0 {
		return errno
	}
	return fs.ToErrno(syscall.Rmdir(p))
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	_, p, errno := n.childPath(name)
	if errno != 0 {
		return errno
	}
	var st syscall.Stat_t
	statErr := syscall.Lstat(p, &st)
	if err := syscall.Unlink(p); err != nil {
		return fs.ToErrno(err)
	}
	if statErr == nil {
		n.fsys.unlinkedLocked(fileKey{uint64(st.Dev), st.Ino})
	}
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	_, p1, errno := n.childPath(name)
	if errno != 0 {
		return errno
	}
	_, p2, errno := np.childPath(newName)
	if errno != 0 {
		return errno
	}
	var st syscall.Stat_t
	replaced := flags&fs.RENAME_EXCHANGE == 0 && syscall.Lstat(p2, &st) == nil
	if err := unix.Renameat2(unix.AT_FDCWD, p1, unix.AT_FDCWD, p2, uint(flags)); err != nil {
		return fs.ToErrno(err)
	}
	if replaced {
		n.fsys.unlinkedLocked(fileKey{uint64(st.Dev), st.Ino})
	}
	return 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	if errno := n.lock(); errno != 0 {
		return nil, errno
	}
	defer n.unlock()
	p, errno := n.path()
	if errno != 0 {
		return nil, errno
	}
	return fs.NewLoopbackDirStream(p)
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.fsys.backing, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatfsT(&st)
	return 0
}

// Fsync serves fsync and fdatasync of files and of directories.
func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	if _, ok := fh.(*handle); ok && n.fsys.opts.SyncDelay > 0 {
		// The disk takes its time; nothing is durable until it is done,
		// and a cut meanwhile loses what this sync would have kept.
		time.Sleep(n.fsys.opts.SyncDelay)
	}
	if errno := n.lock(); errno != 0 {
		return errno
	}
	defer n.unlock()
	f := n.fsys
	datasync := flags&fsyncDatasync != 0
	switch h := fh.(type) {
	case *handle:
		f.stats.Syncs++
		if f.trigger != nil && f.firedLocked(Op{Sync: true, Path: f.nameLocked(h.s)}) {
			return syscall.EIO
		}
		if f.opts.LieOnFsync {
			f.stats.LiedSyncs++
			return 0
		}
		return fs.ToErrno(f.flushLocked(h.s, datasync))
	case *rawHandle:
		if datasync {
			return fs.ToErrno(unix.Fdatasync(h.fd))
		}
		return fs.ToErrno(syscall.Fsync(h.fd))
	}
	// A directory. Its entries are durable already; sync it anyway.
	p, errno := n.path()
	if errno != 0 {
		return errno
	}
	f.stats.DirSyncs++
	if f.opts.LieOnFsync {
		return 0
	}
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer syscall.Close(fd)
	return fs.ToErrno(syscall.Fsync(fd))
}

// handle is an open overlay file.
type handle struct {
	fsys   *FS
	s      *fileState
	append bool
}

var (
	_ fs.FileReader   = (*handle)(nil)
	_ fs.FileWriter   = (*handle)(nil)
	_ fs.FileFlusher  = (*handle)(nil)
	_ fs.FileReleaser = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f := h.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	if errno := f.aliveLocked(); errno != 0 {
		return nil, errno
	}
	m, errno := f.readAtLocked(h.s, dest, off)
	if errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultData(dest[:m]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f := h.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	if errno := f.aliveLocked(); errno != 0 {
		return 0, errno
	}
	if h.append {
		off = h.s.size
	}
	if errno := f.writeLocked(h.s, data, off, h.s.node); errno != 0 {
		return 0, errno
	}
	if f.trigger != nil && f.firedLocked(Op{Path: f.nameLocked(h.s), Offset: off, Len: len(data)}) {
		return 0, syscall.EIO
	}
	return uint32(len(data)), 0
}

func (h *handle) Flush(ctx context.Context) syscall.Errno {
	f := h.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.aliveLocked()
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	f := h.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == live {
		f.releaseLocked(h.s)
	}
	return 0
}

// rawHandle is an open passthrough file (or a special file): its I/O goes
// straight to the backing file. With kernel passthrough the kernel does
// not even send its reads and writes here.
type rawHandle struct {
	fsys *FS
	fd   int
}

var (
	_ fs.FileReader          = (*rawHandle)(nil)
	_ fs.FileWriter          = (*rawHandle)(nil)
	_ fs.FileReleaser        = (*rawHandle)(nil)
	_ fs.FilePassthroughFder = (*rawHandle)(nil)
)

func (h *rawHandle) PassthroughFd() (int, bool) { return h.fd, h.fsys.kernelPassthrough }

func (h *rawHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f := h.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	if errno := f.aliveLocked(); errno != 0 {
		return nil, errno
	}
	f.stats.PassthroughIO++
	m, err := syscall.Pread(h.fd, dest, off)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:m]), 0
}

func (h *rawHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f := h.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	if errno := f.aliveLocked(); errno != 0 {
		return 0, errno
	}
	f.stats.PassthroughIO++
	m, err := syscall.Pwrite(h.fd, data, off)
	if err != nil {
		return 0, fs.ToErrno(err)
	}
	return uint32(m), 0
}

func (h *rawHandle) Release(ctx context.Context) syscall.Errno {
	return fs.ToErrno(syscall.Close(h.fd))
}
