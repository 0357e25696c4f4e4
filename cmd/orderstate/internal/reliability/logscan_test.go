package reliability

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/tokenz"
	"github.com/orderstate/orderstate/adapters/tweed"
	"github.com/orderstate/orderstate/adapters/yoco"
)

// signatureHeaders are the headers that carry a signature or a credential.
var signatureHeaders = []string{tokenz.SignatureHeader, yoco.SignatureHeader, tazapay.SignatureHeader, tweed.SignatureHeader, "Authorization"}

// TestLogsHoldNoSecrets runs a full serve session at debug level: signed
// webhooks of every provider, duplicates, and every kind of refusal (wrong
// secret, garbled or missing signature, altered body, stale timestamp,
// malformed body, a store that cannot commit), and the shop API with right
// and wrong tokens. No secret, token or signature value sent may appear in
// the log, and every log line must be structured (JSON with time, level and
// msg). The store's file is scanned the same way: raw requests are kept
// with their signature headers redacted.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	const token = "shop-token-4b8e1f0c9a7d"
	dbPath := filepath.Join(t.TempDir(), "logs.db")
	p := startProc(t, dbPath, procOpts{
		args: []string{"--log-level", "debug", "--busy-timeout", "100ms"},
		env:  []string{"ORDERSTATE_TOKEN=" + token},
	})
	var sent []string // every credential value put on the wire
	send := func(path string, body []byte, h http.Header) int {
		for _, name := range signatureHeaders {
			sent = append(sent, h.Values(name)...)
		}
		st, _, err := p.do(context.Background(), http.MethodPost, path, body, h)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	l := &ledger{prefix: "s", rng: rand.New(rand.NewPCG(5, 6))}
	now := time.Now()
	good, refused := 0, 0
	for range 24 {
		h := l.newHook()
		for range 2 { // the second is a duplicate
			if st := send("/webhooks/"+h.provider, h.body, h.header(time.Now())); st != http.StatusOK {
				t.Errorf("%s %s: %d", h.provider, h.key, st)
			}
			good++
		}
		var bad []http.Header
		altered := bytes.Replace(h.body, []byte(`"`), []byte(`" `), 1)
		switch h.provider {
		case "tokenz":
			bad = []http.Header{tokenz.Sign("not-the-secret", h.body, now), tokenz.Sign(tokenzSecret, h.body, now.Add(-time.Hour)),
				{tokenz.SignatureHeader: {"t:" + "1700000000000,v1:Zm9yZ2VkLXNpZ25hdHVyZS12YWx1ZQ=="}}}
		case "yoco":
			// A signature made for another delivery, sent with this one's id.
			other := yoco.Sign(yocoSecret, "another-delivery", h.body, now)
			other.Set(yoco.IDHeader, h.delivery)
			bad = []http.Header{yoco.Sign(yoco.NewSecret(), h.delivery, h.body, now), yoco.Sign(yocoSecret, h.delivery, h.body, now.Add(-time.Hour)), other}
		case "tazapay":
			bad = []http.Header{tazapay.Sign("not-the-secret", h.body), {tazapay.SignatureHeader: {"garbled+signature/value=="}}}
		case "tweed":
			bad = []http.Header{tweed.Sign("not-the-secret", h.body), {tweed.SignatureHeader: {"sha256=deadbeef" + strings.Repeat("0f", 28)}}}
		}
		for _, hd := range bad {
			hd.Set("Content-Type", "application/json")
			if st := send("/webhooks/"+h.provider, h.body, hd); st != http.StatusUnauthorized {
				t.Errorf("%s with a bad signature: %d", h.provider, st)
			}
			refused++
		}
		// Right signature, altered body; and a signed body that is not JSON.
		if st := send("/webhooks/"+h.provider, altered, h.header(time.Now())); st != http.StatusUnauthorized {
			t.Errorf("%s with an altered body: %d", h.provider, st)
		}
		junk := &hook{provider: h.provider, body: []byte(`{"id": "x", "type":`), delivery: "junk-" + h.key}
		if st := send("/webhooks/"+h.provider, junk.body, junk.header(time.Now())); st != http.StatusBadRequest && st != http.StatusUnauthorized {
			t.Errorf("%s with a malformed body: %d", h.provider, st)
		}
		refused += 2
	}
	for _, auth := range []string{"Bearer " + token, "Bearer wrong-" + token, token, "Basic c2hvcDpwYXNz", ""} {
		h := http.Header{}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		for _, name := range signatureHeaders {
			sent = append(sent, h.Values(name)...)
		}
		if _, _, err := p.do(context.Background(), http.MethodGet, "/v1/anomalies", nil, h); err != nil {
			t.Fatal(err)
		}
	}
	// A store that cannot commit logs the request at error level, with the
	// whole error chain.
	other, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		h := l.newHook()
		if st := send("/webhooks/"+h.provider, h.body, h.header(time.Now())); st != http.StatusServiceUnavailable {
			t.Errorf("%s while locked: %d", h.provider, st)
		}
	}
	_, _ = conn.ExecContext(context.Background(), `ROLLBACK`)
	conn.Close()
	if code := p.term(30 * time.Second); code != 0 {
		t.Errorf("serve exited %d", code)
	}

	needles := []string{tokenzSecret, yocoSecret, strings.TrimPrefix(yocoSecret, yoco.SecretPrefix), tazapaySecret, tweedSecret, token}
	for _, v := range sent {
		needles = append(needles, v)
		// The signature part alone, in each provider's framing.
		for _, sep := range []string{",", ":", "=", " "} {
			for _, part := range strings.Split(v, sep) {
				if len(part) >= 16 {
					needles = append(needles, part)
				}
			}
		}
	}
	log := p.stderr.String()
	files := map[string][]byte{"the log": []byte(log)}
	for _, suffix := range []string{"", "-wal"} {
		if b, err := os.ReadFile(dbPath + suffix); err == nil {
			files[filepath.Base(dbPath+suffix)] = b
		}
	}
	for name, b := range files {
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s contains a secret or signature value: %q", name, n)
			}
		}
	}

	lines, stored, refusals := 0, 0, 0
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		lines++
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("log line is not JSON: %s", sc.Text())
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("log line without %q: %s", k, sc.Text())
			}
		}
		switch rec["msg"] {
		case "webhook stored":
			stored++
		case "webhook refused":
			refusals++
		}
	}
	// The scan means something only if the requests were logged.
	if stored < good || refusals < refused {
		t.Errorf("the debug log records %d stored and %d refused webhooks; %d and %d were sent", stored, refusals, good, refused)
	}
	t.Logf("scanned %d log lines and the store for %d secret and signature values: none found", lines, len(needles))
}
