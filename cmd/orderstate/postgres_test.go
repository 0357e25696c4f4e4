package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/postgres"
	"github.com/orderstate/orderstate/engine/postgres/pgtest"
	sm "github.com/orderstate/orderstate/statemachine"
)

// The commands that read a store work on the shared PostgreSQL store as
// they do on a SQLite file, through the same --db.
func TestCommands_OnPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Shared(t).NewDatabase(t)
	db, err := postgres.Open(ctx, url, postgres.Options{Now: func() time.Time { return time.Now().Add(-48 * time.Hour) }})
	require.NoError(t, err)
	_, err = db.RegisterOrder(ctx, engine.Registration{OrderID: "SO-1", Provider: "tazapay", CheckoutID: "chk_1", Amount: 4999, Currency: "USD"})
	require.NoError(t, err)
	_, err = db.ReportRedirect(ctx, "SO-1", engine.RedirectSuccess)
	require.NoError(t, err)
	_, err = db.Ingest(ctx, engine.Event{Provider: "tazapay", EventID: "evt_1", DedupeKey: "evt_1", Type: "checkout.created",
		Kind: sm.KindCheckoutCreated, CheckoutID: "chk_1"}, &engine.Request{Header: http.Header{}, Body: []byte(`{}`)})
	require.NoError(t, err)
	require.NoError(t, db.Close())

	out, _, err := cli(t, nil, "order", "--db", url, "SO-1")
	require.NoError(t, err)
	require.Contains(t, out, "pending")
	require.Contains(t, out, "checkout.created")

	out, _, err = cli(t, nil, "reconcile", "--db", url)
	require.NoError(t, err)
	require.Contains(t, out, "2 raised", "missing_webhook and stuck, two days on")

	out, _, err = cli(t, nil, "report", "--db", url, "--since", "72h", "--format", "json")
	require.NoError(t, err)
	var rep struct {
		Summary struct {
			NeedAction int `json:"need_action"`
		} `json:"summary"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.Equal(t, 2, rep.Summary.NeedAction)

	out, _, err = cli(t, nil, "replay", "--db", url)
	require.NoError(t, err)
	require.Contains(t, out, "replayed 1 orders: 0")

	_, _, err = cli(t, nil, "order", "--db", url, "SO-2")
	require.Error(t, err, "an order nobody registered")
}
