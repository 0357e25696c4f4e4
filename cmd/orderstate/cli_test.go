package main

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
)

// cli runs the orderstate command line with env as the environment. A
// serve that starts is stopped after a few seconds, as by SIGTERM.
func cli(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var out, errs bytes.Buffer
	err := run(ctx, args, func(k string) string { return env[k] }, &out, &errs)
	return out.String(), errs.String(), err
}

// A mistyped --db must not become a new, empty store that then reports
// nothing found: the commands that read a store refuse a missing file and
// create nothing.
func TestCommandsNeedAnExistingStore(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"order", "order_1"},
		{"order", "--checkout", "tazapay/chk_1"},
		{"report"},
		{"reconcile"},
		{"replay"},
		{"replay", "--fix"},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "typo.db")
			_, _, err := cli(t, nil, append([]string{args[0], "--db", path}, args[1:]...)...)
			require.Error(t, err)
			require.NotEqual(t, 0, exitCode(err))
			require.ErrorContains(t, err, path)
			require.ErrorContains(t, err, "does not exist")
			require.ErrorContains(t, err, "serve creates it")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "nothing is created")

			// The same through the environment.
			_, _, err = cli(t, map[string]string{"ORDERSTATE_DB": path}, args...)
			require.ErrorContains(t, err, path)
			require.NoFileExists(t, path)
		})
	}
}

// serve refuses, at start, values it used to replace silently with its
// defaults, arguments it used to ignore, and a secret variable that holds
// no secret.
func TestServe_RefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"MaxBodyZero", []string{"--max-body", "0"}, nil, "--max-body"},
		{"MaxBodyNegative", []string{"--max-body", "-1"}, nil, "--max-body"},
		{"MaxBodyFromEnvironment", nil, map[string]string{"ORDERSTATE_MAX_BODY": "0"}, "ORDERSTATE_MAX_BODY"},
		{"MaxInFlightZero", []string{"--max-inflight", "0"}, nil, "--max-inflight"},
		{"MaxInFlightNegative", []string{"--max-inflight", "-3"}, nil, "--max-inflight"},
		{"MaxInFlightFromEnvironment", nil, map[string]string{"ORDERSTATE_MAX_INFLIGHT": "-3"}, "ORDERSTATE_MAX_INFLIGHT"},
		{"ExtraArgument", []string{"extra-arg"}, nil, `serve takes no arguments; got ["extra-arg"]`},
		{"SecretOnlyComma", nil, map[string]string{"ORDERSTATE_TAZAPAY_SECRET": ","}, "ORDERSTATE_TAZAPAY_SECRET"},
		{"SecretOnlySpaces", nil, map[string]string{"ORDERSTATE_YOCO_SECRET": " , \t"}, "ORDERSTATE_YOCO_SECRET"},
		{"SecretFlagOnlyCommas", []string{"--tokenz-secret", ",,"}, nil, "--tokenz-secret"},
		{"UnsignedTweedWithOnlyComma", []string{"--tweed-allow-unsigned"}, map[string]string{"ORDERSTATE_TWEED_SECRET": ","}, "ORDERSTATE_TWEED_SECRET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "o.db"),
				"--reports-dir", filepath.Join(dir, "reports")}, tc.args...)
			env := map[string]string{"ORDERSTATE_TWEED_SECRET": testTweedSecret}
			for k, v := range tc.env {
				env[k] = v
			}
			start := time.Now()
			_, _, err := cli(t, env, args...)
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, 1, exitCode(err))
			require.Less(t, time.Since(start), 2*time.Second, "refused at start, not after serving")
			require.NoFileExists(t, filepath.Join(dir, "o.db"), "refused before the store is made")
		})
	}
}

// An unset or empty secret still means the provider is not configured.
func TestServe_EmptySecretIsNotConfigured(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"), func(f *serveFlags) { f.providers.tazapay = "" })
	require.NotContains(t, s.pipeline.Providers(), "tazapay")
	require.Contains(t, s.pipeline.Providers(), "tweed")
}

// A reports directory serve cannot write would fail only at the nightly
// report, long after /readyz said all was well: serve refuses it at start,
// as it refuses a store it cannot write.
func TestServe_RefusesReportsDirItCannotWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	for _, reports := range []string{"/proc/nope", filepath.Join(file, "reports")} {
		_, _, err := cli(t, nil, "serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "o.db"), "--reports-dir", reports)
		require.ErrorContains(t, err, "reports directory "+reports)
		require.Equal(t, 1, exitCode(err))
	}
	_, _, err := cli(t, map[string]string{"ORDERSTATE_REPORTS_DIR": "/proc/nope"}, "serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "o.db"))
	require.ErrorContains(t, err, "reports directory /proc/nope")

	// A directory that does not exist yet is made at start.
	s := startTestSidecar(t, filepath.Join(dir, "o.db"), func(f *serveFlags) { f.recon.reportsDir = filepath.Join(dir, "new", "reports") })
	require.DirExists(t, filepath.Join(dir, "new", "reports"))
	entries, err := os.ReadDir(filepath.Join(dir, "new", "reports"))
	require.NoError(t, err)
	require.Empty(t, entries, "the check leaves nothing behind")
	require.NoError(t, s.stop())
}

// The schedules and the reports directory are shared with serve, so one
// configuration and one environment work for both commands; a sweep run
// now uses none of them, says so, and does not fail on them.
func TestReconcile_ServeOnlySettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "o.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{Logger: discardLogger()})
	require.NoError(t, err)
	require.NoError(t, db.Close())

	help, _, err := cli(t, nil, "reconcile", "-h")
	require.NoError(t, err, "help asked for is not an error")
	for _, name := range []string{"sweep-schedule", "report-schedule", "reports-dir"} {
		require.Contains(t, flagHelp(t, help, name), "used by serve only")
	}
	for _, name := range []string{"redirect-grace", "stuck-after"} {
		require.NotContains(t, flagHelp(t, help, name), "serve only")
	}
	serveHelp, _, _ := cli(t, nil, "serve", "-h")
	require.NotContains(t, serveHelp, "serve only")

	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{args: []string{"--report-schedule", "bad"}},
		{args: []string{"--sweep-schedule", "not a schedule"}},
		{args: []string{"--reports-dir", "/proc/nope"}},
		{env: map[string]string{"ORDERSTATE_REPORT_SCHEDULE": "bad", "ORDERSTATE_SWEEP_SCHEDULE": "bad", "ORDERSTATE_REPORTS_DIR": "/proc/nope"}},
	} {
		out, _, err := cli(t, tc.env, append([]string{"reconcile", "--db", path}, tc.args...)...)
		require.NoError(t, err, "%v %v", tc.args, tc.env)
		require.Contains(t, out, "0 raised, 0 resolved")
	}
}

// flagHelp is what a command's -h says of one flag: its line and the
// description below it.
func flagHelp(t *testing.T, help, name string) string {
	t.Helper()
	lines := strings.Split(help, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "  --"+name+" ") && i+1 < len(lines) {
			return l + "\n" + lines[i+1]
		}
	}
	t.Fatalf("-h does not list --%s:\n%s", name, help)
	return ""
}

// The code word of an engine error ("invalid", "unavailable") is for the
// API's callers; a person at a terminal gets the message alone, and the
// exit status is unchanged.
func TestErrorsHaveNoCodeWord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "o.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{Logger: discardLogger()})
	require.NoError(t, err)
	require.NoError(t, db.Close())

	_, _, err = cli(t, nil, "reconcile", "--db", path, "--redirect-grace", "-1h")
	require.EqualError(t, err, "--redirect-grace (ORDERSTATE_REDIRECT_GRACE) -1h0m0s: want a duration above zero, such as 15m")
	require.Equal(t, engine.EINVALID, engine.ErrorCode(err), "the code is still there for whoever branches on it")
	require.Equal(t, 1, exitCode(err))

	for _, args := range [][]string{{"order", "--db", dir, "X"}, {"report", "--db", dir}, {"replay", "--db", dir}} {
		_, _, err = cli(t, nil, args...)
		require.Error(t, err)
		require.True(t, strings.HasPrefix(err.Error(), "cannot open database "+dir+": "), "%s: %v", args[0], err)
		require.Equal(t, 1, exitCode(err))
	}
	_, _, err = cli(t, nil, "serve", "--addr", "127.0.0.1:0", "--db", dir, "--reports-dir", filepath.Join(dir, "reports"))
	require.True(t, strings.HasPrefix(err.Error(), "cannot open database "+dir+": "), "serve: %v", err)
}

// A variable that does not parse says what was expected, not just
// "parse error".
func TestEnvironmentParseErrorsSayWhatIsWanted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cmd       string
		name, val string
		want      string
	}{
		{"serve", "ORDERSTATE_MAX_BODY", "abc", `ORDERSTATE_MAX_BODY="abc": want a size in bytes like 262144`},
		{"serve", "ORDERSTATE_MAX_INFLIGHT", "many", `ORDERSTATE_MAX_INFLIGHT="many": want a number of webhooks like 512`},
		{"serve", "ORDERSTATE_TWEED_ALLOW_UNSIGNED", "yes please", `ORDERSTATE_TWEED_ALLOW_UNSIGNED="yes please": want true or false`},
		{"serve", "ORDERSTATE_STUCK_AFTER", "1", `ORDERSTATE_STUCK_AFTER="1": want a duration such as 90s, 15m or 24h`},
		{"reconcile", "ORDERSTATE_JSON", "maybe", `ORDERSTATE_JSON="maybe": want true or false`},
		{"demo", "ORDERSTATE_SEED", "-1", `ORDERSTATE_SEED="-1": want a whole number of 0 or more like 1`},
		{"demo", "ORDERSTATE_ORDERS", "lots", `ORDERSTATE_ORDERS="lots": want a whole number like 3000`},
	} {
		_, _, err := cli(t, map[string]string{tc.name: tc.val}, tc.cmd)
		require.EqualError(t, err, tc.want)
	}
}

// A command that takes flags only refuses a stray word rather than run
// with settings the user did not mean (a flag missing its dashes, say).
func TestCommands_RefuseStrayArguments(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"replay", "fsm", "reconcile", "report"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			_, _, err := cli(t, nil, cmd, "fix")
			require.ErrorContains(t, err, cmd+` takes no arguments; got ["fix"]`)
		})
	}
}

// serve warns when /v1 has no token and other hosts can connect.
func TestLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true, "127.0.0.2:9": true,
		"0.0.0.0:8080": false, "[::]:8080": false, ":8080": false, "10.0.0.5:8080": false, "shop.example:80": false,
	} {
		require.Equal(t, want, loopback(addr), addr)
	}
}

// A taken port fails serve before it makes a store file.
func TestServe_TakenPortMakesNoStore(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	dir := t.TempDir()
	_, _, err = cli(t, map[string]string{"ORDERSTATE_TWEED_SECRET": testTweedSecret}, "serve", "--addr", ln.Addr().String(),
		"--db", filepath.Join(dir, "o.db"), "--reports-dir", filepath.Join(dir, "reports"))
	require.ErrorContains(t, err, "listen on "+ln.Addr().String())
	require.NoFileExists(t, filepath.Join(dir, "o.db"))
}

// TestHelp: help asked for goes to standard output with status 0, so it
// can be paged or searched; a mistake's usage goes to standard error.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"serve", "--help"}, {"report", "-h"}, {"help", "replay"}} {
		out, errs, err := cli(t, nil, args...)
		require.NoError(t, err, "%v", args)
		require.Contains(t, out, "Usage: orderstate "+map[string]string{"serve": "serve", "report": "report", "help": "replay"}[args[0]], "%v", args)
		require.Contains(t, out, "--db (ORDERSTATE_DB, default orderstate.db)", "%v", args)
		require.Empty(t, errs, "%v", args)
	}
	out, _, err := cli(t, nil, "--help")
	require.NoError(t, err)
	require.Contains(t, out, "Commands:")

	out, errs, err := cli(t, nil, "reconcile", "--bogus")
	require.Error(t, err)
	require.NotErrorIs(t, err, flag.ErrHelp)
	require.Empty(t, out)
	require.Contains(t, errs, "flag provided but not defined: -bogus")
	require.Contains(t, errs, "Usage: orderstate reconcile")
	require.Equal(t, 1, exitCode(err))

	_, errs, err = cli(t, nil)
	require.Equal(t, 2, exitCode(err), "no command")
	require.Contains(t, errs, "Commands:")
}

// TestServe_RefusesUnusableSettingsNamingThem: a value the server would
// replace with a default, or run every second, is refused at start with
// the flag and its variable named.
func TestServe_RefusesUnusableSettingsNamingThem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--stuck-after", "0"}, want: "--stuck-after (ORDERSTATE_STUCK_AFTER) 0s: want a duration above zero"},
		{args: []string{"--redirect-grace", "-5m"}, want: "--redirect-grace (ORDERSTATE_REDIRECT_GRACE) -5m0s: want a duration above zero"},
		{env: map[string]string{"ORDERSTATE_SWEEP_SCHEDULE": "@every 0s"}, want: `--sweep-schedule (ORDERSTATE_SWEEP_SCHEDULE) "@every 0s": an interval of 0s; the shortest is 1s`},
		{args: []string{"--report-schedule", "every 5m"}, want: `--report-schedule (ORDERSTATE_REPORT_SCHEDULE) "every 5m": expected exactly 5 fields`},
		{args: []string{"--sweep-schedule", "CRON_TZ=UTC @every 500ms"}, want: "an interval of 500ms; the shortest is 1s"},
		{args: []string{"--shutdown-timeout", "-1s"}, want: "--shutdown-timeout (ORDERSTATE_SHUTDOWN_TIMEOUT) -1s: want a duration above zero"},
		{args: []string{"--busy-timeout", "0s"}, want: "--busy-timeout (ORDERSTATE_BUSY_TIMEOUT) 0s: want a duration above zero"},
		{args: []string{"--body-timeout", "0s"}, want: "--body-timeout (ORDERSTATE_BODY_TIMEOUT) 0s: want a duration above zero"},
		{env: map[string]string{"ORDERSTATE_BODY_TIMEOUT": "20s"}, want: "--body-timeout (ORDERSTATE_BODY_TIMEOUT) 20s: want at most 15s, the limit on a whole request"},
	} {
		db := filepath.Join(dir, "never.db")
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db, "--reports-dir", filepath.Join(dir, "reports")}, tc.args...)
		_, _, err := cli(t, tc.env, args...)
		require.ErrorContains(t, err, tc.want, "%v %v", tc.args, tc.env)
		require.NoFileExists(t, db, "refused before the store is made")
	}
}

// TestReplay_SaysWhenTheEnvironmentTurnedFixOn: a shared environment file
// may set ORDERSTATE_FIX; a replay that writes must say why it does.
func TestReplay_SaysWhenTheEnvironmentTurnedFixOn(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "o.db")
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{Logger: discardLogger()})
	require.NoError(t, err)
	require.NoError(t, db.Close())

	out, errs, err := cli(t, map[string]string{"ORDERSTATE_FIX": "true"}, "replay", "--db", path)
	require.NoError(t, err)
	require.Contains(t, errs, "--fix is on from ORDERSTATE_FIX=true")
	require.Contains(t, out, "0 changed")
	for _, args := range [][]string{{"replay", "--db", path, "--fix"}, {"replay", "--db", path, "-fix=true"}, {"replay", "--db", path}} {
		_, errs, err = cli(t, nil, args...)
		require.NoError(t, err)
		require.Empty(t, errs, "%v", args)
	}
}

func TestOnCommandLine(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]bool{
		"--fix": true, "-fix": true, "--fix=false": true, "-fix=true": true,
		"--db fix": false, "--fixes": false, "-- --fix": false, "": false,
	} {
		require.Equal(t, want, onCommandLine(strings.Fields(args), "fix"), args)
	}
}
