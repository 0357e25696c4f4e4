package engine

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"
	"unicode/utf8"
)

// Store is what the HTTP API, the reconciler and the CLI need from storage.
// *DB is the SQLite implementation.
type Store interface {
	// Ingest stores one parsed webhook; see DB.Ingest.
	Ingest(ctx context.Context, ev Event, req *Request) (IngestResult, error)
	// RegisterOrder returns EINVALID or ECONFLICT.
	RegisterOrder(ctx context.Context, reg Registration) (*Order, error)
	// ReportRedirect returns EINVALID or ENOTFOUND.
	ReportRedirect(ctx context.Context, orderID, outcome string) (*Order, error)
	// Order and OrderByCheckout return ENOTFOUND.
	Order(ctx context.Context, orderID string) (*Order, error)
	OrderByCheckout(ctx context.Context, provider, checkoutID string) (*Order, error)
	Anomalies(ctx context.Context, f AnomalyFilter) ([]Anomaly, error)
	// AckAnomaly returns ENOTFOUND.
	AckAnomaly(ctx context.Context, id int64, note string) (*Anomaly, error)
	Replay(ctx context.Context, fix bool, fn func(ReplayDiff)) (int, error)
	RecordRejections(ctx context.Context, at time.Time, counts map[[2]string]int) error
	// Ping returns EUNAVAILABLE when the store cannot commit.
	Ping(ctx context.Context) error
	Close() error
}

// Pipeline is the ingest path of a webhook: find the provider's adapter,
// verify, parse, then hand the event to the store, which dedupes, applies
// and records it in one transaction.
type Pipeline struct {
	store    Store
	adapters map[string]Adapter
	now      func() time.Time

	mu       sync.Mutex
	rejected map[rejectKey]int
}

// NewPipeline wires adapters, keyed by their Provider name, to a store.
func NewPipeline(store Store, now func() time.Time, adapters ...Adapter) *Pipeline {
	if now == nil {
		now = time.Now
	}
	p := &Pipeline{store: store, adapters: map[string]Adapter{}, now: now, rejected: map[rejectKey]int{}}
	for _, a := range adapters {
		p.adapters[a.Provider()] = a
	}
	return p
}

// Providers lists the configured provider names, sorted.
func (p *Pipeline) Providers() []string {
	out := make([]string, 0, len(p.adapters))
	for name := range p.adapters {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Has reports whether a provider is configured.
func (p *Pipeline) Has(provider string) bool { _, ok := p.adapters[provider]; return ok }

// Handle runs one webhook through the pipeline. Nothing is stored unless the
// signature verifies and the body parses. Returns ENOTFOUND for an unknown
// provider, EUNAUTHORIZED, EINVALID, or the store's error.
func (p *Pipeline) Handle(ctx context.Context, provider string, req *Request) (IngestResult, error) {
	a, ok := p.adapters[provider]
	if !ok {
		return IngestResult{}, Errorf(ENOTFOUND, "no provider %q; configured: %v", provider, p.Providers())
	}
	if err := a.Verify(req, p.now()); err != nil {
		p.Reject(provider, "signature")
		return IngestResult{}, err
	}
	// JSON must be UTF-8, and a decoder turns each invalid byte into U+FFFD,
	// so two different ids could be stored as one and deduplicated together.
	if !utf8.Valid(req.Body) {
		p.Reject(provider, "malformed")
		return IngestResult{}, Errorf(EINVALID, "body is not valid UTF-8")
	}
	ev, err := a.Parse(req)
	if err != nil {
		p.Reject(provider, "malformed")
		return IngestResult{}, err
	}
	ev.Provider = provider
	return p.store.Ingest(ctx, ev, req)
}

// rejectKey is what refused requests are counted by: the hour they were
// refused in, not the hour they are written in, so a report that closes an
// hour counts every request refused in it once it has been flushed.
type rejectKey struct {
	hour             time.Time
	provider, reason string
}

// Reject counts a refused request. Counts are kept in memory and written by
// Flush, so a flood of forged requests costs no write each.
func (p *Pipeline) Reject(provider, reason string) {
	k := rejectKey{hour: p.now().UTC().Truncate(time.Hour), provider: provider, reason: reason}
	p.mu.Lock()
	p.rejected[k]++
	p.mu.Unlock()
}

// Flush writes the rejection counts gathered since the last flush.
func (p *Pipeline) Flush(ctx context.Context) error {
	p.mu.Lock()
	pending := p.rejected
	p.rejected = map[rejectKey]int{}
	p.mu.Unlock()
	byHour := map[time.Time]map[[2]string]int{}
	for k, n := range pending {
		if byHour[k.hour] == nil {
			byHour[k.hour] = map[[2]string]int{}
		}
		byHour[k.hour][[2]string{k.provider, k.reason}] += n
	}
	var errs []error
	for hour, counts := range byHour {
		if err := p.store.RecordRejections(ctx, hour, counts); err != nil {
			errs = append(errs, err)
			p.mu.Lock()
			for pr, n := range counts {
				p.rejected[rejectKey{hour: hour, provider: pr[0], reason: pr[1]}] += n
			}
			p.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}
