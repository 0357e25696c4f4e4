package reliability

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// postRaw delivers h and returns the status, the Retry-After header and
// the error body, if any.
func (p *proc) postRaw(h *hook) (int, string, errorBody, string, error) {
	req, err := http.NewRequest(http.MethodPost, p.url+"/webhooks/"+h.provider, bytes.NewReader(h.body))
	if err != nil {
		return 0, "", errorBody{}, "", err
	}
	req.Header = h.header(time.Now())
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, "", errorBody{}, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", errorBody{}, "", err
	}
	var e errorBody
	var res ingestResult
	if resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(b, &res)
	} else {
		err = json.Unmarshal(b, &e)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), e, res.Result, err
}

// someHooks returns n events of fresh orders of every provider.
func someHooks(prefix string, n int) []*hook {
	l := &ledger{prefix: prefix, rng: rand.New(rand.NewPCG(1, 2))}
	out := make([]*hook, n)
	for i := range out {
		out[i] = l.newHook()
	}
	return out
}

// refusedWhileBroken checks that every hook is refused with 503, a
// Retry-After and the store's message, and that /readyz says not ready.
func refusedWhileBroken(t *testing.T, p *proc, hooks []*hook) {
	t.Helper()
	for _, h := range hooks {
		st, retry, e, _, err := p.postRaw(h)
		if err != nil {
			t.Fatalf("%s %s: %v", h.provider, h.key, err)
		}
		if st != http.StatusServiceUnavailable || retry == "" || e.Error.Code != "unavailable" || !strings.Contains(e.Error.Message, "retry") {
			t.Errorf("%s %s while the store is broken: %d Retry-After %q %+v; want 503, a Retry-After and a message saying retry",
				h.provider, h.key, st, retry, e.Error)
		}
	}
	st, body, err := p.get("/readyz")
	if err != nil || st != http.StatusServiceUnavailable || !strings.Contains(string(body), "not ready") {
		t.Errorf("/readyz while the store is broken: %d %s %v; want 503 not ready", st, body, err)
	}
}

// acceptedAfterRecovery retries the refused hooks, as providers do, and
// checks each is applied now: not a duplicate, so the refused attempts
// stored nothing.
func acceptedAfterRecovery(t *testing.T, p *proc, hooks []*hook) {
	t.Helper()
	for _, h := range hooks {
		st, _, e, result, err := p.postRaw(h)
		if err != nil || st != http.StatusOK {
			t.Errorf("%s %s after the store recovered: %d %+v %v; want 200", h.provider, h.key, st, e.Error, err)
			continue
		}
		if result == "duplicate" {
			t.Errorf("%s %s was refused with 503 and yet stored: its retry is a duplicate", h.provider, h.key)
		}
	}
	if st, body, err := p.get("/readyz"); err != nil || st != http.StatusOK {
		t.Errorf("/readyz after the store recovered: %d %s %v; want 200", st, body, err)
	}
}

// storeConsistent stops p and checks the file: each hook stored once, the
// stored states the replay of the events, SQLite's integrity check clean.
func storeConsistent(t *testing.T, p *proc, dbPath string, hooks []*hook) {
	t.Helper()
	if code := p.term(30 * time.Second); code != 0 {
		t.Errorf("serve exited %d after SIGTERM\n%s", code, p.stderr.String())
	}
	if diffs, out := runReplay(t, dbPath); diffs != 0 {
		t.Errorf("replay: %d orders would change\n%s", diffs, out)
	}
	db := openStore(t, dbPath)
	ctx := context.Background()
	for _, h := range hooks {
		n, err := db.Stored(ctx, h.provider, h.key)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%s %s is stored %d times; want once", h.provider, h.key, n)
		}
	}
	audit, err := db.Audit(ctx)
	if err != nil || audit.Integrity != "ok" {
		t.Errorf("integrity_check: %q %v", audit.Integrity, err)
	}
}

// TestStoreFailure_Locked holds the write lock from another connection, as
// a long `orderstate reconcile` or a backup tool could, past serve's busy
// timeout.
func TestStoreFailure_Locked(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "locked.db")
	p := startProc(t, dbPath, procOpts{args: []string{"--busy-timeout", "150ms"}})
	before := someHooks("before", 4)
	acceptedAfterRecovery(t, p, before)

	other, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	during := someHooks("locked", 8)
	refusedWhileBroken(t, p, during)
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	acceptedAfterRecovery(t, p, during)
	storeConsistent(t, p, dbPath, append(before, during...))
}
