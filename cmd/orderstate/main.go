package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/orderstate/orderstate/engine"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "orderstate:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status (the demo's failed self-check).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

// plainError is an error shown without the code word of the engine error
// inside it; errors.Is and errors.As still reach the original.
type plainError struct {
	text string
	err  error
}

func (e *plainError) Error() string { return e.text }
func (e *plainError) Unwrap() error { return e.err }

// withoutCode drops the code word ("invalid: ", "unavailable: ") that an
// engine error puts before its message. The code is for the API's callers,
// who branch on it; a person at a terminal needs the message, and the
// cause, which unlike an API client they may see. The text is rebuilt
// from the engine error's own parts, whatever wraps it.
func withoutCode(err error) error {
	var e *engine.Error
	if !errors.As(err, &e) {
		return err
	}
	plain := e.Message
	if e.Err != nil {
		plain += ": " + withoutCode(e.Err).Error()
	}
	return &plainError{text: strings.Replace(err.Error(), e.Error(), plain, 1), err: err}
}

type command struct {
	name  string
	usage string
	run   func(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the webhook receiver, the shop API and the reconciler", runServe},
		{"demo", "play a day of shop traffic through a fresh sidecar and check what it found", runDemo},
		{"order", "show an order's state, anomalies and event timeline", runOrder},
		{"poll", "ask an order's provider what became of it now (Tazapay, Yoco)", runPoll},
		{"reconcile", "run one sweep for missing, stuck and contradicted orders now", runReconcile},
		{"report", "print the anomaly report for a period", runReport},
		{"replay", "rebuild every order from its stored events and list differences", runReplay},
		{"fsm", "print the order state machine as a Mermaid diagram", runFSM},
		{"send", "send a provider's webhook, signed as the provider signs it, to the running sidecar", runSend},
		{"healthcheck", "exit 0 when the running sidecar is ready (/readyz): a container's health check", runHealthcheck},
		{"backup", "copy a SQLite store to a new file, consistently, while serve runs on it", runBackup},
		{"purge", "delete one order's raw webhook requests (a customer's request); its facts and timeline stay", runPurge},
		{"version", "print the version, the commit and the Go release it was built with", runVersion},
	}
}

func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return &exitError{code: 2, err: errors.New("no command given")}
	}
	if args[0] == "help" && len(args) > 1 {
		// "orderstate help serve" is "orderstate serve --help".
		args = []string{args[1], "--help"}
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], env, stdout, stderr)
			if h := (*helpError)(nil); errors.As(err, &h) {
				_, werr := io.WriteString(stdout, h.text)
				return werr
			}
			return withoutCode(err)
		}
	}
	usage(stderr)
	return &exitError{code: 2, err: fmt.Errorf("unknown command %q", args[0])}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "orderstate: the authoritative state of every order, whatever the providers' webhooks do.")
	fmt.Fprintln(w, "\nUsage: orderstate <command> [flags]   (orderstate <command> -h for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set as ORDERSTATE_<FLAG> (dashes become underscores).")
	fmt.Fprintln(w, "orderstate --version prints the version.")
}
