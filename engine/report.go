package engine

import (
	"cmp"
	"slices"
	"time"

	sm "github.com/orderstate/orderstate/statemachine"
)

// ReportQuery says what a report covers.
type ReportQuery struct {
	Since time.Time // inclusive
	Until time.Time // exclusive
	// MaxPerKind bounds how many open anomalies of each kind come with their
	// order and timeline, newest first; the older rest are counted. 0 means
	// 200.
	MaxPerKind int
	// MaxResolved bounds the list of anomalies closed in the period; the
	// rest are counted. 0 means 1000.
	MaxResolved int
}

// ReportData is what the report is built from, read in one snapshot.
type ReportData struct {
	Since time.Time
	Until time.Time
	// Reached counts the orders that reached their current state in the
	// period, per provider.
	Reached []StateCount
	// InFlight counts the orders pending or processing now, however long ago
	// they started.
	InFlight []StateCount
	// Open lists open action anomalies, per kind in AnomalyKinds order and
	// newest first, each with its order and event timeline.
	Open []OpenAnomaly
	// OpenCounts counts every open action anomaly, listed or not;
	// OpenOrders counts the orders they are on.
	OpenCounts []KindCount
	OpenOrders int
	// Info counts the info anomalies opened in the period.
	Info []KindCount
	// Resolved lists anomalies resolved or acknowledged in the period, in
	// the order they were closed; ResolvedTotal counts them all.
	Resolved      []Anomaly
	ResolvedTotal int
	// Activity is each provider's webhook traffic in the period, sorted by
	// provider.
	Activity []ProviderActivity
	// Purged is what raw requests were purged in the period, by reason.
	Purged []PurgeCount
}

// StateCount is a number of orders of one provider in one state.
type StateCount struct {
	Provider string
	State    sm.State
	Count    int
}

// KindCount is a number of anomalies of one kind on one provider's orders.
type KindCount struct {
	Kind     string
	Provider string
	Count    int
	// New counts those opened in the period.
	New int
}

// OpenAnomaly is an open anomaly with the order it is about. The order's
// Events are its timeline and its Anomalies are all its open action
// anomalies, listed or not, so a report can show the order once with
// everything a person must do about it. Anomalies on the same order share
// one *Order.
type OpenAnomaly struct {
	Anomaly Anomaly
	Order   *Order
}

// ProviderActivity is one provider's webhook traffic in a period.
type ProviderActivity struct {
	Provider string
	// Events counts every delivery received, duplicates included.
	Events     int
	Duplicates int
	OutOfOrder int
	// Unknown counts events of a type nobody documented; UnknownTypes
	// breaks them down by the provider's type.
	Unknown      int
	UnknownTypes map[string]int
	Unsigned     int
	// Unregistered counts events about orders the shop never registered.
	Unregistered int
	// Rejected counts requests refused before anything was stored, by reason.
	Rejected map[string]int
	// Lags are received_at minus occurred_at of each original event that
	// carried a provider time, ascending.
	Lags []time.Duration
}

// Sort puts the report data in the order every store returns it: counts by
// provider then state, or by kind then provider; activity by provider,
// each provider's lags ascending. Stores read in whatever order their
// queries give and call it once.
func (d *ReportData) Sort() {
	byState := func(a, b StateCount) int {
		return cmp.Or(cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.State, b.State))
	}
	byKind := func(a, b KindCount) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Provider, b.Provider))
	}
	slices.SortFunc(d.Reached, byState)
	slices.SortFunc(d.InFlight, byState)
	slices.SortFunc(d.OpenCounts, byKind)
	slices.SortFunc(d.Info, byKind)
	slices.SortFunc(d.Activity, func(a, b ProviderActivity) int { return cmp.Compare(a.Provider, b.Provider) })
	slices.SortFunc(d.Purged, func(a, b PurgeCount) int { return cmp.Compare(a.Reason, b.Reason) })
	for _, a := range d.Activity {
		slices.Sort(a.Lags)
	}
}
