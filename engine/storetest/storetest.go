package storetest

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/reconcile"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Store is everything a store serves: the ingest path and the order API
// (engine.Store), the reconciler's sweep, report data and watermarks
// (reconcile.Store), the stored reports the API lists, and the open
// anomaly counts /metrics exports.
type Store interface {
	engine.Store
	engine.RawStore
	reconcile.Store
	// Reports lists stored reports, newest first, without their bodies;
	// limit <= 0 takes the store's default.
	Reports(ctx context.Context, limit int) ([]engine.StoredReport, error)
	// Report returns one stored report with its bodies, or ENOTFOUND.
	Report(ctx context.Context, id int64) (*engine.StoredReport, error)
	// OpenAnomalyCounts counts the open anomalies of each kind.
	OpenAnomalyCounts(ctx context.Context) (map[string]int, error)
	// PollCandidates and NoteAnomaly serve polling (engine.PollStore).
	PollCandidates(ctx context.Context, from, to time.Time, before engine.Key, limit int) ([]engine.SweepOrder, error)
	NoteAnomaly(ctx context.Context, id int64, note string) error
}

// Opener opens a fresh, empty store whose clock is now, closed when t ends.
type Opener func(t *testing.T, now func() time.Time) Store

// suite lists the tests Run runs, each with a store of its own (or
// several) from the Opener.
var suite = []struct {
	name string
	test func(t *testing.T, open Opener)
}{
	{"ArrivalOrderNeverChangesTheFacts", testArrivalOrder},
	{"EventsArrivingAtOnceFoldAsOneAtATime", testConcurrentArrival},
	{"ReviewCases", testReviewCases},
	{"CheckoutMismatchHoldsForAPaymentAfterATie", testCheckoutMismatchAfterATie},

	{"RegisteredOrderReachesPaid", testRegisteredOrderReachesPaid},
	{"DuplicatesAreCountedNotApplied", testDuplicatesAreCountedNotApplied},
	{"WebhookBeforeRegistration", testWebhookBeforeRegistration},
	{"WebhookNamesTheShopOrder", testWebhookNamesTheShopOrder},
	{"OrderNotFoundSaysWhatWasLookedFor", testOrderNotFound},
	{"RegisterOrderConflicts", testRegisterOrderConflicts},
	{"RegisterOrderRefusesControlCharactersInIDs", testRegisterOrderRefusesControlCharacters},
	{"AnomaliesAtIngest", testAnomaliesAtIngest},
	{"RedirectMismatch", testRedirectMismatch},
	{"BadEventsAreRejectedAndNothingIsStored", testBadEventsAreRejected},
	{"UnknownTypeIsStoredAndIgnored", testUnknownTypeIsStoredAndIgnored},
	{"ReplayMatchesStoredState", testReplayMatchesStoredState},
	{"AckAnomaly", testAckAnomaly},
	{"OrdersStoredApartAreMerged", testOrdersStoredApartAreMerged},
	{"MergeComparesCarriedEventsWithTheRegistration", testMergeComparesCarriedEvents},
	{"OtherIDsJoinAnOrderWebhooksMadeApart", testOtherIDsJoinOrders},
	{"StateSinceMovesOnlyWithTheState", testStateSinceMovesOnlyWithTheState},
	{"PingThenCloseTwice", testPingThenClose},
	{"ClosedStoreAnswersRetry", testClosedStoreAnswersRetry},
	{"ScenariosEndInTheirStateInAnyArrivalOrder", testScenarios},

	{"SweepInStatePagesByKey", testSweepInState},
	{"SweepRedirectedPagesByKey", testSweepRedirected},
	{"SweepChangedRefs", testSweepChangedRefs},
	{"SweepOpenRefs", testSweepOpenRefs},
	{"SweepOrdersLeavesOutGoneRefs", testSweepOrders},
	{"SweepRaiseOpensOncePerOrderEver", testSweepRaise},
	{"SweepResolve", testSweepResolve},
	{"SweepCursorCommitsWithTheTransaction", testSweepCursor},
	{"SweepErrorRollsBackAndAloneFails", testSweepRollsBack},

	{"ReportData", testReportData},
	{"ReportDataBoundsItsLists", testReportDataBounds},
	{"StoredReportsRoundTrip", testStoredReports},
	{"Watermarks", testWatermarks},
	{"OpenAnomalyCounts", testOpenAnomalyCounts},
	{"RawRequestsPurgedKeepTheFacts", testRawPurge},
	{"RawRequestsOfOneOrderPurgedOnRequest", testRawPurgeOrder},

	{"AnomalyFilter", testAnomalyFilter},
	{"OrderByCheckoutFindsEveryAlias", testOrderByCheckoutFindsEveryAlias},
	{"ConcurrentRedeliveriesApplyOnce", testConcurrentRedeliveries},
	{"ConcurrentEventsOfOneOrderFoldToTheirSet", testConcurrentEventsOfOneOrder},
	{"ConcurrentRegistrationsMakeOneOrder", testConcurrentRegistrations},
	{"ConcurrentRejectionCountsAndAcksAddUp", testConcurrentCounts},

	{"PollRecoversAMissingWebhook", testPollRecoversAMissingWebhook},
	{"PollNeverLeavesAFinalStateByItself", testPollNeverLeavesAFinalState},
	{"PollCandidatesAndNotes", testPollCandidates},
	{"SourcesOfEventsArrivingAtOnce", testSourcesOfEventsArrivingAtOnce},
}

// Run runs the whole suite against the stores open makes.
func Run(t *testing.T, open Opener) {
	for _, tc := range suite {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, open) })
	}
}

// Clock is a settable test clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at a fixed time.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

// Now is the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock on.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func request() *engine.Request {
	return &engine.Request{Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{}`)}
}

// heldAnomalies is the set of an order's anomaly kinds that still hold:
// open or acknowledged, not resolved.
func heldAnomalies(o *engine.Order, only func(string) bool) []string {
	var out []string
	for _, a := range o.Anomalies {
		if a.Status != engine.StatusResolved && only(a.Kind) {
			out = append(out, a.Kind)
		}
	}
	return sortedUnique(out)
}

func ingest(t *testing.T, s engine.Store, ev engine.Event) engine.IngestResult {
	t.Helper()
	res, err := s.Ingest(context.Background(), ev, request())
	require.NoError(t, err, "ingest %s %s", ev.Type, ev.EventID)
	return res
}

func order(t *testing.T, s engine.Store, id string) *engine.Order {
	t.Helper()
	o, err := s.Order(context.Background(), id)
	require.NoError(t, err, "order %s", id)
	return o
}

func ev(provider, id string, kind sm.Kind, checkout string, refs ...string) engine.Event {
	return engine.Event{Provider: provider, EventID: id, DedupeKey: id, Type: string(kind), Kind: kind, CheckoutID: checkout,
		Refs: refs, Currency: "USD", Mode: engine.ModeLive}
}

// event is a tazapay webhook about checkout, live, in USD.
func event(id string, kind sm.Kind, checkout string, amount int64) engine.Event {
	return engine.Event{Provider: "tazapay", EventID: id, DedupeKey: id, Type: "test." + string(kind), Kind: kind,
		CheckoutID: checkout, Amount: amount, Currency: "USD", Mode: engine.ModeLive}
}

// register registers a live tazapay order; the currency is given in lower
// case, which the store normalizes.
func register(t *testing.T, s engine.Store, orderID, checkout string, amount int64) *engine.Order {
	t.Helper()
	o, err := s.RegisterOrder(context.Background(), engine.Registration{OrderID: orderID, Provider: "tazapay",
		CheckoutID: checkout, Amount: amount, Currency: "usd", Mode: engine.ModeLive})
	require.NoError(t, err, "register %s", orderID)
	return o
}

// byKind maps an order's anomalies by kind.
func byKind(as []engine.Anomaly) map[string]engine.Anomaly {
	out := map[string]engine.Anomaly{}
	for _, a := range as {
		out[a.Kind] = a
	}
	return out
}

// requireCode asserts err carries the engine error code; what says which
// call it came from.
func requireCode(t *testing.T, code string, err error, what string) {
	t.Helper()
	require.Error(t, err, what)
	require.Equal(t, code, engine.ErrorCode(err), "%s: %v", what, err)
}

// sweepRead runs fn in one sweep transaction and returns what it returned.
// A store may run fn on a goroutine of its own, and more than once (when a
// transaction it shared is retried), so fn returns an error rather than
// failing the test, and what it returns is its last run's.
func sweepRead[T any](t *testing.T, s Store, fn func(tx engine.SweepTx) (T, error)) T {
	t.Helper()
	var out T
	err := s.Sweep(context.Background(), func(tx engine.SweepTx) error {
		v, err := fn(tx)
		out = v
		return err
	})
	require.NoError(t, err)
	return out
}
