package engine

import (
	"context"
	"time"
)

// RawStore is the part of a store that keeps each webhook's raw request
// (its body and the headers RedactHeaders keeps) beside the event parsed
// from it. Raw requests hold what customers typed into a checkout, names,
// emails and phone numbers, so they are not kept for ever: a purge empties
// them, and leaves the event's facts and the order's timeline as they
// were. Both stores are one.
type RawStore interface {
	// RawRequest returns the raw request of the event numbered seq (a
	// timeline's seq); for a duplicate delivery, the original's, which it
	// repeated. A purged one comes back with PurgedAt set and no body.
	// Returns ENOTFOUND.
	RawRequest(ctx context.Context, seq int64) (*RawRequest, error)
	// PurgeRaw purges the raw requests of events received before cutoff,
	// at most limit of them, oldest first, in one transaction that also
	// records the purge; more says whether some remain. Running it again
	// with the same cutoff purges nothing twice.
	PurgeRaw(ctx context.Context, cutoff time.Time, limit int) (p RawPurge, more bool, err error)
	// PurgeOrderRaw purges the raw requests of every event of the order
	// the shop registered as orderID, and of any order not registered
	// whose webhooks named it as the shop's reference, and records the
	// purge. Returns ENOTFOUND when no order has that id.
	PurgeOrderRaw(ctx context.Context, orderID string) (RawPurge, error)
}

// RawRequest is a webhook's request as it was stored.
type RawRequest struct {
	// Seq is the stored event's number; for a duplicate, its original's.
	Seq      int64
	Provider string
	// EventID is the provider's id of the event.
	EventID    string
	ReceivedAt time.Time
	// Header holds the headers as RedactHeaders kept them: signatures and
	// any header not known to be harmless read "[redacted]".
	Header map[string]string
	Body   []byte
	// PurgedAt, when set, is when the body and headers were purged.
	PurgedAt *time.Time
}

// RawPurge counts what a purge emptied: raw requests, and the bytes of
// their bodies and headers.
type RawPurge struct {
	Requests int   `json:"requests"`
	Bytes    int64 `json:"bytes"`
}

// Add adds q to p.
func (p *RawPurge) Add(q RawPurge) {
	p.Requests += q.Requests
	p.Bytes += q.Bytes
}

// Why raw requests were purged.
const (
	// PurgeRetention is a purge of those older than --retain-raw.
	PurgeRetention = "retention"
	// PurgeRequest is a purge of one order's, asked for by a person
	// (orderstate purge --order).
	PurgeRequest = "request"
)

// PurgeCount is what was purged for one reason in a report's period.
type PurgeCount struct {
	Reason string
	RawPurge
	// Purges counts the purges: transactions of a retention run, orders
	// purged on request.
	Purges int
}
