package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/orderstate/orderstate/cmd/orderstate/api"
	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/postgres"
	"github.com/orderstate/orderstate/engine/sqlite"
	"github.com/orderstate/orderstate/reconcile"
)

// newFlagSet is a flag set whose usage lists each flag's variable.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: orderstate %s\n\nFlags (each also read from the variable shown):\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := f.DefValue
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(w, "  --%s (%s, default %s)\n      %s\n", f.Name, envName(f.Name), def, f.Usage)
		})
	}
	return fs
}

// helpError is a command's help, asked for with -h or --help: run prints
// it on standard output and exits 0, as a pager or grep expects; a usage
// shown because of a mistake goes to standard error instead.
type helpError struct{ text string }

func (e *helpError) Error() string { return "help requested" }
func (e *helpError) Unwrap() error { return flag.ErrHelp }

func envName(flagName string) string {
	return "ORDERSTATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse parses args, then fills every flag not given on the command line
// from its ORDERSTATE_* variable.
// parseNoArgs is parse for a command that takes flags only: a stray word
// is most likely a flag missing its dashes, and ignoring it would run the
// command with settings the user did not mean.
func parseNoArgs(fs *flag.FlagSet, args []string, env func(string) string) error {
	if err := parse(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%s takes no arguments; got %q", fs.Name(), fs.Args())
	}
	return nil
}

func parse(fs *flag.FlagSet, args []string, env func(string) string) error {
	out := fs.Output()
	var help bytes.Buffer
	fs.SetOutput(&help)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		return &helpError{text: help.String()}
	}
	if _, werr := io.Copy(out, &help); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v := env(envName(f.Name)); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %s", envName(f.Name), v, wanted(f))
			}
		}
	})
	return err
}

// positive refuses a duration flag of zero or less, which the code behind
// it would otherwise replace with its default without a word.
func positive(flagName string, d time.Duration, example string) error {
	if d > 0 {
		return nil
	}
	return engine.Errorf(engine.EINVALID, "--%s (%s) %s: want a duration above zero, such as %s", flagName, envName(flagName), d, example)
}

// onCommandLine reports whether args set the flag name, in any of the
// forms the flag package takes.
func onCommandLine(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if !strings.HasPrefix(a, "-") {
			continue // a value, or an argument
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// numberKinds say what a number flag counts, where "a whole number" would
// leave a person guessing at the unit.
var numberKinds = map[string]string{
	"max-body":            "a size in bytes",
	"max-inflight":        "a number of webhooks",
	"report-max-per-kind": "a number of anomalies",
	"report-max-orders":   "a number of orders",
	"report-max-detailed": "a number of orders",
}

// wanted says what a flag's value must look like, for a variable that does
// not parse: the flag package says only "parse error", and unlike on the
// command line no usage follows it.
func wanted(f *flag.Flag) string {
	if w, ok := f.Value.(interface{ want() string }); ok {
		return w.want()
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "cannot be read as --" + f.Name
	}
	switch g.Get().(type) {
	case bool:
		return "want true or false"
	case time.Duration:
		return "want a duration such as 90s, 15m or 24h"
	case int, int64:
		kind := numberKinds[f.Name]
		if kind == "" {
			kind = "a whole number"
		}
		return fmt.Sprintf("want %s like %s", kind, f.DefValue)
	case uint, uint64:
		return "want a whole number of 0 or more like " + f.DefValue
	case float64:
		return "want a number like " + f.DefValue
	}
	return "cannot be read as --" + f.Name
}

// storeFlags are the flags every command that opens the store shares.
type storeFlags struct {
	db          string
	busyTimeout time.Duration
}

// store is what the commands need from a store; the SQLite and the
// PostgreSQL store are both one.
type store interface {
	engine.PollStore
	engine.RawStore
	reconcile.Store
	api.ReportSource
	api.AnomalyCounter
}

var (
	_ store = (*sqlite.DB)(nil)
	_ store = (*postgres.DB)(nil)
)

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.db, "db", "orderstate.db", "SQLite database file (created if missing), or a postgres:// URL shared by several replicas")
	fs.DurationVar(&s.busyTimeout, "busy-timeout", 5*time.Second, "how long a write waits on a lock held by another process before giving up")
}

// registerExisting registers the flags for a command that reads a store
// serve made; see openExisting.
func (s *storeFlags) registerExisting(fs *flag.FlagSet) {
	s.register(fs)
	fs.Lookup("db").Usage = "SQLite database file written by serve (must exist), or the postgres:// URL serve uses"
}

// open opens the store --db names: a postgres:// (or postgresql://) URL is
// the PostgreSQL store, anything else a SQLite file.
func (s *storeFlags) open(ctx context.Context, log *slog.Logger, now func() time.Time) (store, error) {
	if postgres.IsURL(s.db) {
		db, err := postgres.Open(ctx, s.db, postgres.Options{Logger: log, Now: now})
		if err != nil {
			return nil, err
		}
		return db, nil
	}
	if err := positive("busy-timeout", s.busyTimeout, "5s"); err != nil {
		return nil, err
	}
	db, err := sqlite.Open(ctx, s.db, sqlite.Options{BusyTimeout: s.busyTimeout, Logger: log, Now: now})
	if err != nil {
		return nil, err
	}
	return db, nil
}

// openExisting opens a store that must already exist. Opening creates a
// missing file, so a mistyped --db would otherwise become an empty store
// in which every order, anomaly and difference looks absent.
func (s *storeFlags) openExisting(ctx context.Context, log *slog.Logger, now func() time.Time) (store, error) {
	if _, err := os.Stat(s.db); !postgres.IsURL(s.db) && errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("database %s does not exist; orderstate serve creates it (check --db or ORDERSTATE_DB)", s.db)
	}
	return s.open(ctx, log, now)
}

// logFlags choose the log format and level.
type logFlags struct {
	level  string
	format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", "auto", "log format: text, json, or auto (JSON unless standard error is a terminal)")
}

// logger builds the logger the flags describe, writing to w. Every record
// logged in a request's context carries its request_id, and a duration
// logged as one becomes milliseconds (key_ms): slog would write it in JSON
// as nanoseconds.
func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsInMillis}
	format := l.format
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(api.LogHandler(slog.NewTextHandler(w, opts))), nil
	case "json":
		return slog.New(api.LogHandler(slog.NewJSONHandler(w, opts))), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text, json or auto", l.format)
}

// durationsInMillis rewrites a time.Duration attribute as milliseconds,
// its key with "_ms" after it, as api.Millis writes one.
func durationsInMillis(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return api.Millis(a.Key, a.Value.Duration())
	}
	return a
}

// isTerminal reports whether w is a terminal (a character device: a
// console, or /dev/null, where the format does not matter).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
