package sqlite

import (
	"errors"
	"os"
	"syscall"
)

// datasync flushes f's data, and its size when that changed, to the disk,
// as SQLite itself does on Linux: fdatasync, not fsync, which would also
// write the file's times.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
