package simulate

import (
	"net/http"
	"time"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/tokenz"
	"github.com/orderstate/orderstate/adapters/tweed"
	"github.com/orderstate/orderstate/adapters/yoco"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Action is what a delivery does.
type Action int

// Actions.
const (
	// Register is the shop's PUT /v1/orders/{id}.
	Register Action = iota
	// Webhook is a provider's POST /webhooks/{provider}.
	Webhook
	// Redirect is the shop's POST /v1/orders/{id}/redirect.
	Redirect
)

func (a Action) String() string {
	switch a {
	case Register:
		return "register"
	case Webhook:
		return "webhook"
	case Redirect:
		return "redirect"
	}
	return "unknown"
}

// Order is one order of the day: who pays through whom, what reaches
// orderstate and in which sequence, and what orderstate must conclude.
type Order struct {
	// Index is the order's position in the day; with the seed it
	// determines everything else.
	Index      int
	ID         string
	Provider   string
	CheckoutID string
	Amount     int64
	Currency   string
	Mode       string
	// OtherIDs are the provider's other ids for the order the shop knew
	// and registered with it (a Tazapay checkout's payin).
	OtherIDs []string
	// Flow names the order's story: "paid", "refunded", "expired"...
	Flow string
	// Faults lists the faults injected into this order.
	Faults []string
	// Deliveries are the requests that reach orderstate, in sequence.
	Deliveries []Delivery
	// Polled is what the provider's API says of the order's checkout when
	// asked once its deliveries are in: the payment whose webhooks never
	// came (FaultUnsent); nil when its API has nothing the webhooks did
	// not bring.
	Polled *Event
	// Want is what orderstate must end up with.
	Want Truth
}

// Truth is what orderstate must conclude about an order once its
// deliveries are in and the reconciler has swept with the clock moved past
// the redirect grace and the stuck time-to-live.
type Truth struct {
	State sm.State
	// Anomalies are the kinds the order must have, sorted; whatever their
	// status (a redirect mismatch may have been resolved since).
	Anomalies []string
	// Orphans are orders orderstate keeps apart from this one because no
	// webhook it received tied them to the registered checkout (Tazapay
	// payment attempts name only the payin).
	Orphans []Orphan
}

// Orphan is an order orderstate made from webhooks nobody registered.
type Orphan struct {
	Provider   string
	CheckoutID string
	State      sm.State
	Anomalies  []string
}

// Delivery is one request reaching orderstate.
type Delivery struct {
	Action   Action
	Provider string
	OrderID  string
	// At is when, in the shop's day, the request is sent; deliveries are
	// sequenced by it.
	At   time.Time
	Body []byte
	// Event is what a webhook means, as the provider's adapter must read
	// it; nil for the shop's requests.
	Event *Event
	// Attempt counts deliveries of the same webhook: 0 is the first, 1 the
	// first retry.
	Attempt int
	// Forged marks a webhook signed with the wrong secret: orderstate must
	// answer 401 and store nothing.
	Forged bool
	// Outcome is what a redirect claimed.
	Outcome string
	// msgID is Yoco's webhook-id and Tweed's X-Tweed-Delivery ("" for none).
	msgID string
}

// Event is a webhook as the simulator meant it: the fields the provider's
// adapter must parse out of the body. Times are as precise as the body
// carries them.
type Event struct {
	Type       string
	Kind       sm.Kind
	EventID    string
	DedupeKey  string
	CheckoutID string
	Refs       []string
	Reference  string
	Time       time.Time
	Amount     int64
	Currency   string
	Mode       string
}

// WantStatus is the HTTP status orderstate must answer the delivery with.
func (d *Delivery) WantStatus() int {
	if d.Forged {
		return http.StatusUnauthorized
	}
	return http.StatusOK
}

// Dated reports whether the delivery's signature covers the moment it is
// sent (a Tokenz or Yoco webhook), so that its Request must be made when it
// is sent. Any other delivery's Request is the same whenever it is made, so
// a load generator can make it once, ahead of time, as a provider signs on
// its own machines.
func (d *Delivery) Dated() bool {
	return d.Action == Webhook && (d.Provider == Tokenz || d.Provider == Yoco)
}

// Request is one HTTP request as it goes on the wire, without the host.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// Request builds the delivery's request. Tokenz and Yoco sign now, which
// must be the receiver's clock within their tolerance (5 and 3 minutes);
// the others sign the body alone. A forged delivery is signed with a
// well-formed wrong secret.
func (d *Delivery) Request(secrets Secrets, now time.Time) Request {
	switch d.Action {
	case Register:
		return Request{Method: http.MethodPut, Path: "/v1/orders/" + d.OrderID, Header: jsonHeader(), Body: d.Body}
	case Redirect:
		return Request{Method: http.MethodPost, Path: "/v1/orders/" + d.OrderID + "/redirect", Header: jsonHeader(), Body: d.Body}
	}
	if d.Forged {
		secrets = forger
	}
	var h http.Header
	switch d.Provider {
	case Tokenz:
		h = tokenz.Sign(secrets.Tokenz, d.Body, now)
	case Yoco:
		h = yoco.Sign(secrets.Yoco, d.msgID, d.Body, now)
	case Tazapay:
		h = tazapay.Sign(secrets.Tazapay, d.Body)
	case Tweed:
		h = tweed.Sign(secrets.Tweed, d.Body)
		if d.msgID != "" {
			h.Set(tweed.DeliveryHeader, d.msgID)
		}
	}
	h.Set("Content-Type", "application/json")
	return Request{Method: http.MethodPost, Path: "/webhooks/" + d.Provider, Header: h, Body: d.Body}
}

func jsonHeader() http.Header {
	return http.Header{"Content-Type": {"application/json"}}
}

// Webhooks counts the order's webhook deliveries, forged ones included.
func (o *Order) Webhooks() int {
	n := 0
	for i := range o.Deliveries {
		if o.Deliveries[i].Action == Webhook {
			n++
		}
	}
	return n
}

// HasFault reports whether fault was injected into the order.
func (o *Order) HasFault(fault string) bool {
	for _, f := range o.Faults {
		if f == fault {
			return true
		}
	}
	return false
}
