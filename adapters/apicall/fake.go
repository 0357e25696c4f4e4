package apicall

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Fake is a provider API for tests and the demo: it answers GETs of the
// checkouts it was given in the provider's documented shape, refuses bad
// credentials, and can be told to fail the ways real APIs do. Each
// provider's package builds one with its shapes (tazapay.NewFakeAPI,
// yoco.NewFakeAPI).
type Fake struct {
	// Server is the running server; its URL is the API's base URL.
	Server *httptest.Server

	prefix    string
	authorize func(*http.Request) bool
	envelope  func(object any) any
	notFound  func() any

	mu        sync.Mutex
	fallback  func(id string) any
	checkouts map[string]any
	calls     map[string]int
	total     int
	down      int // answers 503 while > 0 (< 0: always)
	limited   int // answers 429 while > 0 (< 0: always)
	retry     string
	slow      time.Duration
	malformed bool
}

// NewFake starts a fake API answering GET prefix+{id}; authorize checks
// the credentials, envelope wraps a checkout as the provider does, and
// notFound is the body of a 404.
func NewFake(prefix string, authorize func(*http.Request) bool, envelope func(any) any, notFound func() any) *Fake {
	f := &Fake{prefix: prefix, authorize: authorize, envelope: envelope, notFound: notFound,
		checkouts: map[string]any{}, calls: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// URL is the fake API's base URL.
func (f *Fake) URL() string { return f.Server.URL }

// Close stops the server.
func (f *Fake) Close() { f.Server.Close() }

// Put sets what GET of id answers.
func (f *Fake) Put(id string, checkout any) {
	f.mu.Lock()
	f.checkouts[id] = checkout
	f.mu.Unlock()
}

// Fallback makes GET of an id nobody Put answer what fn returns for it,
// instead of 404.
func (f *Fake) Fallback(fn func(id string) any) { f.mu.Lock(); f.fallback = fn; f.mu.Unlock() }

// Down makes the next n calls answer 503; n < 0 for every call.
func (f *Fake) Down(n int) { f.mu.Lock(); f.down = n; f.mu.Unlock() }

// RateLimit makes the next n calls answer 429 with the Retry-After value
// given ("" for none); n < 0 for every call.
func (f *Fake) RateLimit(n int, retryAfter string) {
	f.mu.Lock()
	f.limited, f.retry = n, retryAfter
	f.mu.Unlock()
}

// Slow delays every answer by d.
func (f *Fake) Slow(d time.Duration) { f.mu.Lock(); f.slow = d; f.mu.Unlock() }

// Malformed makes every 200 answer a body that is not JSON.
func (f *Fake) Malformed(on bool) { f.mu.Lock(); f.malformed = on; f.mu.Unlock() }

// Calls counts the calls made about id, whatever they were answered;
// Total counts all calls.
func (f *Fake) Calls(id string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls[id] }

// Total counts every call made.
func (f *Fake) Total() int { f.mu.Lock(); defer f.mu.Unlock(); return f.total }

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, f.prefix)
	f.mu.Lock()
	f.total++
	f.calls[id]++
	slow, malformed, retry := f.slow, f.malformed, f.retry
	down := f.down != 0
	if f.down > 0 {
		f.down--
	}
	limited := f.limited != 0
	if f.limited > 0 {
		f.limited--
	}
	checkout, known := f.checkouts[id]
	if !known && f.fallback != nil && id != "" {
		checkout, known = f.fallback(id), true
	}
	f.mu.Unlock()
	if slow > 0 {
		select {
		case <-time.After(slow):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method != http.MethodGet || !ok || id == "" || strings.Contains(id, "/"):
		http.Error(w, `{"message":"no such route"}`, http.StatusNotFound)
	case !f.authorize(r):
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"status":"error","message":"unauthorized"}`))
	case limited:
		if retry != "" {
			w.Header().Set("Retry-After", retry)
		}
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"status":"error","message":"too many requests"}`))
	case down:
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status":"error","message":"service unavailable"}`))
	case !known:
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(f.notFound())
	case malformed:
		w.Write([]byte(`{"status":"success","data":{"id":`))
	default:
		json.NewEncoder(w).Encode(f.envelope(checkout))
	}
}
