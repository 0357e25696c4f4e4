package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"
)

// BareCommitRate is the yardstick the store's ingest is measured against:
// it makes a new file at path in the store's format (its page size, WAL),
// commits one row of rowBytes per transaction, each flushed to disk
// (synchronous=FULL), for d, and returns the commits per second. The
// caller removes the file.
func BareCommitRate(ctx context.Context, path string, rowBytes int, d time.Duration) (float64, error) {
	db, err := Open(ctx, path, Options{})
	if err != nil {
		return 0, err
	}
	if err := db.Close(); err != nil {
		return 0, err
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	conn, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	if _, err := conn.ExecContext(ctx, `CREATE TABLE bare (id INTEGER PRIMARY KEY, body BLOB)`); err != nil {
		return 0, fmt.Errorf("bare commits in %s: %w", path, err)
	}
	body := bytes.Repeat([]byte("x"), rowBytes)
	n, start := 0, time.Now()
	for time.Since(start) < d {
		if _, err := conn.ExecContext(ctx, `INSERT INTO bare (body) VALUES (?)`, body); err != nil {
			return 0, fmt.Errorf("bare commits in %s: %w", path, err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
