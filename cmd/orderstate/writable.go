package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/orderstate/orderstate/engine/postgres"
	"github.com/orderstate/orderstate/engine/sqlite"
)

// openWritable opens the store for serve, refusing one it could only read.
// When the file is not writable SQLite falls back to a read-only
// descriptor, which stays read-only after the permissions are fixed: serve
// would answer 503 to every webhook until restarted. It also creates the
// -wal and -shm files with the database's read-only mode, so a later start
// fails even once the database itself is fixed. Checking before SQLite
// touches anything, and refusing to start, says what is wrong at once; a
// supervisor's restart then picks up the fix.
func openWritable(ctx context.Context, sf *storeFlags, log *slog.Logger, now func() time.Time) (store, error) {
	if postgres.IsURL(sf.db) {
		return sf.open(ctx, log, now)
	}
	for _, p := range []string{sf.db, sf.db + "-wal", sf.db + "-shm"} {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		switch {
		case err == nil:
			f.Close()
		case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
			return nil, readOnlyError(sf.db, err)
		}
	}
	db, err := sf.open(ctx, log, now)
	if err != nil {
		return nil, err
	}
	// The same check through SQLite, for what permissions do not show.
	// Other failures (a lock held past the busy timeout) may pass by
	// themselves; /readyz reports them.
	if err := db.Ping(ctx); sqlite.IsReadOnly(err) {
		db.Close()
		return nil, readOnlyError(sf.db, err)
	}
	return db, nil
}

func readOnlyError(path string, err error) error {
	return fmt.Errorf("database %s is read-only; serve must write to it, to its -wal and -shm files and to its directory: %w", path, err)
}

// checkReportsDir makes the reports directory and writes a file in it, so
// that serve refuses to start on one it cannot write. Otherwise it would
// start, /readyz would answer 200, and the failure would show only as an
// error logged by each report run, while the reports a person expects each
// morning never appear.
func checkReportsDir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return reportsDirError(dir, err)
	}
	f, err := os.CreateTemp(dir, ".orderstate-check-*")
	if err != nil {
		return reportsDirError(dir, err)
	}
	werr := f.Close()
	if err := errors.Join(werr, os.Remove(f.Name())); err != nil {
		return reportsDirError(dir, err)
	}
	return nil
}

func reportsDirError(dir string, err error) error {
	return fmt.Errorf("reports directory %s cannot be written (--reports-dir, ORDERSTATE_REPORTS_DIR); serve writes each report there: %w", dir, err)
}
