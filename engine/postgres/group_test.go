package postgres

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/postgres/pgtest"
	sm "github.com/orderstate/orderstate/statemachine"
)

func openInternal(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), pgtest.Shared(t).NewDatabase(t), Options{})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func paidOp(t *testing.T, checkout string) *ingestOp {
	t.Helper()
	ev := engine.Event{Provider: "tazapay", EventID: "evt_" + checkout, DedupeKey: "evt_" + checkout, Type: "checkout.paid",
		Kind: sm.KindPaid, CheckoutID: checkout, Amount: 4999, Currency: "USD", Mode: engine.ModeLive, OccurredAt: time.Now()}
	op, err := newIngestOp(ev, &engine.Request{Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{}`)})
	require.NoError(t, err)
	return op
}

// A group whose transaction fails stores each of its webhooks alone, so
// one the database refuses fails by itself and the others are stored.
func TestGroupFailureFailsOnlyTheWebhookAtFault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openInternal(t)
	var ops []*ingestOp
	for i := range 6 {
		checkout := fmt.Sprint("chk_", i)
		_, err := db.RegisterOrder(ctx, engine.Registration{OrderID: fmt.Sprint("SO_", i), Provider: "tazapay", CheckoutID: checkout,
			Amount: 4999, Currency: "USD", Mode: engine.ModeLive})
		require.NoError(t, err)
		ops = append(ops, paidOp(t, checkout))
	}
	// Headers that are not JSON: the database refuses the raw request,
	// in the group and alone alike.
	bad := paidOp(t, "chk_unregistered")
	bad.headers = []byte("{not json")
	ops = append(ops[:3], append([]*ingestOp{bad}, ops[3:]...)...)

	done, carry := db.runGroup(ops)
	assert.Empty(t, carry)
	assert.Len(t, done, len(ops))
	for _, op := range ops {
		if op == bad {
			require.Error(t, op.err)
			assert.Equal(t, engine.EINTERNAL, engine.ErrorCode(op.err), "a refused statement is a bug, not a retry: %v", op.err)
			continue
		}
		require.NoError(t, op.err, op.ev.CheckoutID)
		assert.Equal(t, sm.Paid, op.res.State, op.ev.CheckoutID)
		assert.Positive(t, op.res.Seq)
	}
	for i := range 6 {
		o, err := db.Order(ctx, fmt.Sprint("SO_", i))
		require.NoError(t, err)
		assert.Equal(t, sm.Paid, o.State)
		assert.Len(t, o.Events, 1)
	}
	_, err := db.OrderByCheckout(ctx, "tazapay", "chk_unregistered")
	assert.Equal(t, engine.ENOTFOUND, engine.ErrorCode(err), "the refused webhook left no order behind: %v", err)
}

// Webhooks of one order in one group: the second waits for the next group,
// which sees what the first did.
func TestGroupCarriesASecondEventOfOneOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openInternal(t)
	_, err := db.RegisterOrder(ctx, engine.Registration{OrderID: "SO_1", Provider: "tazapay", CheckoutID: "chk_1",
		Amount: 4999, Currency: "USD", Mode: engine.ModeLive})
	require.NoError(t, err)
	first, second := paidOp(t, "chk_1"), paidOp(t, "chk_1")
	second.ev.EventID, second.ev.DedupeKey, second.ev.Kind, second.ev.Type = "evt_refund", "evt_refund", sm.KindRefunded, "checkout.refunded"
	second.ev.Amount = 0
	second, err = newIngestOp(second.ev, &engine.Request{Header: http.Header{}, Body: []byte(`{}`)})
	require.NoError(t, err)

	done, carry := db.runGroup([]*ingestOp{first, second})
	require.Equal(t, []*ingestOp{second}, carry)
	require.Equal(t, []*ingestOp{first}, done)
	require.NoError(t, first.err)
	assert.Equal(t, sm.Paid, first.res.State)
	done, carry = db.runGroup(carry)
	assert.Empty(t, carry)
	require.Len(t, done, 1)
	require.NoError(t, second.err)
	assert.Equal(t, sm.Refunded, second.res.State)
	o, err := db.Order(ctx, "SO_1")
	require.NoError(t, err)
	assert.Equal(t, sm.Refunded, o.State)
}

func opOf(t *testing.T, ev engine.Event) *ingestOp {
	t.Helper()
	op, err := newIngestOp(ev, &engine.Request{Header: http.Header{}, Body: []byte(`{}`)})
	require.NoError(t, err)
	return op
}

// A poll that contradicts a final state, stored in a group, raises the
// conflict with both facts as it does alone: the group reads the facts'
// sources and results too.
func TestGroupRaisesAPollConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openInternal(t)
	for _, id := range []string{"1", "2"} {
		_, err := db.RegisterOrder(ctx, engine.Registration{OrderID: "SO_" + id, Provider: "tazapay", CheckoutID: "chk_" + id,
			Amount: 4999, Currency: "USD", Mode: engine.ModeLive})
		require.NoError(t, err)
	}
	paid := paidOp(t, "chk_1")
	done, _ := db.runGroup([]*ingestOp{paid})
	require.NoError(t, done[0].err)
	polled := engine.PollEvent("tazapay", "chk_1", "payment_status=unpaid status=expired", sm.KindExpired)
	polled.Mode = engine.ModeLive
	ops := []*ingestOp{opOf(t, polled), paidOp(t, "chk_2")}
	done, carry := db.runGroup(ops)
	require.Empty(t, carry)
	for _, op := range done {
		require.NoError(t, op.err)
	}
	o, err := db.Order(ctx, "SO_1")
	require.NoError(t, err)
	assert.Equal(t, sm.NeedsReview, o.State)
	assert.Contains(t, heldKinds(o), engine.AnomalyConflict)

	// A later webhook of the order, in a group, keeps the conflict open.
	info := paidOp(t, "chk_1")
	info.ev.EventID, info.ev.DedupeKey, info.ev.Kind, info.ev.Type, info.ev.Amount = "evt_info", "evt_info", sm.KindInformational, "checkout.note", 0
	done, _ = db.runGroup([]*ingestOp{opOf(t, info.ev), paidOp(t, "chk_3")})
	for _, op := range done {
		require.NoError(t, op.err)
	}
	o, err = db.Order(ctx, "SO_1")
	require.NoError(t, err)
	assert.Contains(t, heldKinds(o), engine.AnomalyConflict)
}

func heldKinds(o *engine.Order) []string {
	var kinds []string
	for _, a := range o.Anomalies {
		if a.Status == engine.StatusOpen {
			kinds = append(kinds, a.Kind)
		}
	}
	return kinds
}

// Two providers may name the same checkout id: the orders a group makes
// for them are told apart by provider, and each keeps its own anomalies.
func TestGroupMakesOrdersOfTwoProvidersForOneCheckoutID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openInternal(t)
	settled := paidOp(t, "12345")
	settled.ev.Kind, settled.ev.Type, settled.ev.EventID, settled.ev.DedupeKey = sm.KindFailedAfterSettlement, "FAILED_AFTER_TX_COMPLETED", "evt_fats", "evt_fats"
	settled.ev.Provider = "tweed"
	for range 3 {
		// Both orders of the group, in either order of the rows.
		ops := []*ingestOp{opOf(t, settled.ev), paidOp(t, "12345")}
		done, carry := db.runGroup(ops)
		require.Empty(t, carry)
		for _, op := range done {
			require.NoError(t, op.err)
		}
		tweed, err := db.OrderByCheckout(ctx, "tweed", "12345")
		require.NoError(t, err)
		tazapay, err := db.OrderByCheckout(ctx, "tazapay", "12345")
		require.NoError(t, err)
		assert.Contains(t, heldKinds(tweed), engine.AnomalyFailedAfterSettlement)
		assert.NotContains(t, heldKinds(tazapay), engine.AnomalyFailedAfterSettlement)
		assert.Equal(t, sm.Paid, tazapay.State)
		settled.ev.EventID += "x"
		settled.ev.DedupeKey += "x"
	}
}

// A webhook whose lock another transaction holds long fails its group
// after the group's lock timeout, and the others of the group are stored
// alone without waiting for it.
func TestGroupDoesNotWaitForABlockedWebhook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openInternal(t)
	blocked, free := paidOp(t, "chk_blocked"), paidOp(t, "chk_free")
	tx, err := db.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, qLock, blocked.locks[:1])
	require.NoError(t, err)

	finished := make(chan struct{})
	go func() {
		db.runGroup([]*ingestOp{blocked, free})
		close(finished)
	}()
	require.Eventually(t, func() bool {
		_, err := db.OrderByCheckout(ctx, "tazapay", "chk_free")
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "the free webhook is stored while the other waits")
	select {
	case <-finished:
		t.Fatal("the blocked webhook was answered while its lock was held")
	default:
	}
	require.NoError(t, tx.Rollback(ctx))
	<-finished
	require.NoError(t, free.err)
	require.NoError(t, blocked.err)
	assert.Equal(t, sm.Paid, blocked.res.State, "the order its webhook made")
}
