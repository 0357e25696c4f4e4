package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/orderstate/orderstate/engine"
)

// runPurge empties the raw requests of one order: what a customer asks for
// when they want their data gone. The events' facts (kinds, amounts,
// times), the order's state and its timeline stay: they are the shop's
// record of the payment, and hold nothing the customer typed.
func runPurge(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("purge", "purge --order ORDER_ID [--db PATH]", stderr)
	var sf storeFlags
	sf.registerExisting(fs)
	orderID := fs.String("order", "", "the shop's order id whose raw webhook requests (bodies and headers) are deleted")
	if err := parseNoArgs(fs, args, env); err != nil {
		return err
	}
	if *orderID == "" {
		fs.Usage()
		return errors.New("give the order with --order ORDER_ID")
	}
	db, err := sf.openExisting(ctx, discardLogger(), time.Now)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := db.PurgeOrderRaw(ctx, *orderID)
	if engine.ErrorCode(err) == engine.ENOTFOUND {
		return fmt.Errorf("no order %s: neither registered by the shop nor named by a webhook", term(*orderID))
	} else if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "purged %d raw requests (%d bytes) of order %s; its events, state and timeline stay\n",
		p.Requests, p.Bytes, term(*orderID))
	return err
}
