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
	"github.com/orderstate/orderstate/reconcile"
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
		return printJSON(stdout, o)
	}
	return printOrder(stdout, o)
}

// printJSON prints v as indented JSON for a terminal: encoding/json already
// escapes the C0 controls, and PrintableJSON the rest, without changing
// what the JSON says.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(reconcile.PrintableJSON(b), '\n'))
	return err
}

// term is how text from webhooks and the store reaches a terminal: with
// its control characters made visible and inert.
var term = reconcile.Printable

func printOrder(w io.Writer, o *engine.Order) error {
	id := term(o.OrderID)
	if id == "" {
		id = "(not registered by the shop)"
	}
	fmt.Fprintf(w, "Order     %s\n", id)
	fmt.Fprintf(w, "Checkout  %s %s\n", term(o.Provider), term(o.CheckoutID))
	fmt.Fprintf(w, "State     %s (since %s)\n", term(string(o.State)), o.StateSince.Format(time.RFC3339))
	if o.Registered {
		fmt.Fprintf(w, "Amount    %d %s (minor units), %s mode\n", o.Amount, term(o.Currency), term(o.Mode))
	}
	if o.Captured > 0 || o.Refunded > 0 {
		fmt.Fprintf(w, "Money     captured %d, refunded %d\n", o.Captured, o.Refunded)
	}
	if o.Redirect != nil {
		fmt.Fprintf(w, "Redirect  %s at %s\n", term(o.Redirect.Outcome), o.Redirect.At.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "\nAnomalies (%d)\n", len(o.Anomalies))
	for _, a := range o.Anomalies {
		fmt.Fprintf(w, "  #%d %-24s %-12s %s\n", a.ID, term(a.Kind), term(a.Status), term(a.Detail))
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
		if e.Source == engine.SourcePoll {
			result += " (by poll)"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.ReceivedAt.Format(time.RFC3339), occurred,
			term(e.ProviderType), term(string(e.Kind)), term(result), term(state))
	}
	return tw.Flush()
}
