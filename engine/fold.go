package engine

import (
	"fmt"
	"time"

	sm "github.com/orderstate/orderstate/statemachine"
)

// Step is one stored original event as a refold reads it: what it carried
// and what it was recorded as doing when it arrived.
type Step struct {
	Seq        int64
	Kind       sm.Kind
	Amount     int64
	OccurredAt time.Time
	Result     sm.Result
	From, To   sm.State
	// Source is SourceWebhook or SourcePoll; see Apply.
	Source string
}

// Fold is what an order's events make of it, applied in arrival order from
// the start: its state, totals and progress, and the events whose recorded
// outcome that differs from, with the outcome they now have.
type Fold struct {
	State    sm.State
	Totals   sm.Totals
	Progress sm.Progress
	Changed  []Refolded
}

// Refolded is an event whose outcome a refold rewrote.
type Refolded struct {
	Seq     int64
	Outcome sm.Outcome
}

// Refold folds an order's events again, as a store must after it merged
// orders that turned out to be one checkout, so that its state, totals and
// timeline (the step into needs_review included) are those of one order
// that had always held every event.
func Refold(registered int64, steps []Step) (Fold, error) {
	f := Fold{State: sm.Pending, Totals: sm.Totals{Registered: registered}, Progress: sm.NewProgress()}
	for _, s := range steps {
		f.Progress.Observe(s.Kind, s.OccurredAt)
		out, err := Apply(f.State, &f.Totals, s.Kind, s.Amount, s.Source)
		if err != nil {
			return f, fmt.Errorf("event %d: %w", s.Seq, err)
		}
		f.State = out.To
		if out.Result != s.Result || out.From != s.From || out.To != s.To {
			f.Changed = append(f.Changed, Refolded{Seq: s.Seq, Outcome: out})
		}
	}
	return f, nil
}
