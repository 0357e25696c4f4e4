package tazapay

import (
	"errors"
	"testing"

	"github.com/orderstate/orderstate/engine"
)

// FuzzPollAnswer checks, for any answer body: nothing panics; a body is
// either mapped to no fact or to a valid poll event about the checkout
// asked for, or refused as malformed.
func FuzzPollAnswer(f *testing.F) {
	f.Add([]byte(`{"status":"success","message":"","data":{"id":"chk_1","status":"active","payment_status":"paid","amount":4999,"amount_paid":4999,"invoice_currency":"USD","payin":"pay_1"}}`))
	f.Add([]byte(`{"status":"success","data":{"id":"chk_1","status":"expired","payment_status":"unpaid","amount":"6700","invoice_currency":"usd"}}`))
	f.Add([]byte(`{"status":"success","data":{"id":"chk_1","status":"active","payment_status":"processing"}}`))
	f.Add([]byte(`{"status":"error","message":"checkout not found"}`))
	f.Add([]byte(`{"status":"success","data":{"id":"chk_2"}}`))
	f.Add([]byte(`{"status":"success","data":{"id":"chk_1","payment_status":"paid","amount_paid":-5,"invoice_currency":"US"}}`))
	f.Add([]byte(`[]`))
	p := NewPoller("k", "s", "", 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := p.ParseAnswer(body, "chk_1")
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
		if ev.CheckoutID != "chk_1" || ev.Source != engine.SourcePoll {
			t.Fatalf("event about %q from %q", ev.CheckoutID, ev.Source)
		}
	})
}
