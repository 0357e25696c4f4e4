package tazapay_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// FuzzVerifyParse checks, for any body: nothing panics; a signature made
// with the wrong secret, or an arbitrary header value, never verifies; a
// correctly signed body either verifies and then parses or fails with
// EINVALID, or is refused because it is not an event at all, in which case
// Parse refuses it too.
func FuzzVerifyParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(fixtures, "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures in %s: %v", fixtures, err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "")
	}
	f.Add([]byte(`{"id":"evt_1","created_at":1.5e9,"type":"refund.succeeded","data":{"payin":"pay_1","amount":"12"}}`), "AAAA")
	f.Add([]byte(`null`), "not base64")

	a := tazapay.New(secret)
	now := time.Unix(1747205000, 0)
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		wrong := &engine.Request{Header: tazapay.Sign("wrong-"+secret, body), Body: body}
		if err := a.Verify(wrong, now); engine.ErrorCode(err) != engine.EUNAUTHORIZED {
			t.Fatalf("a wrong secret verified or failed oddly: %v", err)
		}

		right := signed(body)
		if header != "" && !sameSignature(header, right.Header.Get("Signature")) {
			forged := &engine.Request{Header: right.Header.Clone(), Body: body}
			forged.Header.Set("Signature", header)
			if err := a.Verify(forged, now); engine.ErrorCode(err) != engine.EUNAUTHORIZED {
				t.Fatalf("an arbitrary signature verified or failed oddly: %v", err)
			}
		}

		verr := a.Verify(right, now)
		ev, perr := a.Parse(right)
		if verr != nil {
			if engine.ErrorCode(verr) != engine.EUNAUTHORIZED {
				t.Fatalf("verify: %v", verr)
			}
			if engine.ErrorCode(perr) != engine.EINVALID {
				t.Fatalf("a correctly signed body failed to verify but parsed: %v / %v", verr, perr)
			}
			return
		}
		if perr != nil {
			if engine.ErrorCode(perr) != engine.EINVALID {
				t.Fatalf("parse: %v", perr)
			}
			return
		}
		checkEvent(t, ev)
	})
}

// sameSignature reports whether header is the signature want, however it is
// padded or spaced.
func sameSignature(header, want string) bool {
	strip := func(s string) string { return strings.TrimRight(strings.TrimSpace(s), "=") }
	return strip(header) == strip(want)
}

// checkEvent asserts what the engine requires of every parsed event.
func checkEvent(t *testing.T, ev engine.Event) {
	t.Helper()
	switch {
	case ev.DedupeKey == "" || ev.EventID == "":
		t.Fatalf("event without id: %+v", ev)
	case !ev.Kind.Valid():
		t.Fatalf("kind %q", ev.Kind)
	case ev.Kind != sm.KindUnknown && ev.CheckoutID == "":
		t.Fatalf("%s event names no checkout", ev.Kind)
	case ev.Amount < 0:
		t.Fatalf("negative amount %d", ev.Amount)
	case ev.Currency != "" && len(ev.Currency) != 3:
		t.Fatalf("currency %q", ev.Currency)
	case ev.Mode != "" && ev.Mode != engine.ModeLive && ev.Mode != engine.ModeTest:
		t.Fatalf("mode %q", ev.Mode)
	case !ev.OccurredAt.IsZero() && ev.OccurredAt.Location() != time.UTC:
		t.Fatalf("occurred at %v is not UTC", ev.OccurredAt)
	}
	for _, r := range ev.Refs {
		if r == "" || r == ev.CheckoutID {
			t.Fatalf("ref %q beside checkout %q", r, ev.CheckoutID)
		}
	}
}
