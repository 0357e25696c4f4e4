package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is set at build time with -ldflags "-X main.Version=..." (make
// build does). A plain go build or go install leaves it empty, and the
// version is then the one Go stamped into the binary: the module's
// version for go install module@version, a pseudo-version with the commit
// for go build in a git checkout.
var Version string

// build describes the running binary.
type build struct {
	// Version is -ldflags' Version, else the module version Go recorded,
	// else "devel".
	Version string
	// Revision is the commit the binary was built from; "" when Go
	// recorded none. Dirty says the work tree had changes.
	Revision string
	Dirty    bool
	// Time is the commit's time, RFC 3339; "" when unknown.
	Time      string
	GoVersion string
}

// buildOf reads the build's description from ldflags' version and what
// debug.ReadBuildInfo returned.
func buildOf(ldflags string, info *debug.BuildInfo, ok bool) build {
	b := build{Version: ldflags, GoVersion: runtime.Version()}
	if ok && info != nil {
		if info.GoVersion != "" {
			b.GoVersion = info.GoVersion
		}
		if b.Version == "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Dirty = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	return b
}

// thisBuild describes the running binary.
func thisBuild() build {
	info, ok := debug.ReadBuildInfo()
	return buildOf(Version, info, ok)
}

// String is the line `orderstate version` prints.
func (b build) String() string {
	var extra []string
	if b.Revision != "" {
		rev := b.Revision[:min(12, len(b.Revision))]
		if b.Dirty {
			rev += " with uncommitted changes"
		}
		extra = append(extra, "commit "+rev)
	}
	if b.Time != "" {
		extra = append(extra, b.Time)
	}
	extra = append(extra, b.GoVersion)
	return fmt.Sprintf("orderstate %s (%s)", b.Version, strings.Join(extra, ", "))
}

func runVersion(_ context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "version", stderr)
	if err := parseNoArgs(fs, args, env); err != nil {
		return err
	}
	_, err := fmt.Fprintln(stdout, thisBuild())
	return err
}
