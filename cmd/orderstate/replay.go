package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/orderstate/orderstate/engine"
)

func runReplay(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", "replay [--db PATH] [--fix]", stderr)
	var sf storeFlags
	sf.registerExisting(fs)
	fix := fs.Bool("fix", false, "write the replayed state of each differing order")
	if err := parseNoArgs(fs, args, env); err != nil {
		return err
	}
	if *fix && !onCommandLine(args, "fix") {
		// One environment may serve every command: a fix nobody typed
		// must not pass unseen.
		fmt.Fprintf(stderr, "replay: --fix is on from %s=%s: orders whose events say otherwise will be rewritten\n", envName("fix"), env(envName("fix")))
	}
	db, err := sf.openExisting(ctx, discardLogger(), time.Now)
	if err != nil {
		return err
	}
	defer db.Close()
	diffs := 0
	n, err := db.Replay(ctx, *fix, func(d engine.ReplayDiff) {
		diffs++
		id := d.OrderID
		if id == "" {
			id = "-"
		}
		fmt.Fprintf(stdout, "order %s (%s %s): stored %s, events say %s (%d events)\n", term(id), term(d.Provider), term(d.CheckoutID), d.Stored, d.Replayed, d.Events)
	})
	if err != nil {
		return err
	}
	verb := "would change"
	if *fix {
		verb = "changed"
	}
	fmt.Fprintf(stdout, "replayed %d orders: %d %s\n", n, diffs, verb)
	return nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
