package storetest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// rawRequest is a webhook request carrying what a customer typed.
func rawRequest(email string) *engine.Request {
	return &engine.Request{Header: http.Header{"Content-Type": {"application/json"}, "X-Signature": {"sig-" + email}},
		Body: []byte(`{"customer":{"email":"` + email + `","phone":"+27 82 555 0100"}}`)}
}

// rawSize is what a store counts for a raw request: its body and the
// headers it keeps, as JSON.
func rawSize(r *engine.Request) int64 {
	h, _ := json.Marshal(engine.RedactHeaders(r.Header))
	return int64(len(r.Body) + len(h))
}

// requirePurged checks a purge's count, and its bytes against want: a
// store may write the headers' JSON with a space after each colon and
// comma (PostgreSQL's jsonb does), so up to 4 bytes more a header count.
func requirePurged(t *testing.T, requests int, want int64, headers int, p engine.RawPurge, what string) {
	t.Helper()
	require.Equal(t, requests, p.Requests, what)
	require.GreaterOrEqual(t, p.Bytes, want, what)
	require.LessOrEqual(t, p.Bytes, want+int64(4*headers*requests), what)
}

func ingestRaw(t *testing.T, s Store, e engine.Event, r *engine.Request) engine.IngestResult {
	t.Helper()
	res, err := s.Ingest(context.Background(), e, r)
	require.NoError(t, err, "ingest %s", e.EventID)
	return res
}

// Raw requests older than the cutoff are emptied, oldest first and in
// chunks, each once; the event facts, the order and its timeline stay as
// they were; each purge is recorded for the report.
func testRawPurge(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	t0 := clock.Now()
	s := open(t, clock.Now)
	register(t, s, "SO-1", "chk_1", 4999)
	r1, r2, r3 := rawRequest("ana@example.com"), rawRequest("ben@example.com"), rawRequest("cy@example.com")
	created := ingestRaw(t, s, event("evt_1", sm.KindCheckoutCreated, "chk_1", 0), r1)
	clock.Add(time.Minute)
	dup := ingestRaw(t, s, event("evt_1", sm.KindCheckoutCreated, "chk_1", 0), r1)
	require.Equal(t, sm.Duplicate, dup.Result)
	clock.Set(t0.Add(2 * time.Hour))
	paid := ingestRaw(t, s, event("evt_2", sm.KindPaid, "chk_1", 4999), r2)
	clock.Set(t0.Add(3 * time.Hour))
	later := ingestRaw(t, s, event("evt_3", sm.KindCheckoutCreated, "chk_2", 0), r3)

	// A duplicate's raw request is its original's.
	raw, err := s.RawRequest(ctx, dup.Seq)
	require.NoError(t, err)
	require.Equal(t, created.Seq, raw.Seq)
	require.Equal(t, "tazapay", raw.Provider)
	require.Equal(t, "evt_1", raw.EventID)
	require.Equal(t, r1.Body, raw.Body)
	require.Equal(t, "application/json", raw.Header["Content-Type"])
	require.Equal(t, "[redacted]", raw.Header["X-Signature"])
	require.Nil(t, raw.PurgedAt)
	require.True(t, raw.ReceivedAt.Equal(t0), "%s", raw.ReceivedAt)
	_, err = s.RawRequest(ctx, 999)
	requireCode(t, engine.ENOTFOUND, err, "no such event")

	before := order(t, s, "SO-1")
	clock.Set(t0.Add(10 * time.Hour))
	cutoff := t0.Add(2*time.Hour + 30*time.Minute)
	p, more, err := s.PurgeRaw(ctx, cutoff, 1)
	require.NoError(t, err)
	requirePurged(t, 1, rawSize(r1), 2, p, "the oldest first")
	require.True(t, more)
	p, more, err = s.PurgeRaw(ctx, cutoff, 1)
	require.NoError(t, err)
	requirePurged(t, 1, rawSize(r2), 2, p, "the next")
	require.False(t, more, "evt_3 arrived after the cutoff")
	p, more, err = s.PurgeRaw(ctx, cutoff, 1)
	require.NoError(t, err)
	require.Equal(t, engine.RawPurge{}, p, "nothing is purged twice")
	require.False(t, more)

	for _, seq := range []int64{created.Seq, dup.Seq, paid.Seq} {
		raw, err := s.RawRequest(ctx, seq)
		require.NoError(t, err)
		require.NotNil(t, raw.PurgedAt, "seq %d", seq)
		require.True(t, raw.PurgedAt.Equal(clock.Now()))
		require.Empty(t, raw.Body)
		require.Empty(t, raw.Header)
	}
	raw, err = s.RawRequest(ctx, later.Seq)
	require.NoError(t, err)
	require.Nil(t, raw.PurgedAt)
	require.Equal(t, r3.Body, raw.Body)
	require.Equal(t, before, order(t, s, "SO-1"), "the facts and the timeline stay")
	diffs := 0
	n, err := s.Replay(ctx, false, func(engine.ReplayDiff) { diffs++ })
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Zero(t, diffs, "replay folds the facts, not the raw bodies")

	// A later cutoff goes on from where the last run stopped.
	p, _, err = s.PurgeRaw(ctx, t0.Add(4*time.Hour), 100)
	require.NoError(t, err)
	require.Equal(t, 1, p.Requests)

	d, err := s.ReportData(ctx, engine.ReportQuery{Since: t0, Until: t0.Add(24 * time.Hour)})
	require.NoError(t, err)
	require.Len(t, d.Purged, 1)
	require.Equal(t, engine.PurgeRetention, d.Purged[0].Reason)
	require.Equal(t, 3, d.Purged[0].Purges)
	requirePurged(t, 3, rawSize(r1)+rawSize(r2)+rawSize(r3), 2, d.Purged[0].RawPurge, "the report's sum")
	d, err = s.ReportData(ctx, engine.ReportQuery{Since: t0, Until: t0.Add(time.Hour)})
	require.NoError(t, err)
	require.Empty(t, d.Purged, "purged after the period")
}

// One customer's raw requests go on request: those of the registered
// order, and of an order nobody registered that its webhooks tied to the
// shop's order id; no other order's.
func testRawPurgeOrder(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	s := open(t, clock.Now)
	register(t, s, "SO-1", "chk_1", 4999)
	r1, r2, other := rawRequest("ana@example.com"), rawRequest("ana@example.com"), rawRequest("ben@example.com")
	a := ingestRaw(t, s, event("evt_1", sm.KindPaid, "chk_1", 4999), r1)
	// A payment on a second checkout, naming the shop's order: an order of
	// its own until the shop registers it.
	named := event("evt_2", sm.KindPaid, "chk_9", 4999)
	named.Reference = "SO-2"
	b := ingestRaw(t, s, named, r2)
	c := ingestRaw(t, s, event("evt_3", sm.KindPaid, "chk_3", 100), other)

	_, err := s.PurgeOrderRaw(ctx, "SO-nobody")
	requireCode(t, engine.ENOTFOUND, err, "an order nobody registered or named")
	p, err := s.PurgeOrderRaw(ctx, "SO-1")
	require.NoError(t, err)
	requirePurged(t, 1, rawSize(r1), 2, p, "SO-1")
	p, err = s.PurgeOrderRaw(ctx, "SO-2")
	require.NoError(t, err)
	requirePurged(t, 1, rawSize(r2), 2, p, "found through the reference its webhook named")
	p, err = s.PurgeOrderRaw(ctx, "SO-1")
	require.NoError(t, err)
	require.Equal(t, engine.RawPurge{}, p, "again: nothing left, and no error")
	for seq, purged := range map[int64]bool{a.Seq: true, b.Seq: true, c.Seq: false} {
		raw, err := s.RawRequest(ctx, seq)
		require.NoError(t, err)
		require.Equal(t, purged, raw.PurgedAt != nil, "seq %d", seq)
	}
	d, err := s.ReportData(ctx, engine.ReportQuery{Since: clock.Now().Add(-time.Hour), Until: clock.Now().Add(time.Hour)})
	require.NoError(t, err)
	require.Len(t, d.Purged, 1)
	require.Equal(t, engine.PurgeRequest, d.Purged[0].Reason)
	require.Equal(t, 3, d.Purged[0].Purges, "each purge on request is recorded, one that found nothing too")
	requirePurged(t, 2, rawSize(r1)+rawSize(r2), 2, d.Purged[0].RawPurge, "the report's sum")
}
