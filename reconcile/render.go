package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Formats a report renders to.
const (
	FormatJSON     = "json"
	FormatMarkdown = "md"
	FormatHTML     = "html"
)

// Formats lists the formats, in the order files are written.
var Formats = []string{FormatJSON, FormatMarkdown, FormatHTML}

// Render returns the report in format. Returns EINVALID for an unknown one.
func (rep *Report) Render(format string) ([]byte, error) {
	var b bytes.Buffer
	var err error
	// Reports are read in terminals too (orderstate report, cat): each
	// format ends with a pass that leaves no control character in it.
	clean := printableDocument
	switch format {
	case FormatJSON:
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		err = enc.Encode(rep)
		clean = PrintableJSON
	case FormatMarkdown, "markdown":
		err = markdownTemplate.Execute(&b, rep)
	case FormatHTML:
		err = htmlTemplate.Execute(&b, rep)
	default:
		return nil, engine.Errorf(engine.EINVALID, "report format must be json, md or html; got %q", format)
	}
	if err != nil {
		return nil, engine.Wrap(engine.EINTERNAL, err, "cannot render the report as %s", format)
	}
	return clean(b.Bytes()), nil
}

// funcs are shared by both templates; html/template escapes their output.
var funcs = map[string]any{
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"whenp": func(t *time.Time) string {
		if t == nil {
			return "none"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"human":   human,
	"amounts": amounts,
	"explain": explain,
	"ms":      lagText,
	"title":   func(kind string) string { return describe(kind).title },
	"cell":    mdCell,
	"text":    func(v any) string { return fmt.Sprint(v) },
	"order": func(id string) string {
		if id == "" {
			return "(not registered)"
		}
		return id
	},
	// orderOf names an order to act on; one the shop never registered
	// says so, with the shop id its webhooks named if they named one.
	"orderOf": func(o ActionOrder) string {
		switch {
		case o.Registered:
			return o.OrderID
		case o.OrderID != "":
			return o.OrderID + " (not registered)"
		}
		return "(not registered)"
	},
	"states":      func() []sm.State { return sm.States },
	"inflight":    func() []sm.State { return []sm.State{sm.Pending, sm.Processing} },
	"count":       func(m map[sm.State]int, s sm.State) int { return m[s] },
	"pairs":       pairs,
	"size":        size,
	"action":      func(kind string) string { return describe(kind).action },
	"orderAmount": orderAmount,
	"anomalyIDs":  anomalyIDs,
	"n":           count,
	"times":       times,
	"detailed": func(rep *Report) []ActionOrder {
		return rep.ActionOrders[:min(len(rep.ActionOrders), rep.detailOrders)]
	},
	"unlisted": func(rep *Report) int {
		return max(0, rep.Summary.OrdersNeedAction-len(rep.ActionOrders))
	},
	"undetailed": func(rep *Report) int {
		return max(0, rep.Summary.OrdersNeedAction-min(len(rep.ActionOrders), rep.detailOrders))
	},
	"resolved": func(rep *Report) []Resolution { return rep.Resolved[:min(len(rep.Resolved), resolvedShown)] },
	"step": func(e Evidence) string {
		if e.FromState != "" && e.ToState != "" && e.FromState != e.ToState {
			return fmt.Sprintf("%s (%s → %s)", e.Result, e.FromState, e.ToState)
		}
		return string(e.Result)
	},
	"flag": func(e Evidence) string {
		if e.Flagged {
			return "⚑"
		}
		return ""
	},
}

// size is a number of bytes as a person reads it: "512 B", "4.1 KB",
// "5.6 MB", "1.2 GB" (powers of 1000).
func size(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1000, "KB"
	for _, u := range []string{"MB", "GB", "TB"} {
		if v < 1000 {
			break
		}
		v, unit = v/1000, u
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

// resolvedShown bounds the Markdown and HTML list of what was closed in
// the period, for the same reason as the orders: a day on which a
// provider's late webhooks all arrive resolves hundreds.
const resolvedShown = 25

// count is n with the noun, or noun and verb, that agrees with it: "1
// order needs", "3 orders need".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// times says how often something was seen: "once", "twice", "3 times".
func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
}

// anomalyIDs names an order's anomalies by kind and id, most urgent first:
// "conflict #12, late_after_final #13".
func anomalyIDs(o ActionOrder) string {
	parts := make([]string, len(o.Anomalies))
	for i, a := range o.Anomalies {
		parts[i] = fmt.Sprintf("%s #%d", a.Kind, a.AnomalyID)
	}
	return strings.Join(parts, ", ")
}

// pairs renders a count map as "a 2, b 1", by key.
func pairs(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// lagText shows milliseconds at the precision a person reads.
func lagText(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second && d > -time.Second:
		return fmt.Sprintf("%dms", ms)
	case d < time.Minute && d > -time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return human(d)
}

var (
	markdownTemplate = template.Must(template.New("md").Funcs(funcs).Parse(markdownSource))
	htmlTemplate     = htmltemplate.Must(htmltemplate.New("html").Funcs(funcs).Parse(htmlSource))
)

const markdownSource = `# Order anomaly report

Period {{when .PeriodStart}} to {{when .PeriodEnd}} UTC, generated {{when .GeneratedAt}} UTC. All times are UTC.

{{if .Summary.NeedAction}}**{{n .Summary.OrdersNeedAction "order needs" "orders need"}} a person**, with {{n .Summary.NeedAction "open anomaly" "open anomalies"}} ({{.Summary.NewInPeriod}} new in this period).{{else}}**Nothing needs a person.**{{end}}
{{.Summary.Resolved}} resolved in the period; {{.Summary.OrdersSettled}} orders reached a state in the period and {{.Summary.InFlight}} are in flight; {{.Summary.Webhooks}} webhooks received.

## Needs action
{{if not .NeedsAction}}
Nothing is open.
{{else}}
| what | kind | open | new | by provider |
|---|---|---:|---:|---|
{{range .NeedsAction}}| {{.Title}} | {{cell .Kind}} | {{.Count}} | {{.NewInPeriod}} | {{cell (pairs .ByProvider)}} |
{{end}}{{with .ActionOrders}}{{with index (index . 0).Anomalies 0}}
**To close an anomaly** once it is handled, acknowledge it by its id: ` + "`POST /v1/anomalies/{{.AnomalyID}}/ack`" + ` for #{{.AnomalyID}}, with an optional body ` + "`" + `{"note": "what was done"}` + "`" + ` (and ` + "`Authorization: Bearer <token>`" + ` when the sidecar has a ` + "`--token`" + `). It then leaves this list and shows as acknowledged under Resolved; it is not raised again for that order and kind. One whose cause clears (the late webhook comes) closes by itself.
{{end}}{{end}}
### Orders to act on

One row per order, the most urgent first: by its most urgent anomaly, in the order of the table above, then newest first. The amount is what the shop registered.

| order | provider | checkout | amount | state | anomalies | flagged | what to do first |
|---|---|---|---:|---|---|---|---|
{{range .ActionOrders}}| {{cell (orderOf .)}} | {{cell .Provider}} | {{cell .CheckoutID}} | {{cell (orderAmount .)}} | {{cell (text .State)}} | {{anomalyIDs .}} | {{when .FlaggedAt}}{{if .NewInPeriod}} (new){{end}} | {{.Action}} |
{{end}}{{with unlisted $}}
Not listed: {{n . "more order" "more orders"}}, each older or less urgent than the last row. ` + "`GET /v1/anomalies?severity=action&status=open`" + ` lists every open anomaly, newest first.
{{end}}
### Orders in detail

{{if undetailed $}}The first {{n (len (detailed $)) "order" "orders"}} of the table{{else}}Each order of the table{{end}}, with what each of its anomalies means and what to do, and its webhooks in arrival order; ⚑ marks the ones an anomaly is about.
{{range detailed $}}
#### Order {{cell (orderOf .)}}: {{cell .Provider}} {{cell .CheckoutID}}, {{cell (text .State)}}

- {{cell (amounts .)}}
{{- if .Redirect}}
- Customer redirect: {{cell .Redirect.Outcome}} at {{when .Redirect.At}}{{end}}
{{- $o := .}}{{range .Anomalies}}
- **{{title .Kind}}** ({{cell .Kind}}, anomaly #{{.AnomalyID}}, flagged {{when .OpenedAt}}{{if .NewInPeriod}} (new){{end}}, seen {{times .Occurrences}}): {{cell (explain $o .)}} **What to do:** {{action .Kind}}{{end}}

{{if .Timeline}}| # | | provider event | type | kind | result | provider time | arrived |
|---:|---|---|---|---|---|---|---|
{{range .Timeline}}| {{.Seq}} | {{flag .}} | {{cell .EventID}} | {{cell .Type}} | {{cell (text .Kind)}} | {{step .}} | {{whenp .OccurredAt}} | {{when .ReceivedAt}} |
{{end}}{{else}}No webhook has arrived for this order.
{{end}}{{end}}{{with undetailed $}}
Not detailed here: {{n . "more order" "more orders"}}. For any order, ` + "`orderstate order ORDER_ID`" + ` (or ` + "`--checkout PROVIDER/CHECKOUT_ID`" + ` for one the shop never registered) or ` + "`GET /v1/orders/ORDER_ID`" + ` gives its anomalies and timeline.
{{end}}{{end}}
## Resolved in this period
{{if not .Resolved}}
Nothing was resolved.
{{else}}
| kind | order | provider | opened | closed | open for | how |
|---|---|---|---|---|---|---|
{{range resolved $}}| {{cell .Kind}} | {{cell (order .OrderID)}} | {{cell .Provider}} {{cell .CheckoutID}} | {{when .OpenedAt}} | {{when .ClosedAt}} | {{.OpenFor}} | {{cell .How}} |
{{end}}{{if gt .Summary.Resolved (len (resolved $))}}
{{.Summary.Resolved}} were resolved in all; the first {{len (resolved $)}} are listed here and the first {{len .Resolved}} in the JSON report.
{{end}}{{end}}
## Absorbed without action

Webhook behaviour orderstate already handled; counts of orders flagged in the period.
{{if not .Absorbed}}
None.
{{else}}
| what | kind | orders | by provider |
|---|---|---:|---|
{{range .Absorbed}}| {{.Title}} | {{cell .Kind}} | {{.Count}} | {{cell (pairs .ByProvider)}} |
{{end}}{{end}}
## Orders

Orders that reached each state in the period, and orders in flight now however old.
{{if not .Orders}}
No orders.
{{else}}
| provider |{{range states}} {{.}} |{{end}} in flight: pending | in flight: processing |
|---|{{range states}}---:|{{end}}---:|---:|
{{range $o := .Orders}}| {{cell $o.Provider}} |{{range states}} {{count $o.Reached .}} |{{end}}{{range inflight}} {{count $o.InFlight .}} |{{end}}
{{end}}{{end}}
## Webhooks per provider

Lag is arrival time minus the provider's own time, over original deliveries that carried one.
{{if not .Providers}}
No webhooks in the period.
{{else}}
| provider | webhooks | lag p50 | lag p95 | lag max | duplicates | out of order | rejected | unknown types | unsigned | events for unregistered orders |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{{range .Providers}}| {{cell .Provider}} | {{.Webhooks}} | {{ms .Lag.P50Ms}} | {{ms .Lag.P95Ms}} | {{ms .Lag.MaxMs}} | {{.Duplicates}} | {{.OutOfOrder}} | {{.Rejected}} | {{.Unknown}} | {{.Unsigned}} | {{.Unregistered}} |
{{end}}{{range .Providers}}{{if .Rejected}}
- {{cell .Provider}} rejected requests by reason: {{cell (pairs .RejectedBy)}}{{end}}{{if .Unknown}}
- {{cell .Provider}} event types nobody documented: {{cell (pairs .UnknownTypes)}}{{end}}{{end}}
{{end}}{{with .RawPurged}}
## Raw requests purged

{{if .RetainRaw}}Raw webhook requests (bodies and headers, which hold what customers typed) are kept for {{.RetainRaw}}. {{end}}The event facts and timelines stay whole.
Purged in the period: {{n .Retention.Requests "raw request" "raw requests"}} ({{size .Retention.Bytes}}) past the retention, and on request {{n .OnRequest.Requests "raw request" "raw requests"}} ({{size .OnRequest.Bytes}}) of {{n .Orders "order" "orders"}}.
{{end}}{{with .Polling}}
## Polling the providers

Asked: {{if .Pollable}}{{range $i, $p := .Pollable}}{{if $i}}, {{end}}{{cell $p}}{{end}}{{else}}none (no API credentials set){{end}}. Cannot be asked (no API to ask about a checkout): {{if .Unpollable}}{{range $i, $p := .Unpollable}}{{if $i}}, {{end}}{{cell $p}}{{end}}{{else}}none{{end}}.
{{if $.Recovered}}
| provider | missing webhooks recovered by poll | by the webhook |
|---|---:|---:|
{{range $.Recovered}}| {{cell .Provider}} | {{.ByPoll}} | {{.ByWebhook}} |
{{end}}{{end}}{{if .Polls}}
Polls since the sidecar started, by result: {{range $i, $c := .Polls}}{{if $i}}; {{end}}{{cell $c.Provider}} {{cell $c.Result}} {{$c.Count}}{{end}}.{{end}}{{if .GaveUp}} Polling gave up on {{.GaveUp}} orders; their anomalies say so.{{end}}
{{end}}`

const htmlSource = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Order anomaly report, {{when .PeriodStart}} to {{when .PeriodEnd}} UTC</title>
<style>
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2329; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { border-bottom: 2px solid #d8dee4; padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { margin-top: 1.6rem; }
.meta { color: #57606a; }
.headline { font-size: 1.15rem; padding: .7rem 1rem; border-radius: 6px; background: #fff8c5; border: 1px solid #d4a72c; }
.headline.ok { background: #dafbe1; border-color: #4ac26b; }
.finding { border: 1px solid #d0d7de; border-left: 5px solid #cf222e; border-radius: 6px; padding: .6rem 1rem; margin: 1rem 0; }
.finding h4 { margin: .2rem 0 .5rem; }
.do { background: #f6f8fa; padding: .5rem .8rem; border-radius: 6px; }
.new { background: #cf222e; color: #fff; border-radius: 3px; padding: 0 .35rem; font-size: .8rem; }
table { border-collapse: collapse; margin: .6rem 0; width: 100%; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.triage td:nth-child(4) { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.flagged td { background: #fff1e5; }
code { font-size: .85rem; }
</style>
</head>
<body>
<h1>Order anomaly report</h1>
<p class="meta">Period {{when .PeriodStart}} to {{when .PeriodEnd}} UTC, generated {{when .GeneratedAt}} UTC. All times are UTC.</p>
{{if .Summary.NeedAction}}<p class="headline"><strong>{{n .Summary.OrdersNeedAction "order needs" "orders need"}} a person</strong>, with {{n .Summary.NeedAction "open anomaly" "open anomalies"}} ({{.Summary.NewInPeriod}} new in this period).</p>
{{else}}<p class="headline ok"><strong>Nothing needs a person.</strong></p>
{{end}}<p>{{.Summary.Resolved}} resolved in the period; {{.Summary.OrdersSettled}} orders reached a state in the period and {{.Summary.InFlight}} are in flight; {{.Summary.Webhooks}} webhooks received.</p>

<h2>Needs action</h2>
{{if not .NeedsAction}}<p>Nothing is open.</p>
{{else}}<table>
<tr><th>what</th><th>kind</th><th>open</th><th>new</th><th>by provider</th></tr>
{{range .NeedsAction}}<tr><td>{{.Title}}</td><td><code>{{.Kind}}</code></td><td class="n">{{.Count}}</td><td class="n">{{.NewInPeriod}}</td><td>{{pairs .ByProvider}}</td></tr>
{{end}}</table>
{{with .ActionOrders}}{{with index (index . 0).Anomalies 0}}<p class="do"><strong>To close an anomaly</strong> once it is handled, acknowledge it by its id: <code>POST /v1/anomalies/{{.AnomalyID}}/ack</code> for #{{.AnomalyID}}, with an optional body <code>{"note": "what was done"}</code> (and <code>Authorization: Bearer &lt;token&gt;</code> when the sidecar has a <code>--token</code>). It then leaves this list and shows as acknowledged under Resolved; it is not raised again for that order and kind. One whose cause clears (the late webhook comes) closes by itself.</p>
{{end}}{{end}}
<h3>Orders to act on</h3>
<p>One row per order, the most urgent first: by its most urgent anomaly, in the order of the table above, then newest first. The amount is what the shop registered.</p>
<table class="triage">
<tr><th>order</th><th>provider</th><th>checkout</th><th>amount</th><th>state</th><th>anomalies</th><th>flagged</th><th>what to do first</th></tr>
{{range .ActionOrders}}<tr><td>{{orderOf .}}</td><td>{{.Provider}}</td><td>{{.CheckoutID}}</td><td>{{orderAmount .}}</td><td>{{.State}}</td><td>{{anomalyIDs .}}</td><td>{{when .FlaggedAt}}{{if .NewInPeriod}} (new){{end}}</td><td>{{.Action}}</td></tr>
{{end}}</table>
{{with unlisted $}}<p>Not listed: {{n . "more order" "more orders"}}, each older or less urgent than the last row. <code>GET /v1/anomalies?severity=action&amp;status=open</code> lists every open anomaly, newest first.</p>
{{end}}
<h3>Orders in detail</h3>
<p>{{if undetailed $}}The first {{n (len (detailed $)) "order" "orders"}} of the table{{else}}Each order of the table{{end}}, with what each of its anomalies means and what to do, and its webhooks in arrival order; highlighted rows (⚑) are the ones an anomaly is about.</p>
{{range detailed $}}<div class="finding">
<h4>Order {{orderOf .}}: {{.Provider}} <code>{{.CheckoutID}}</code>, {{.State}}</h4>
<ul>
<li>{{amounts .}}</li>
{{if .Redirect}}<li>Customer redirect: {{.Redirect.Outcome}} at {{when .Redirect.At}}</li>
{{end}}{{$o := .}}{{range .Anomalies}}<li><strong>{{title .Kind}}</strong> (<code>{{.Kind}}</code>, anomaly #{{.AnomalyID}}, flagged {{when .OpenedAt}}{{if .NewInPeriod}} <span class="new">new</span>{{end}}, seen {{times .Occurrences}}): {{explain $o .}} <strong>What to do:</strong> {{action .Kind}}</li>
{{end}}</ul>
{{if .Timeline}}<table>
<tr><th>#</th><th>provider event</th><th>type</th><th>kind</th><th>result</th><th>provider time</th><th>arrived</th></tr>
{{range .Timeline}}<tr{{if .Flagged}} class="flagged"{{end}}><td class="n">{{.Seq}} {{flag .}}</td><td><code>{{.EventID}}</code></td><td>{{.Type}}</td><td>{{.Kind}}</td><td>{{step .}}</td><td>{{whenp .OccurredAt}}</td><td>{{when .ReceivedAt}}</td></tr>
{{end}}</table>
{{else}}<p>No webhook has arrived for this order.</p>
{{end}}</div>
{{end}}{{with undetailed $}}<p>Not detailed here: {{n . "more order" "more orders"}}. For any order, <code>orderstate order ORDER_ID</code> (or <code>--checkout PROVIDER/CHECKOUT_ID</code> for one the shop never registered) or <code>GET /v1/orders/ORDER_ID</code> gives its anomalies and timeline.</p>
{{end}}{{end}}
<h2>Resolved in this period</h2>
{{if not .Resolved}}<p>Nothing was resolved.</p>
{{else}}<table>
<tr><th>kind</th><th>order</th><th>provider</th><th>opened</th><th>closed</th><th>open for</th><th>how</th></tr>
{{range resolved $}}<tr><td><code>{{.Kind}}</code></td><td>{{order .OrderID}}</td><td>{{.Provider}} <code>{{.CheckoutID}}</code></td><td>{{when .OpenedAt}}</td><td>{{when .ClosedAt}}</td><td>{{.OpenFor}}</td><td>{{.How}}</td></tr>
{{end}}</table>
{{if gt .Summary.Resolved (len (resolved $))}}<p>{{.Summary.Resolved}} were resolved in all; the first {{len (resolved $)}} are listed here and the first {{len .Resolved}} in the JSON report.</p>
{{end}}{{end}}
<h2>Absorbed without action</h2>
<p>Webhook behaviour orderstate already handled; counts of orders flagged in the period.</p>
{{if not .Absorbed}}<p>None.</p>
{{else}}<table>
<tr><th>what</th><th>kind</th><th>orders</th><th>by provider</th></tr>
{{range .Absorbed}}<tr><td>{{.Title}}</td><td><code>{{.Kind}}</code></td><td class="n">{{.Count}}</td><td>{{pairs .ByProvider}}</td></tr>
{{end}}</table>
{{end}}
<h2>Orders</h2>
<p>Orders that reached each state in the period, and orders in flight now however old.</p>
{{if not .Orders}}<p>No orders.</p>
{{else}}<table>
<tr><th>provider</th>{{range states}}<th>{{.}}</th>{{end}}<th>in flight: pending</th><th>in flight: processing</th></tr>
{{range $o := .Orders}}<tr><td>{{$o.Provider}}</td>{{range states}}<td class="n">{{count $o.Reached .}}</td>{{end}}{{range inflight}}<td class="n">{{count $o.InFlight .}}</td>{{end}}</tr>
{{end}}</table>
{{end}}
<h2>Webhooks per provider</h2>
<p>Lag is arrival time minus the provider's own time, over original deliveries that carried one.</p>
{{if not .Providers}}<p>No webhooks in the period.</p>
{{else}}<table>
<tr><th>provider</th><th>webhooks</th><th>lag p50</th><th>lag p95</th><th>lag max</th><th>duplicates</th><th>out of order</th><th>rejected</th><th>unknown types</th><th>unsigned</th><th>events for unregistered orders</th></tr>
{{range .Providers}}<tr><td>{{.Provider}}</td><td class="n">{{.Webhooks}}</td><td class="n">{{ms .Lag.P50Ms}}</td><td class="n">{{ms .Lag.P95Ms}}</td><td class="n">{{ms .Lag.MaxMs}}</td><td class="n">{{.Duplicates}}</td><td class="n">{{.OutOfOrder}}</td><td class="n">{{.Rejected}}</td><td class="n">{{.Unknown}}</td><td class="n">{{.Unsigned}}</td><td class="n">{{.Unregistered}}</td></tr>
{{end}}</table>
<ul>
{{range .Providers}}{{if .Rejected}}<li>{{.Provider}} rejected requests by reason: {{pairs .RejectedBy}}</li>
{{end}}{{if .Unknown}}<li>{{.Provider}} event types nobody documented: {{pairs .UnknownTypes}}</li>
{{end}}{{end}}</ul>
{{end}}{{with .RawPurged}}<h2>Raw requests purged</h2>
<p>{{if .RetainRaw}}Raw webhook requests (bodies and headers, which hold what customers typed) are kept for {{.RetainRaw}}. {{end}}The event facts and timelines stay whole.
Purged in the period: {{n .Retention.Requests "raw request" "raw requests"}} ({{size .Retention.Bytes}}) past the retention, and on request {{n .OnRequest.Requests "raw request" "raw requests"}} ({{size .OnRequest.Bytes}}) of {{n .Orders "order" "orders"}}.</p>
{{end}}{{with .Polling}}<h2>Polling the providers</h2>
<p>Asked: {{if .Pollable}}{{range $i, $p := .Pollable}}{{if $i}}, {{end}}{{$p}}{{end}}{{else}}none (no API credentials set){{end}}. Cannot be asked (no API to ask about a checkout): {{if .Unpollable}}{{range $i, $p := .Unpollable}}{{if $i}}, {{end}}{{$p}}{{end}}{{else}}none{{end}}.</p>
{{if $.Recovered}}<table>
<tr><th>provider</th><th>missing webhooks recovered by poll</th><th>by the webhook</th></tr>
{{range $.Recovered}}<tr><td>{{.Provider}}</td><td class="n">{{.ByPoll}}</td><td class="n">{{.ByWebhook}}</td></tr>
{{end}}</table>
{{end}}{{if .Polls}}<p>Polls since the sidecar started, by result: {{range $i, $c := .Polls}}{{if $i}}; {{end}}{{$c.Provider}} {{$c.Result}} {{$c.Count}}{{end}}.{{if .GaveUp}} Polling gave up on {{.GaveUp}} orders; their anomalies say so.{{end}}</p>
{{end}}{{end}}</body>
</html>
`
