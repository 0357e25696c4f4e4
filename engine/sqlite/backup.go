package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/orderstate/orderstate/engine"
)

// BackupInfo describes a backup Backup made.
type BackupInfo struct {
	Path          string
	Bytes         int64
	Orders        int64
	Events        int64
	SchemaVersion int
	Took          time.Duration
}

// Backup copies the store at path to a new file at to, consistently and
// while serve keeps writing to it: SQLite's VACUUM INTO reads one snapshot
// of the database (a read transaction, which in WAL mode holds up no
// writer and no checkpoint of the running serve, whose checkpoints are
// passive) and writes it out compacted, with the write-ahead log's
// committed pages folded in. The copy is written beside to under a
// temporary name, checked (integrity_check), flushed to disk and only
// then renamed to to, so to is never a partial copy. to must not exist.
// The copy is a store of its own: serve --db to opens it.
func Backup(ctx context.Context, path, to string, busy time.Duration) (BackupInfo, error) {
	start := time.Now()
	info := BackupInfo{Path: to}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return info, engine.Errorf(engine.ENOTFOUND, "database %s does not exist", path)
	}
	if _, err := os.Lstat(to); err == nil {
		return info, engine.Errorf(engine.ECONFLICT, "%s exists already; a backup is written to a new file", to)
	}
	if busy <= 0 {
		busy = 5 * time.Second
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	src, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return info, fmt.Errorf("open %s: %w", path, err)
	}
	defer src.Close()
	src.SetMaxOpenConns(1)
	rows, err := src.QueryContext(ctx, `SELECT name FROM migrations ORDER BY name`)
	if err != nil {
		return info, engine.Wrap(engine.EINVALID, err, "%s is not an orderstate store", path)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return info, storeError(err, "read migrations")
		}
		info.SchemaVersion = max(info.SchemaVersion, engine.SchemaVersion(n))
	}
	rows.Close()

	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tmp := filepath.Join(filepath.Dir(to), "."+filepath.Base(to)+".partial-"+hex.EncodeToString(suffix[:]))
	defer os.Remove(tmp)
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return info, storeError(err, "copy the database")
	}
	if err := checkCopy(ctx, tmp, &info); err != nil {
		return info, err
	}
	if err := syncFile(tmp); err != nil {
		return info, fmt.Errorf("flush %s: %w", tmp, err)
	}
	// A file that appeared since the check above is not overwritten.
	if err := os.Link(tmp, to); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return info, engine.Errorf(engine.ECONFLICT, "%s exists already; a backup is written to a new file", to)
		}
		return info, fmt.Errorf("put the backup at %s: %w", to, err)
	}
	if err := syncFile(filepath.Dir(to)); err != nil {
		return info, fmt.Errorf("flush %s: %w", filepath.Dir(to), err)
	}
	st, err := os.Stat(to)
	if err != nil {
		return info, err
	}
	info.Bytes, info.Took = st.Size(), time.Since(start)
	return info, nil
}

// checkCopy runs SQLite's integrity check on a copy and counts its orders
// and events.
func checkCopy(ctx context.Context, path string, info *BackupInfo) error {
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro")
	if err != nil {
		return fmt.Errorf("open the copy %s: %w", path, err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil {
		return fmt.Errorf("check the copy %s: %w", path, err)
	}
	if check != "ok" {
		return fmt.Errorf("the copy %s fails SQLite's integrity check: %s", path, check)
	}
	return db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM events)`).Scan(&info.Orders, &info.Events)
}

// syncFile flushes a file, or a directory's entries, to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
