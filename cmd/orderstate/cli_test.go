package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// cli runs the orderstate command line with env as the environment.
func cli(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errs bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errs)
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
