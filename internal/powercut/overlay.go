package powercut

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// fileKey identifies a backing file by device and inode number. A
// fileState keeps its backing file open, so the inode number cannot be
// reused while the state exists.
type fileKey struct{ dev, ino uint64 }

// fileState is the in-memory overlay of one backing regular file: what a
// kernel's page cache would hold of it that is not yet on the disk. All
// fields are guarded by FS.mu.
type fileState struct {
	key   fileKey
	fd    int       // the backing file, read-write
	opens int       // open handles through the mount
	node  *fs.Inode // a node it was last opened or written through, for names

	size   int64            // size as seen through the mount
	floor  int64            // backing bytes from here on are cut off by a pending truncate; -1 if none
	pages  map[int64][]byte // dirty pages by index, as seen through the mount
	dirty  bool             // anything (data or size) not yet synced
	orphan bool             // the backing file has no name left: nothing of it can survive
	last   *lastWrite       // the latest unsynced write, for tearing
}

type lastWrite struct {
	seq  uint64
	off  int64
	data []byte
}

// openStateLocked returns the overlay of the regular file at path p,
// opening the backing file if no overlay exists yet. It returns nil, 0 if
// p is not a regular file.
func (f *FS) openStateLocked(p string, n *fs.Inode) (*fileState, syscall.Errno) {
	fd, err := syscall.Open(p, syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err == syscall.EACCES || err == syscall.EROFS || err == syscall.ETXTBSY {
		fd, err = syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return f.adoptLocked(fd, n)
}

// adoptLocked returns the overlay of the backing file open as fd, creating
// it with fd (or closing fd if one exists already).
func (f *FS) adoptLocked(fd int, n *fs.Inode) (*fileState, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, fs.ToErrno(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, 0
	}
	key := fileKey{uint64(st.Dev), st.Ino}
	if s, ok := f.files[key]; ok {
		syscall.Close(fd)
		s.node = n
		return s, 0
	}
	s := &fileState{key: key, fd: fd, node: n, size: st.Size, floor: -1, pages: make(map[int64][]byte)}
	f.files[key] = s
	return s, 0
}

// stateByPathLocked returns the existing overlay of the file at path p, if
// any, without opening anything.
func (f *FS) stateByPathLocked(p string) *fileState {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil
	}
	return f.files[fileKey{uint64(st.Dev), st.Ino}]
}

// readAt reads the file as seen through the mount: the backing file under
// the pending truncate and the dirty pages. Bytes past the size are not
// read; bytes the backing file lacks read as zero.
func (f *FS) readAtLocked(s *fileState, buf []byte, off int64) (int, syscall.Errno) {
	if off >= s.size || len(buf) == 0 {
		return 0, 0
	}
	n := min(int64(len(buf)), s.size-off)
	buf = buf[:n]
	clear(buf)
	end := off + n
	if limit := end; s.floor < 0 || s.floor > off {
		if s.floor >= 0 && s.floor < limit {
			limit = s.floor
		}
		if errno := preadFull(s.fd, buf[:limit-off], off); errno != 0 {
			return 0, errno
		}
	}
	if len(s.pages) > 0 {
		ps := f.pageSize
		for p := off / ps; p*ps < end; p++ {
			pg, ok := s.pages[p]
			if !ok {
				continue
			}
			start := p * ps
			lo, hi := max(off, start), min(end, start+ps)
			copy(buf[lo-off:hi-off], pg[lo-start:hi-start])
		}
	}
	return int(n), 0
}

// preadFull fills buf from fd at off, leaving what lies past the end of
// the file untouched.
func preadFull(fd int, buf []byte, off int64) syscall.Errno {
	for len(buf) > 0 {
		m, err := syscall.Pread(fd, buf, off)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fs.ToErrno(err)
		}
		if m == 0 {
			return 0
		}
		buf, off = buf[m:], off+int64(m)
	}
	return 0
}

func pwriteFull(fd int, buf []byte, off int64) error {
	for len(buf) > 0 {
		m, err := syscall.Pwrite(fd, buf, off)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		buf, off = buf[m:], off+int64(m)
	}
	return nil
}

// pageLocked returns dirty page p, making it from the current contents if
// it is clean. If whole is set the caller overwrites all of it.
func (f *FS) pageLocked(s *fileState, p int64, whole bool) ([]byte, syscall.Errno) {
	if pg, ok := s.pages[p]; ok {
		return pg, 0
	}
	pg := make([]byte, f.pageSize)
	if !whole {
		if _, errno := f.readAtLocked(s, pg, p*f.pageSize); errno != 0 {
			return nil, errno
		}
	}
	s.pages[p] = pg
	f.pendingPages++
	return pg, 0
}

func (f *FS) writeLocked(s *fileState, data []byte, off int64, n *fs.Inode) syscall.Errno {
	ps := f.pageSize
	end := off + int64(len(data))
	for p := off / ps; p*ps < end; p++ {
		start := p * ps
		lo, hi := max(off, start), min(end, start+ps)
		pg, errno := f.pageLocked(s, p, lo == start && hi == start+ps)
		if errno != 0 {
			return errno
		}
		copy(pg[lo-start:hi-start], data[lo-off:hi-off])
	}
	s.size = max(s.size, end)
	s.dirty = true
	s.node = n
	f.seq++
	if s.last == nil {
		s.last = &lastWrite{}
	}
	s.last.seq, s.last.off = f.seq, off
	s.last.data = append(s.last.data[:0], data...)
	f.stats.Writes++
	f.stats.WriteBytes += uint64(len(data))
	return 0
}

func (f *FS) truncateLocked(s *fileState, size int64) syscall.Errno {
	ps := f.pageSize
	if size < s.size {
		if size%ps != 0 {
			pg, errno := f.pageLocked(s, size/ps, false)
			if errno != 0 {
				return errno
			}
			clear(pg[size%ps:])
		}
		for p := range s.pages {
			if p*ps >= size {
				delete(s.pages, p)
				f.pendingPages--
			}
		}
		if s.floor < 0 || size < s.floor {
			s.floor = size
		}
	}
	s.size = size
	s.dirty = true
	s.last = nil
	f.stats.Truncates++
	return 0
}

// flushLocked writes the overlay to the backing file and syncs it.
func (f *FS) flushLocked(s *fileState, datasync bool) error {
	if s.dirty {
		if s.floor >= 0 {
			if err := syscall.Ftruncate(s.fd, s.floor); err != nil {
				return err
			}
		}
		ps := f.pageSize
		for p, pg := range s.pages {
			start := p * ps
			if start >= s.size {
				continue
			}
			if err := pwriteFull(s.fd, pg[:min(ps, s.size-start)], start); err != nil {
				return err
			}
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(s.fd, &st); err != nil {
			return err
		}
		if st.Size != s.size {
			if err := syscall.Ftruncate(s.fd, s.size); err != nil {
				return err
			}
		}
		f.pendingPages -= int64(len(s.pages))
		clear(s.pages)
		s.floor = -1
		s.dirty = false
		s.last = nil
	}
	if datasync {
		return unix.Fdatasync(s.fd)
	}
	return syscall.Fsync(s.fd)
}

// forgetLocked drops the overlay and closes the backing file.
func (f *FS) forgetLocked(s *fileState) {
	if f.files[s.key] == s {
		delete(f.files, s.key)
	}
	f.pendingPages -= int64(len(s.pages))
	s.pages = nil
	s.last = nil
	s.dirty = false
	if s.fd >= 0 {
		syscall.Close(s.fd)
		s.fd = -1
	}
}

// releaseLocked is called when a handle on s closes.
func (f *FS) releaseLocked(s *fileState) {
	s.opens--
	if s.opens <= 0 && (!s.dirty || s.orphan) {
		f.forgetLocked(s)
	}
}

// unlinkedLocked is called after a name of the backing file key was removed
// (unlink, or rename over it). If that was its last name, its pending data
// can never reach the disk.
func (f *FS) unlinkedLocked(key fileKey) {
	s, ok := f.files[key]
	if !ok {
		return
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(s.fd, &st); err != nil || st.Nlink > 0 {
		return
	}
	s.orphan = true
	s.last = nil
	if s.opens <= 0 {
		f.forgetLocked(s)
	}
}

// tearLocked persists a page-aligned prefix of the latest unsynced write.
func (f *FS) tearLocked() (*Tear, error) {
	var s *fileState
	for _, c := range f.files {
		if !c.orphan && c.last != nil && (s == nil || c.last.seq > s.last.seq) {
			s = c
		}
	}
	if s == nil {
		return nil, nil
	}
	w := s.last
	ps := f.pageSize
	var cands []int
	for b := (w.off/ps + 1) * ps; b < w.off+int64(len(w.data)); b += ps {
		cands = append(cands, int(b-w.off))
	}
	kept := 0
	if len(cands) > 0 {
		kept = cands[f.rng.IntN(len(cands))]
	} else if f.rng.IntN(2) == 1 {
		kept = len(w.data)
	}
	t := &Tear{Path: f.nameLocked(s), Offset: w.off, Len: len(w.data), Kept: kept}
	if kept == 0 {
		return t, nil
	}
	if err := pwriteFull(s.fd, w.data[:kept], w.off); err != nil {
		return t, err
	}
	return t, unix.Fdatasync(s.fd)
}

// nameLocked returns a path of s relative to the mount root, or "".
func (f *FS) nameLocked(s *fileState) string {
	if s.node == nil {
		return ""
	}
	return s.node.Path(nil)
}
