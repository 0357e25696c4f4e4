package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestREADME_ConfigurationTableMatchesFlags keeps the README's
// configuration table in step with serve's flags, variables and defaults.
func TestREADME_ConfigurationTableMatchesFlags(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	var f serveFlags
	fs := newFlagSet("serve", "serve", io.Discard)
	f.register(fs)
	n := 0
	fs.VisitAll(func(fl *flag.Flag) {
		n++
		def := "(empty)"
		if fl.DefValue != "" {
			def = "`" + fl.DefValue + "`"
		}
		row := fmt.Sprintf("| `--%s` | `%s` | %s |", fl.Name, envName(fl.Name), def)
		require.True(t, strings.Contains(string(readme), row), "README.md lacks the row %s", row)
	})
	require.Greater(t, n, 15)
	for _, v := range []string{"ORDERSTATE_ADDR", "ORDERSTATE_DB", "ORDERSTATE_TOKENZ_SECRET", "ORDERSTATE_YOCO_SECRET",
		"ORDERSTATE_TAZAPAY_SECRET", "ORDERSTATE_TWEED_SECRET", "ORDERSTATE_REDIRECT_GRACE", "ORDERSTATE_STUCK_AFTER",
		"ORDERSTATE_SWEEP_SCHEDULE", "ORDERSTATE_REPORT_SCHEDULE", "ORDERSTATE_REPORTS_DIR"} {
		require.Contains(t, string(readme), v)
	}
}
