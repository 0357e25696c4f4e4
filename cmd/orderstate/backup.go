package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/orderstate/orderstate/engine/postgres"
	"github.com/orderstate/orderstate/engine/sqlite"
)

// runBackup copies a live SQLite store to a new file: see sqlite.Backup.
// Restoring is putting the copy where --db points, with serve stopped.
func runBackup(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", "backup --to FILE [--db PATH]", stderr)
	var sf storeFlags
	sf.registerExisting(fs)
	to := fs.String("to", "", "the file to write the backup to; it must not exist")
	if err := parseNoArgs(fs, args, env); err != nil {
		return err
	}
	if *to == "" {
		fs.Usage()
		return errors.New("give the file to write with --to FILE")
	}
	if postgres.IsURL(sf.db) {
		return errors.New("backup copies a SQLite store; back a PostgreSQL store up with PostgreSQL's own tools (pg_dump, or the server's base backups)")
	}
	if err := positive("busy-timeout", sf.busyTimeout, "5s"); err != nil {
		return err
	}
	info, err := sqlite.Backup(ctx, sf.db, *to, sf.busyTimeout)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "backed up %s to %s: %d orders, %d events, schema version %d, %d bytes, in %s\n",
		term(sf.db), term(info.Path), info.Orders, info.Events, info.SchemaVersion, info.Bytes, info.Took.Round(1e6))
	return err
}
