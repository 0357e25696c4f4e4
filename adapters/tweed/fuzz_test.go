package tweed_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderstate/orderstate/adapters/tweed"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// FuzzVerifyParse checks, for any body: nothing panics; a signature made
// with the wrong secret, or an arbitrary header value, never verifies; a
// correctly signed body always verifies and then parses or fails with
// EINVALID.
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
	f.Add([]byte(`{"type":"CHECKOUT_STATUS_UPDATED","data":{"status":"done","checkoutData":{"checkoutId":"x"}}}`), "sha256=00")
	f.Add([]byte(`null`), "garbage")

	a := tweed.New(secret)
	open := tweed.New()
	open.AllowUnsigned = true
	now := time.Unix(1738706000, 0)
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		wrong := &engine.Request{Header: tweed.Sign("wrong-"+secret, body), Body: body}
		if err := a.Verify(wrong, now); engine.ErrorCode(err) != engine.EUNAUTHORIZED {
			t.Fatalf("a wrong secret verified or failed oddly: %v", err)
		}

		right := signed(body)
		if !strings.EqualFold(strings.TrimSpace(header), right.Header.Get(tweed.SignatureHeader)) {
			forged := &engine.Request{Header: right.Header.Clone(), Body: body}
			forged.Header.Set(tweed.SignatureHeader, header)
			if err := a.Verify(forged, now); engine.ErrorCode(err) != engine.EUNAUTHORIZED {
				t.Fatalf("an arbitrary signature verified or failed oddly: %v", err)
			}
		}

		if err := a.Verify(right, now); err != nil {
			t.Fatalf("a correctly signed body did not verify: %v", err)
		}
		ev, err := a.Parse(right)
		if err != nil {
			if engine.ErrorCode(err) != engine.EINVALID {
				t.Fatalf("parse: %v", err)
			}
			return
		}
		checkEvent(t, ev)
		if ev.Unsigned {
			t.Fatal("a signed event is marked unsigned")
		}
		if ev, err := open.Parse(&engine.Request{Body: body}); err == nil && !ev.Unsigned {
			t.Fatal("an unsigned event is not marked unsigned")
		}
	})
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
}
