//go:build linux

package reliability

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// prlimitFsize sets the soft RLIMIT_FSIZE of process pid and returns the
// limits it replaced. A process may lower its own children's soft limit and
// raise it back up to the hard one without privileges, which makes it a
// full or read-only disk that works in any CI.
func prlimitFsize(t *testing.T, pid int, soft uint64) syscall.Rlimit {
	t.Helper()
	var old syscall.Rlimit
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_FSIZE), 0,
		uintptr(unsafe.Pointer(&old)), 0, 0); errno != 0 {
		t.Fatalf("prlimit: %v", errno)
	}
	set := syscall.Rlimit{Cur: soft, Max: old.Max}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_FSIZE),
		uintptr(unsafe.Pointer(&set)), 0, 0, 0); errno != 0 {
		t.Fatalf("prlimit: %v", errno)
	}
	return old
}

// TestStoreFailure_DiskFullAndReadOnlyFilesystem limits how far serve may
// write into any file. At the WAL's current size the WAL cannot grow: a full
// disk, on which webhooks are stored while a restarted log has room and
// refused when it has none, each answer true to what was stored. At zero no
// byte can be written anywhere: a filesystem remounted
// read-only under a running process. (The process ignores SIGXFSZ, as Go
// programs do, so a write fails with EFBIG and SQLite reports an I/O error.)
func TestStoreFailure_DiskFullAndReadOnlyFilesystem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		limit func(dbPath string) uint64
	}{
		{"DiskFull", func(dbPath string) uint64 {
			fi, err := os.Stat(dbPath + "-wal")
			if err != nil {
				t.Fatal(err)
			}
			return uint64(fi.Size())
		}},
		{"ReadOnlyFilesystem", func(string) uint64 { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dbPath := filepath.Join(t.TempDir(), "o.db")
			p := startProc(t, dbPath, procOpts{})
			before := someHooks("before", 4)
			acceptedAfterRecovery(t, p, before)

			old := prlimitFsize(t, p.cmd.Process.Pid, tc.limit(dbPath))
			var stored, during []*hook
			if tc.name == "DiskFull" {
				stored, during = sendWhileFull(t, p)
			} else {
				during = someHooks("broken", 8)
				refusedWhileBroken(t, p, during)
			}
			prlimitFsize(t, p.cmd.Process.Pid, old.Cur)

			acceptedAfterRecovery(t, p, during)
			storeConsistent(t, p, dbPath, append(append(before, stored...), during...))
		})
	}
}

// sendWhileFull sends webhooks to a store on a full disk until it has
// refused some and returns what it answered 200 (stored) and 503 (not
// stored) apart. Checkpoints let SQLite restart the log and rewrite it from
// its start, which a full disk allows, so some go through between refusals.
func sendWhileFull(t *testing.T, p *proc) (stored, refused []*hook) {
	t.Helper()
	for _, h := range someHooks("filling", 400) {
		st, retry, e, _, err := p.postRaw(h)
		if err != nil {
			t.Fatalf("%s %s: %v", h.provider, h.key, err)
		}
		switch {
		case st == http.StatusOK:
			stored = append(stored, h)
		case st == http.StatusServiceUnavailable && retry != "" && strings.Contains(e.Error.Message, "retry"):
			refused = append(refused, h)
		default:
			t.Fatalf("%s %s on a full disk: %d Retry-After %q %+v; want 200, or 503 saying retry", h.provider, h.key, st, retry, e.Error)
		}
		if len(refused) >= 8 {
			return stored, refused
		}
	}
	t.Fatalf("%d webhooks stored, %d refused: the disk never filled", len(stored), len(refused))
	return nil, nil
}

// TestStoreFailure_ReadOnlyFileAtStart starts serve on a database it may
// not write: the file read-only, or its directory (where SQLite keeps the
// -wal and -shm files). serve must refuse to start, saying why, rather than
// run a sidecar that can store nothing; once the permissions are fixed it
// starts and stores again. As root, permissions bind nobody, so the
// subprocess runs as the unprivileged user 65534.
func TestStoreFailure_ReadOnlyFileAtStart(t *testing.T) {
	t.Parallel()
	var sys *syscall.SysProcAttr
	root := os.Geteuid() == 0
	if root {
		sys = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	readOnly := regexp.MustCompile(`(?i)read-?only`)
	for _, tc := range []struct {
		name      string
		file, dir os.FileMode
	}{
		{name: "ReadOnlyFile", file: 0o444, dir: 0o755},
		{name: "ReadOnlyDirectory", file: 0o644, dir: 0o555},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			top := t.TempDir()
			dir := filepath.Join(top, "store")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			dbPath := filepath.Join(dir, "o.db")
			if root {
				// Let the other user reach the directory and own the store.
				for _, d := range []string{filepath.Dir(top), top} {
					if err := os.Chmod(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.Chown(dir, 65534, 65534); err != nil {
					t.Fatal(err)
				}
			}
			p := startProc(t, dbPath, procOpts{sysProc: sys})
			if code := p.term(30 * time.Second); code != 0 {
				t.Fatalf("first run exited %d\n%s", code, p.stderr.String())
			}
			if err := os.Chmod(dbPath, tc.file); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.dir); err != nil {
				t.Fatal(err)
			}
			p = startProc(t, dbPath, procOpts{sysProc: sys, noWait: true})
			code := p.wait(30 * time.Second)
			log := p.stderr.String()
			if code == 0 || servingAddr(log) != "" {
				t.Fatalf("serve ran on a read-only store (exit %d):\n%s", code, log)
			}
			if !readOnly.MatchString(log) || !regexp.MustCompile(regexp.QuoteMeta(dbPath)).MatchString(log) {
				t.Errorf("serve's error does not say the store %s is read-only:\n%s", dbPath, log)
			}

			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dbPath, 0o644); err != nil {
				t.Fatal(err)
			}
			p = startProc(t, dbPath, procOpts{sysProc: sys})
			hooks := someHooks("fixed", 4)
			acceptedAfterRecovery(t, p, hooks)
			storeConsistent(t, p, dbPath, hooks)
		})
	}
}
