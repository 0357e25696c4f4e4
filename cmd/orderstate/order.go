package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderstate/orderstate/engine"
)

func runOrder(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("order", "order [flags] <order_id> | order [flags] --checkout <provider>/<checkout_id>", stderr)
	var sf storeFlags
	sf.registerExisting(fs)
	checkout := fs.String("checkout", "", "look the order up by provider checkout id, as provider/checkout_id")
	asJSON := fs.Bool("json", false, "print the order as the API's JSON")
	if err := parse(fs, args, env); err != nil {
		return err
	}
	if (fs.NArg() == 1) == (*checkout != "") {
		fs.Usage()
		return errors.New("give either an order id or --checkout provider/checkout_id")
	}
	db, err := sf.openExisting(ctx, discardLogger(), time.Now)
	if err != nil {
		return err
	}
	defer db.Close()
	var o *engine.Order
	if *checkout != "" {
		provider, id, ok := strings.Cut(*checkout, "/")
		if !ok {
			return fmt.Errorf("--checkout %q: want provider/checkout_id", *checkout)
		}
		o, err = db.OrderByCheckout(ctx, provider, id)
	} else {
		o, err = db.Order(ctx, fs.Arg(0))
	}
	if err != nil {
		return errors.New(engine.ErrorMessage(err))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(o)
	}
	return printOrder(stdout, o)
}

func printOrder(w io.Writer, o *engine.Order) error {
	id := o.OrderID
	if id == "" {
		id = "(not registered by the shop)"
	}
	fmt.Fprintf(w, "Order     %s\n", id)
	fmt.Fprintf(w, "Checkout  %s %s\n", o.Provider, o.CheckoutID)
	fmt.Fprintf(w, "State     %s (since %s)\n", o.State, o.StateSince.Format(time.RFC3339))
	if o.Registered {
		fmt.Fprintf(w, "Amount    %d %s (minor units), %s mode\n", o.Amount, o.Currency, o.Mode)
	}
	if o.Captured > 0 || o.Refunded > 0 {
		fmt.Fprintf(w, "Money     captured %d, refunded %d\n", o.Captured, o.Refunded)
	}
	if o.Redirect != nil {
		fmt.Fprintf(w, "Redirect  %s at %s\n", o.Redirect.Outcome, o.Redirect.At.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "\nAnomalies (%d)\n", len(o.Anomalies))
	for _, a := range o.Anomalies {
		fmt.Fprintf(w, "  #%d %-24s %-12s %s\n", a.ID, a.Kind, a.Status, a.Detail)
	}
	fmt.Fprintf(w, "\nTimeline (%d deliveries, in arrival order)\n", len(o.Events))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tRECEIVED\tPROVIDER TIME\tEVENT\tKIND\tRESULT\tSTATE")
	for _, e := range o.Events {
		occurred := "-"
		if e.OccurredAt != nil {
			occurred = e.OccurredAt.Format(time.RFC3339)
		}
		state := ""
		if e.FromState != "" && e.FromState != e.ToState {
			state = fmt.Sprintf("%s -> %s", e.FromState, e.ToState)
		}
		result := string(e.Result)
		if e.OutOfOrder {
			result += " (out of order)"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.ReceivedAt.Format(time.RFC3339), occurred,
			e.ProviderType, e.Kind, result, state)
	}
	return tw.Flush()
}
