package reconcile

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Report is the anomaly report for a period. Every list in it is sorted, so
// the same store and clock always give the same bytes.
type Report struct {
	GeneratedAt time.Time `json:"generated_at"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
	Summary     Summary   `json:"summary"`
	// NeedsAction summarises the open action anomalies per kind, most
	// urgent kind first; Open lists them (the newest MaxPerKind of each
	// kind) with their evidence, in the same kind order and newest first.
	NeedsAction []KindSummary `json:"needs_action"`
	Open        []Finding     `json:"open"`
	// ActionOrders are the orders to act on, each once with all its open
	// action anomalies: the most urgent first, then the newest, and only
	// the first MaxOrdersListed (Summary.OrdersNeedAction counts them
	// all). It is what a person works through, and what the Markdown and
	// HTML lead with.
	ActionOrders []ActionOrder `json:"orders_needing_action"`
	// Absorbed counts the info anomalies opened in the period: webhook
	// behaviour orderstate already took care of.
	Absorbed []KindSummary `json:"absorbed"`
	// Resolved lists the anomalies resolved or acknowledged in the period.
	Resolved  []Resolution     `json:"resolved"`
	Orders    []ProviderOrders `json:"orders"`
	Providers []ProviderHealth `json:"providers"`
	// RawPurged says how many raw requests were purged in the period; nil
	// when none were and no retention is set.
	RawPurged *RawPurged `json:"raw_purged,omitempty"`
	// Recovered counts, per provider, the missing webhooks resolved in the
	// period by a poll of the provider's API and by the webhook itself;
	// Polling is what polling did since the process started. Both are
	// left out where polling is not configured (Config.PollStats).
	Recovered []Recovered       `json:"missing_webhooks_recovered,omitempty"`
	Polling   *engine.PollStats `json:"polling,omitempty"`

	// detailOrders bounds the orders the Markdown and HTML detail: a
	// report that is mailed is clipped past about 100 KB, and every order's
	// timeline would run to megabytes on a bad day.
	detailOrders int
}

// Summary is the report's headline.
type Summary struct {
	// NeedAction counts open action anomalies; NewInPeriod those of them
	// opened in the period; Listed those Open shows in full.
	// OrdersNeedAction counts the orders they are on.
	NeedAction       int `json:"need_action"`
	NewInPeriod      int `json:"new_in_period"`
	Listed           int `json:"listed"`
	OrdersNeedAction int `json:"orders_need_action"`
	Resolved         int `json:"resolved"`
	// OrdersSettled counts the orders that reached a state in the period;
	// InFlight those pending or processing now.
	OrdersSettled int `json:"orders_settled"`
	InFlight      int `json:"in_flight"`
	Webhooks      int `json:"webhooks"`
}

// KindSummary counts the anomalies of one kind.
type KindSummary struct {
	Kind        string         `json:"kind"`
	Title       string         `json:"title"`
	Count       int            `json:"count"`
	NewInPeriod int            `json:"new_in_period"`
	Listed      int            `json:"listed,omitempty"`
	ByProvider  map[string]int `json:"by_provider"`
	Action      string         `json:"action,omitempty"`
}

// OrderFacts is what a report says of an order an anomaly is about.
type OrderFacts struct {
	OrderID    string   `json:"order_id"`
	Provider   string   `json:"provider"`
	CheckoutID string   `json:"checkout_id"`
	State      sm.State `json:"state"`
	Registered bool     `json:"registered"`
	Amount     int64    `json:"amount"`
	Currency   string   `json:"currency"`
	Mode       string   `json:"mode"`
	Captured   int64    `json:"captured_amount"`
	Refunded   int64    `json:"refunded_amount"`
}

func orderFacts(o *engine.Order) OrderFacts {
	return OrderFacts{OrderID: o.OrderID, Provider: o.Provider, CheckoutID: o.CheckoutID, State: o.State,
		Registered: o.Registered, Amount: o.Amount, Currency: o.Currency, Mode: o.Mode, Captured: o.Captured,
		Refunded: o.Refunded}
}

// Finding is one open anomaly that needs a person, with its evidence.
type Finding struct {
	AnomalyID int64  `json:"anomaly_id"`
	Kind      string `json:"kind"`
	OrderFacts
	OpenedAt    time.Time        `json:"opened_at"`
	NewInPeriod bool             `json:"new_in_period"`
	Occurrences int              `json:"occurrences"`
	Explanation string           `json:"explanation"`
	Action      string           `json:"action"`
	Redirect    *engine.Redirect `json:"redirect,omitempty"`
	Timeline    []Evidence       `json:"timeline"`
}

// ActionOrder is one order with open anomalies that need a person.
type ActionOrder struct {
	OrderFacts
	Redirect *engine.Redirect `json:"redirect,omitempty"`
	// Kind is the most urgent of its anomalies' kinds, which places the
	// order and says what to do first (Action, in short); FlaggedAt is
	// when that anomaly was raised.
	Kind        string         `json:"kind"`
	FlaggedAt   time.Time      `json:"flagged_at"`
	NewInPeriod bool           `json:"new_in_period"`
	Action      string         `json:"action"`
	Anomalies   []OrderAnomaly `json:"anomalies"`
	// Timeline is left out of the JSON, which has it in Open with each
	// listed anomaly already.
	Timeline []Evidence `json:"-"`
}

// OrderAnomaly is one open action anomaly of an ActionOrder.
type OrderAnomaly struct {
	AnomalyID   int64     `json:"anomaly_id"`
	Kind        string    `json:"kind"`
	OpenedAt    time.Time `json:"opened_at"`
	NewInPeriod bool      `json:"new_in_period"`
	Occurrences int       `json:"occurrences"`
	Explanation string    `json:"explanation"`
	EventSeqs   []int64   `json:"event_seqs"`
}

// Evidence is one delivery in the order's timeline, in arrival order.
type Evidence struct {
	Seq        int64      `json:"seq"`
	EventID    string     `json:"provider_event_id"`
	Type       string     `json:"type"`
	Kind       sm.Kind    `json:"kind"`
	Result     sm.Result  `json:"result"`
	FromState  sm.State   `json:"from_state,omitempty"`
	ToState    sm.State   `json:"to_state,omitempty"`
	Amount     int64      `json:"amount,omitempty"`
	Currency   string     `json:"currency,omitempty"`
	OccurredAt *time.Time `json:"occurred_at"`
	ReceivedAt time.Time  `json:"received_at"`
	// Flagged marks the deliveries the anomaly is about.
	Flagged bool `json:"flagged,omitempty"`
}

// Resolution is an anomaly closed in the period.
type Resolution struct {
	AnomalyID  int64     `json:"anomaly_id"`
	Kind       string    `json:"kind"`
	OrderID    string    `json:"order_id"`
	Provider   string    `json:"provider"`
	CheckoutID string    `json:"checkout_id"`
	Status     string    `json:"status"`
	OpenedAt   time.Time `json:"opened_at"`
	ClosedAt   time.Time `json:"closed_at"`
	OpenFor    string    `json:"open_for"`
	How        string    `json:"how"`
}

// Recovered counts one provider's missing webhooks resolved in the period,
// by how their order got its outcome.
type Recovered struct {
	Provider  string `json:"provider"`
	ByPoll    int    `json:"by_poll"`
	ByWebhook int    `json:"by_webhook"`
}

// recovered counts the missing_webhook anomalies resolved because their
// order reached an outcome: by a poll when the poll's resolution says so,
// else by the webhook. One resolved because no webhook was expected any
// more (the redirect changed), or acknowledged by a person, is neither.
func recovered(resolved []engine.Anomaly) []Recovered {
	by := map[string]*Recovered{}
	for _, a := range resolved {
		if a.Kind != engine.AnomalyMissingWebhook || a.Status != engine.StatusResolved {
			continue
		}
		r := by[a.Provider]
		if r == nil {
			r = &Recovered{Provider: a.Provider}
			by[a.Provider] = r
		}
		switch {
		case strings.HasPrefix(a.Resolution, engine.RecoveredByPoll):
			r.ByPoll++
		case a.State.Final():
			r.ByWebhook++
		}
	}
	out := []Recovered{}
	for _, p := range slices.Sorted(maps.Keys(by)) {
		out = append(out, *by[p])
	}
	return out
}

// ProviderOrders counts one provider's orders by state.
type ProviderOrders struct {
	Provider string `json:"provider"`
	// Reached counts the orders that reached their current state in the
	// period; InFlight those pending or processing now, however old.
	Reached  map[sm.State]int `json:"reached"`
	InFlight map[sm.State]int `json:"in_flight"`
}

// ProviderHealth is one provider's webhook traffic in the period.
type ProviderHealth struct {
	Provider     string         `json:"provider"`
	Webhooks     int            `json:"webhooks"`
	Lag          Lag            `json:"lag"`
	Duplicates   int            `json:"duplicates"`
	OutOfOrder   int            `json:"out_of_order"`
	Rejected     int            `json:"rejected"`
	RejectedBy   map[string]int `json:"rejected_by_reason"`
	Unknown      int            `json:"unknown_types"`
	UnknownTypes map[string]int `json:"unknown_by_type"`
	Unsigned     int            `json:"unsigned"`
	Unregistered int            `json:"unregistered"`
}

// RawPurged is what of the raw requests (webhooks' bodies and headers)
// was purged in the period; the event facts and timelines stay.
type RawPurged struct {
	// RetainRaw is the retention in force, "90d"; "" when raw requests are
	// kept until purged on request.
	RetainRaw string `json:"retain_raw,omitempty"`
	// Retention is what the retention purge emptied; OnRequest what
	// orderstate purge --order did, for Orders orders.
	Retention engine.RawPurge `json:"retention"`
	OnRequest engine.RawPurge `json:"on_request"`
	Orders    int             `json:"orders_on_request"`
}

// Lag is how long webhooks took from the provider's clock to arrival, over
// the original deliveries that carried a provider time.
type Lag struct {
	Samples int   `json:"samples"`
	P50Ms   int64 `json:"p50_ms"`
	P95Ms   int64 `json:"p95_ms"`
	MaxMs   int64 `json:"max_ms"`
}

// BuildReport reads the store and builds the report for [since, until).
// Returns EINVALID for an empty period.
func (r *Reconciler) BuildReport(ctx context.Context, since, until time.Time) (*Report, error) {
	d, err := r.store.ReportData(ctx, engine.ReportQuery{Since: since, Until: until, MaxPerKind: r.cfg.MaxPerKind})
	if err != nil {
		return nil, err
	}
	rep := buildReport(d, r.now())
	if r.cfg.PollStats != nil {
		st := r.cfg.PollStats()
		rep.Polling, rep.Recovered = &st, recovered(d.Resolved)
	}
	// The orders come from each kind's newest MaxPerKind anomalies, so
	// only that many of them are sure to be the most urgent and newest:
	// past it, an older order of an urgent kind may be missing while a
	// less urgent one is listed.
	rep.ActionOrders = rep.ActionOrders[:min(len(rep.ActionOrders), r.cfg.MaxOrdersListed, r.cfg.MaxPerKind)]
	rep.detailOrders = detailed(rep.ActionOrders, r.cfg.MaxOrdersDetailed)
	if r.cfg.RetainRaw > 0 {
		if rep.RawPurged == nil {
			rep.RawPurged = &RawPurged{}
		}
		rep.RawPurged.RetainRaw = FormatRetention(r.cfg.RetainRaw)
	}
	return rep, nil
}

// maxDetailEvents bounds the timeline rows the detailed orders show in
// all. Most orders have a handful of webhooks, but one a provider retried
// all day has hundreds, and a few such would push the report past what a
// mail client shows.
const maxDetailEvents = 120

// detailed is how many of the first orders to detail: at most limit, and
// no more than fit maxDetailEvents timeline rows, but always one.
func detailed(orders []ActionOrder, limit int) int {
	n, events := 0, 0
	for _, o := range orders {
		if n == limit || (n > 0 && events+len(o.Timeline) > maxDetailEvents) {
			break
		}
		n++
		events += len(o.Timeline)
	}
	return n
}

func buildReport(d *engine.ReportData, now time.Time) *Report {
	rep := &Report{GeneratedAt: now.UTC(), PeriodStart: d.Since.UTC(), PeriodEnd: d.Until.UTC(),
		NeedsAction: []KindSummary{}, Open: []Finding{}, ActionOrders: []ActionOrder{}, Absorbed: []KindSummary{},
		Resolved: []Resolution{}, Orders: []ProviderOrders{}, Providers: []ProviderHealth{}}
	inPeriod := func(t time.Time) bool { return !t.Before(d.Since) && t.Before(d.Until) }

	listed := map[string]int{}
	for _, oa := range d.Open {
		rep.Open = append(rep.Open, finding(oa, inPeriod(oa.Anomaly.OpenedAt)))
		listed[oa.Anomaly.Kind]++
	}
	sort.SliceStable(rep.Open, func(i, j int) bool {
		a, b := rep.Open[i], rep.Open[j]
		if a.Kind != b.Kind {
			return kindRank(a.Kind) < kindRank(b.Kind)
		}
		if !a.OpenedAt.Equal(b.OpenedAt) {
			return a.OpenedAt.After(b.OpenedAt)
		}
		return a.AnomalyID > b.AnomalyID
	})
	rep.NeedsAction = summarise(d.OpenCounts, listed, true)
	rep.Absorbed = summarise(d.Info, nil, false)
	for _, k := range rep.NeedsAction {
		rep.Summary.NeedAction += k.Count
		rep.Summary.NewInPeriod += k.NewInPeriod
	}
	rep.Summary.Listed = len(rep.Open)
	rep.ActionOrders = actionOrders(d.Open, inPeriod)
	rep.Summary.OrdersNeedAction = d.OpenOrders

	for _, a := range d.Resolved {
		rep.Resolved = append(rep.Resolved, resolution(a))
	}
	rep.Summary.Resolved = d.ResolvedTotal

	orders := map[string]*ProviderOrders{}
	get := func(p string) *ProviderOrders {
		if o, ok := orders[p]; ok {
			return o
		}
		o := &ProviderOrders{Provider: p, Reached: map[sm.State]int{}, InFlight: map[sm.State]int{}}
		orders[p] = o
		return o
	}
	for _, c := range d.Reached {
		get(c.Provider).Reached[c.State] += c.Count
		rep.Summary.OrdersSettled += c.Count
	}
	for _, c := range d.InFlight {
		get(c.Provider).InFlight[c.State] += c.Count
		rep.Summary.InFlight += c.Count
	}
	for _, p := range slices.Sorted(maps.Keys(orders)) {
		rep.Orders = append(rep.Orders, *orders[p])
	}

	for _, a := range d.Activity {
		h := ProviderHealth{Provider: a.Provider, Webhooks: a.Events, Lag: lag(a.Lags), Duplicates: a.Duplicates,
			OutOfOrder: a.OutOfOrder, RejectedBy: a.Rejected, Unknown: a.Unknown, UnknownTypes: a.UnknownTypes,
			Unsigned: a.Unsigned, Unregistered: a.Unregistered}
		for _, n := range a.Rejected {
			h.Rejected += n
		}
		rep.Providers = append(rep.Providers, h)
		rep.Summary.Webhooks += a.Events
	}
	for _, p := range d.Purged {
		if rep.RawPurged == nil {
			rep.RawPurged = &RawPurged{}
		}
		switch p.Reason {
		case engine.PurgeRetention:
			rep.RawPurged.Retention.Add(p.RawPurge)
		case engine.PurgeRequest:
			rep.RawPurged.OnRequest.Add(p.RawPurge)
			rep.RawPurged.Orders += p.Purges
		}
	}
	return rep
}

// FormatRetention shows a retention as the flag takes it: whole days as
// "90d", anything else as a duration ("36h0m0s").
func FormatRetention(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

func finding(oa engine.OpenAnomaly, isNew bool) Finding {
	a, o := oa.Anomaly, oa.Order
	f := Finding{AnomalyID: a.ID, Kind: a.Kind,
		OrderFacts: OrderFacts{OrderID: a.OrderID, Provider: a.Provider, CheckoutID: a.CheckoutID, State: a.State},
		OpenedAt:   a.OpenedAt, NewInPeriod: isNew, Occurrences: a.Count, Explanation: a.Detail,
		Action: describe(a.Kind).action, Timeline: []Evidence{}}
	if o != nil {
		f.OrderFacts, f.Redirect = orderFacts(o), o.Redirect
		flagged := map[int64]bool{}
		for _, s := range a.EventSeqs {
			flagged[s] = true
		}
		f.Timeline = evidence(o.Events, flagged)
	}
	return f
}

// actionOrders groups open anomalies by order, most urgent kind first,
// then newest first.
func actionOrders(open []engine.OpenAnomaly, inPeriod func(time.Time) bool) []ActionOrder {
	seen := map[*engine.Order]bool{}
	out := []ActionOrder{}
	for _, oa := range open {
		o := oa.Order
		if o == nil || seen[o] {
			continue
		}
		seen[o] = true
		all := o.Anomalies
		if len(all) == 0 {
			all = []engine.Anomaly{oa.Anomaly}
		}
		ao := ActionOrder{OrderFacts: orderFacts(o), Redirect: o.Redirect, Anomalies: make([]OrderAnomaly, 0, len(all)),
			Timeline: []Evidence{}}
		flagged := map[int64]bool{}
		for _, a := range all {
			ao.Anomalies = append(ao.Anomalies, OrderAnomaly{AnomalyID: a.ID, Kind: a.Kind, OpenedAt: a.OpenedAt,
				NewInPeriod: inPeriod(a.OpenedAt), Occurrences: a.Count, Explanation: a.Detail, EventSeqs: a.EventSeqs})
			for _, s := range a.EventSeqs {
				flagged[s] = true
			}
		}
		sort.Slice(ao.Anomalies, func(i, j int) bool { return kindRank(ao.Anomalies[i].Kind) < kindRank(ao.Anomalies[j].Kind) })
		top := ao.Anomalies[0]
		ao.Kind, ao.FlaggedAt, ao.NewInPeriod, ao.Action = top.Kind, top.OpenedAt, top.NewInPeriod, describe(top.Kind).short
		ao.Timeline = evidence(o.Events, flagged)
		out = append(out, ao)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return kindRank(a.Kind) < kindRank(b.Kind)
		}
		if !a.FlaggedAt.Equal(b.FlaggedAt) {
			return a.FlaggedAt.After(b.FlaggedAt)
		}
		return a.Anomalies[0].AnomalyID > b.Anomalies[0].AnomalyID
	})
	return out
}

func evidence(events []engine.Entry, flagged map[int64]bool) []Evidence {
	out := make([]Evidence, 0, len(events))
	for _, e := range events {
		out = append(out, Evidence{Seq: e.Seq, EventID: e.ProviderEventID, Type: e.ProviderType, Kind: e.Kind,
			Result: e.Result, FromState: e.FromState, ToState: e.ToState, Amount: e.Amount, Currency: e.Currency,
			OccurredAt: e.OccurredAt, ReceivedAt: e.ReceivedAt, Flagged: flagged[e.Seq]})
	}
	return out
}

func resolution(a engine.Anomaly) Resolution {
	r := Resolution{AnomalyID: a.ID, Kind: a.Kind, OrderID: a.OrderID, Provider: a.Provider, CheckoutID: a.CheckoutID,
		Status: a.Status, OpenedAt: a.OpenedAt, How: a.Resolution}
	if a.ResolvedAt != nil {
		r.ClosedAt = *a.ResolvedAt
		r.OpenFor = human(r.ClosedAt.Sub(a.OpenedAt))
	}
	if a.Status == engine.StatusAcknowledged {
		r.How = "acknowledged"
		if a.Note != "" {
			r.How += ": " + notesInBrief(a.Note)
		}
	}
	return r
}

// maxNotesShown bounds the acks' notes a resolved row shows, the latest
// kept: notes add up to 20,000 characters on one anomaly, and a report is
// meant to stay short enough for a mail client to show whole. The full
// notes are in GET /v1/anomalies.
const maxNotesShown = 300

// notesInBrief puts an anomaly's notes, one per ack, on one line, the
// latest last, keeping the end when they are long.
func notesInBrief(notes string) string {
	line := []rune(strings.ReplaceAll(strings.TrimSpace(notes), "\n", " / "))
	if len(line) <= maxNotesShown {
		return string(line)
	}
	return "…" + strings.TrimLeft(string(line[len(line)-maxNotesShown:]), " /")
}

func summarise(counts []engine.KindCount, listed map[string]int, withAction bool) []KindSummary {
	by := map[string]*KindSummary{}
	for _, c := range counts {
		k, ok := by[c.Kind]
		if !ok {
			d := describe(c.Kind)
			k = &KindSummary{Kind: c.Kind, Title: d.title, ByProvider: map[string]int{}, Listed: listed[c.Kind]}
			if withAction {
				k.Action = d.action
			}
			by[c.Kind] = k
		}
		k.Count += c.Count
		k.NewInPeriod += c.New
		k.ByProvider[c.Provider] += c.Count
	}
	out := make([]KindSummary, 0, len(by))
	for _, k := range by {
		out = append(out, *k)
	}
	sort.Slice(out, func(i, j int) bool { return kindRank(out[i].Kind) < kindRank(out[j].Kind) })
	return out
}

// lag takes nearest-rank percentiles of sorted lags.
func lag(sorted []time.Duration) Lag {
	n := len(sorted)
	if n == 0 {
		return Lag{}
	}
	at := func(p int) int64 {
		i := (p*n + 99) / 100 // ceil(p/100 * n), 1-based
		if i < 1 {
			i = 1
		}
		return sorted[i-1].Milliseconds()
	}
	return Lag{Samples: n, P50Ms: at(50), P95Ms: at(95), MaxMs: sorted[n-1].Milliseconds()}
}
