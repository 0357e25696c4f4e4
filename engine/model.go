package engine

import (
	"net/http"
	"time"

	sm "github.com/orderstate/orderstate/statemachine"
)

// Request is a webhook as it arrived: the raw bytes are what signatures are
// computed over, so nothing may re-encode them before Verify.
type Request struct {
	Header http.Header
	Body   []byte
	// Decoded is what an adapter's Verify decoded of Body, kept for its
	// Parse when the signature covers fields inside the body; only the
	// adapter that set it reads it.
	Decoded any
}

// Adapter turns one provider's webhooks into canonical events.
type Adapter interface {
	// Provider is the name used in routes and stored on events: "yoco".
	Provider() string
	// Verify checks the request's signature as the provider computes it,
	// using now for any timestamp tolerance. Returns EUNAUTHORIZED with a
	// message saying which check failed.
	Verify(req *Request, now time.Time) error
	// Parse maps a verified request to a canonical event. Returns EINVALID
	// for a body that is not the provider's shape. An event type nobody
	// documented parses with Kind statemachine.KindUnknown.
	Parse(req *Request) (Event, error)
}

// Event is one provider webhook mapped onto the canonical model.
type Event struct {
	Provider string
	// EventID is the provider's id for the event, shown in timelines.
	EventID string
	// DedupeKey is what makes a redelivery the same event: the event id for
	// most providers, a header or body hash where the body has none.
	DedupeKey string
	// Type is the provider's own event type or status, as sent.
	Type string
	Kind sm.Kind
	// CheckoutID is the provider's id of the checkout or order the event is
	// about; Refs are other provider ids naming the same one (a payin id, a
	// payment id), so events that carry only those still find their order.
	CheckoutID string
	Refs       []string
	// Reference is the shop's own order id, where the payload carries it.
	Reference  string
	OccurredAt time.Time // provider time; zero when the event has none
	Amount     int64     // minor units; 0 when the event carries none
	Currency   string    // upper-case ISO 4217; "" when none
	Mode       string    // ModeLive, ModeTest, or "" when the event does not say
	// Unsigned marks an event accepted without a signature because the
	// operator allowed it for a provider where signing is optional.
	Unsigned bool
	// Source is how orderstate learned the fact: SourceWebhook (also
	// written "") when the provider sent it, SourcePoll when orderstate
	// asked the provider's API.
	Source string
}

// Sources of an event.
const (
	SourceWebhook = "webhook"
	SourcePoll    = "poll"
)

// SourceOf is an event's source as stored: "" is a webhook.
func SourceOf(source string) string {
	if source == "" {
		return SourceWebhook
	}
	return source
}

// Modes of an order or event.
const (
	ModeLive = "live"
	ModeTest = "test"
)

// Redirect outcomes the shop reports.
const (
	RedirectSuccess = "success"
	RedirectCancel  = "cancel"
	RedirectFailure = "failure"
)

// Registration is what the shop tells orderstate when it creates a checkout.
type Registration struct {
	OrderID    string `json:"order_id"`
	Provider   string `json:"provider"`
	CheckoutID string `json:"checkout_id"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
	Mode       string `json:"mode"`
	// OtherIDs are further provider ids of the same checkout that webhooks
	// may name it by alone (Tazapay's payin id, which its payment attempt
	// events carry instead of the checkout id).
	OtherIDs []string `json:"other_ids,omitempty"`
}

// Order is the authoritative view of one order.
type Order struct {
	Ref        int64     `json:"-"`
	OrderID    string    `json:"order_id"`
	Provider   string    `json:"provider"`
	CheckoutID string    `json:"checkout_id"`
	State      sm.State  `json:"state"`
	Amount     int64     `json:"amount"`
	Currency   string    `json:"currency"`
	Mode       string    `json:"mode"`
	Registered bool      `json:"registered"`
	Captured   int64     `json:"captured_amount"`
	Refunded   int64     `json:"refunded_amount"`
	Redirect   *Redirect `json:"redirect,omitempty"`
	StateSince time.Time `json:"state_since"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	Anomalies  []Anomaly `json:"anomalies"`
	Events     []Entry   `json:"events"`
}

// Redirect is the customer's return to the shop, as the shop reported it.
type Redirect struct {
	Outcome string    `json:"outcome"`
	At      time.Time `json:"at"`
}

// Entry is one delivery in an order's timeline, in arrival order.
type Entry struct {
	Seq             int64      `json:"seq"`
	ProviderEventID string     `json:"provider_event_id"`
	ProviderType    string     `json:"provider_type"`
	Kind            sm.Kind    `json:"kind"`
	Result          sm.Result  `json:"result"`
	FromState       sm.State   `json:"from_state,omitempty"`
	ToState         sm.State   `json:"to_state,omitempty"`
	Amount          int64      `json:"amount,omitempty"`
	Currency        string     `json:"currency,omitempty"`
	Mode            string     `json:"mode,omitempty"`
	OccurredAt      *time.Time `json:"occurred_at"`
	ReceivedAt      time.Time  `json:"received_at"`
	OutOfOrder      bool       `json:"out_of_order,omitempty"`
	Unsigned        bool       `json:"unsigned,omitempty"`
	// Source is "webhook" or "poll".
	Source string `json:"source"`
}

// Anomaly kinds.
const (
	AnomalyOutOfOrder            = "out_of_order"
	AnomalyDuplicate             = "duplicate"
	AnomalyMissingWebhook        = "missing_webhook"
	AnomalyRedirectMismatch      = "redirect_mismatch"
	AnomalyStuck                 = "stuck"
	AnomalyLateAfterFinal        = "late_after_final"
	AnomalyConflict              = "conflict"
	AnomalyFailedAfterSettlement = "failed_after_settlement"
	AnomalyAmountMismatch        = "amount_mismatch"
	AnomalyCurrencyMismatch      = "currency_mismatch"
	AnomalyModeMismatch          = "mode_mismatch"
	AnomalyCheckoutMismatch      = "checkout_mismatch"
)

// AnomalyKinds lists every anomaly kind.
var AnomalyKinds = []string{
	AnomalyOutOfOrder, AnomalyDuplicate, AnomalyMissingWebhook, AnomalyRedirectMismatch, AnomalyStuck,
	AnomalyLateAfterFinal, AnomalyConflict, AnomalyFailedAfterSettlement, AnomalyAmountMismatch,
	AnomalyCurrencyMismatch, AnomalyModeMismatch, AnomalyCheckoutMismatch,
}

// Severity tells whether an anomaly needs a person. Out-of-order and
// duplicate deliveries are normal webhook behaviour that orderstate already
// absorbed: they are kept as evidence (info), not put in front of anyone.
func Severity(kind string) string {
	switch kind {
	case AnomalyOutOfOrder, AnomalyDuplicate:
		return SeverityInfo
	}
	return SeverityAction
}

// Severities.
const (
	SeverityInfo   = "info"
	SeverityAction = "action"
)

// Severities lists every severity.
var Severities = []string{SeverityAction, SeverityInfo}

// Anomaly statuses.
const (
	StatusOpen         = "open"
	StatusResolved     = "resolved"
	StatusAcknowledged = "acknowledged"
)

// AnomalyStatuses lists every anomaly status.
var AnomalyStatuses = []string{StatusOpen, StatusResolved, StatusAcknowledged}

// Anomaly is something about an order a person may need to look at.
type Anomaly struct {
	ID         int64      `json:"id"`
	Kind       string     `json:"kind"`
	Status     string     `json:"status"`
	Severity   string     `json:"severity"`
	Detail     string     `json:"detail"`
	OrderID    string     `json:"order_id,omitempty"`
	Provider   string     `json:"provider"`
	CheckoutID string     `json:"checkout_id,omitempty"`
	State      sm.State   `json:"state,omitempty"`
	EventSeqs  []int64    `json:"event_seqs"`
	Count      int        `json:"count"`
	OpenedAt   time.Time  `json:"opened_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	Resolution string     `json:"resolution,omitempty"`
	Note       string     `json:"note,omitempty"`
}

// AnomalyFilter selects anomalies; zero fields match everything.
type AnomalyFilter struct {
	Kind     string
	Provider string
	Status   string
	Severity string
	State    sm.State // the order's current state
	OrderRef int64
	Since    time.Time // opened at or after
	Until    time.Time // opened before
	// Before, when not zero, keeps the anomalies with a smaller id: the
	// list is newest first, so it is the next page after one that ended
	// at Before.
	Before int64
	Limit  int
}

// IngestResult is what storing one webhook did.
type IngestResult struct {
	Seq       int64     `json:"seq"`
	Result    sm.Result `json:"result"`
	OrderID   string    `json:"order_id,omitempty"`
	State     sm.State  `json:"state,omitempty"`
	Anomalies []string  `json:"anomalies,omitempty"`
}

// StoredReport is a report as kept in the store.
type StoredReport struct {
	ID          int64     `json:"id"`
	CreatedAt   time.Time `json:"created_at"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
	JSON        []byte    `json:"-"`
	Markdown    string    `json:"-"`
	HTML        string    `json:"-"`
}

// ReplayDiff is an order whose stored state differs from the fold of its
// stored events.
type ReplayDiff struct {
	Ref        int64
	OrderID    string
	Provider   string
	CheckoutID string
	Stored     sm.State
	Replayed   sm.State
	Events     int
}
