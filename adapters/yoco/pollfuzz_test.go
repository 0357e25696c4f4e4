package yoco

import (
	"errors"
	"testing"

	"github.com/orderstate/orderstate/engine"
)

// FuzzPollAnswer checks, for any answer body: nothing panics; a body is
// either mapped to no fact or to a valid poll event about the checkout
// asked for, or refused as malformed.
func FuzzPollAnswer(f *testing.F) {
	f.Add([]byte(`{"id":"ch_1","status":"completed","amount":12500,"currency":"ZAR","paymentId":"p_1","processingMode":"live"}`))
	f.Add([]byte(`{"id":"ch_1","status":"created","amount":12500,"currency":"ZAR","paymentId":null}`))
	f.Add([]byte(`{"id":"ch_1","status":"completed","amount":-1,"currency":"zz"}`))
	f.Add([]byte(`{"id":"ch_2","status":"completed"}`))
	f.Add([]byte(`{"errorType":"not_found"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := ParseAnswer(body, "ch_1")
		if err != nil {
			var pe *engine.PollError
			if !errors.As(err, &pe) || pe.Reason != "malformed" {
				t.Fatalf("want a malformed PollError, got %v", err)
			}
			return
		}
		if a.Event == nil {
			return
		}
		ev := *a.Event
		ev.Provider = Name
		if err := engine.ValidateEvent(ev); err != nil {
			t.Fatalf("the poll's event is not fit to store: %v (%+v)", err, ev)
		}
	})
}
