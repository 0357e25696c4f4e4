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
