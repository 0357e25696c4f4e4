package main

import (
	"bytes"
	"context"
	"debug/elf"
	"io"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVersion_FromLdflagsElseBuildInfo(t *testing.T) {
	t.Parallel()
	info := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/orderstate/orderstate", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-03-02T03:00:00Z"},
			{Key: "vcs.modified", Value: "true"}}}
	// -ldflags wins.
	b := buildOf("v2.0.0", info, true)
	require.Equal(t, "v2.0.0", b.Version)
	require.Equal(t, "orderstate v2.0.0 (commit 0123456789ab with uncommitted changes, 2026-03-02T03:00:00Z, go1.26.0)", b.String())
	// go install module@v1.4.0: the module's version.
	b = buildOf("", info, true)
	require.Equal(t, "v1.4.0", b.Version)
	require.Equal(t, "0123456789abcdef0123", b.Revision)
	require.True(t, b.Dirty)
	// go build in a work tree Go could not read: "(devel)" says nothing.
	b = buildOf("", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, true)
	require.Equal(t, "orderstate devel (go1.26.0)", b.String())
	b = buildOf("", nil, false)
	require.Equal(t, "devel", b.Version)
}

// The binary built as the Dockerfile builds it says its version both
// ways, and is static: a distroless or scratch image has no C library.
func TestVersion_Binary(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	for _, args := range [][]string{{"--version"}, {"version"}, {"-version"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
		require.True(t, strings.HasPrefix(string(out), "orderstate "+testVersion+" ("), "%v: %s", args, out)
		require.Contains(t, string(out), "go1.", "%v", args)
	}
	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary asks for no dynamic loader")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs)
}

func TestVersion_Metric(t *testing.T) {
	t.Parallel()
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	_, body := s.do("GET", "/metrics", nil, nil)
	b := thisBuild()
	require.Contains(t, string(body), `orderstate_build_info{goversion="`+b.GoVersion+`",revision="`+b.Revision+`",version="`+b.Version+`"} 1`)

	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--version"}, func(string) string { return "" }, &out, io.Discard))
	require.Equal(t, b.String()+"\n", out.String())
}
