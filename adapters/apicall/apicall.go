// Package apicall makes the one kind of call a Poller makes: a GET of one
// JSON object from a provider's API, with a timeout, a cap on the answer's
// size, and every failure classified as an *engine.PollError whose message
// never holds a credential (the request's headers and the URL's user info
// are never printed).
package apicall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/orderstate/orderstate/engine"
)

// Defaults.
const (
	// DefaultTimeout bounds one call, connection, headers and body.
	DefaultTimeout = 10 * time.Second
	// MaxAnswer bounds an answer's body: a checkout is a few KB.
	MaxAnswer = 1 << 20
)

// Client is the HTTP client of a Poller; the zero value is not usable, use
// New.
type Client struct {
	HTTP *http.Client
	// Now is the clock a Retry-After date is measured against.
	Now func() time.Time
}

// New is a client whose calls each time out after timeout (DefaultTimeout
// when zero or less).
func New(timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Client{HTTP: &http.Client{Timeout: timeout}, Now: time.Now}
}

// Get fetches base + path with auth applied and returns the answer's body
// when the status is 200. The path's segments are escaped by the caller.
// provider names the provider in messages.
func (c *Client) Get(ctx context.Context, provider, base, path string, auth func(*http.Request)) ([]byte, error) {
	u := strings.TrimRight(base, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &engine.PollError{Reason: "error", Message: fmt.Sprintf("%s API URL %s is not usable: %v", provider, redact(base), errors.Unwrap(err))}
	}
	req.Header.Set("Accept", "application/json")
	auth(req)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, transportError(provider, redact(u), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil {
		return nil, transportError(provider, redact(u), err)
	}
	if len(body) > MaxAnswer {
		return nil, &engine.PollError{Reason: "malformed", Status: resp.StatusCode,
			Message: fmt.Sprintf("%s answered GET %s with more than %d bytes", provider, redact(u), MaxAnswer)}
	}
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		return body, nil
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return nil, &engine.PollError{Reason: "unauthorized", Status: code,
			Message: fmt.Sprintf("%s refused the API credentials (HTTP %d) for GET %s; check the API key", provider, code, redact(u))}
	case code == http.StatusNotFound:
		return nil, &engine.PollError{Reason: "not_found", Status: code,
			Message: fmt.Sprintf("%s knows no such checkout (HTTP 404) at GET %s", provider, redact(u))}
	case code == http.StatusTooManyRequests:
		wait := c.retryAfter(resp.Header.Get("Retry-After"))
		return nil, &engine.PollError{Reason: "rate_limited", Status: code, RetryAfter: wait,
			Message: fmt.Sprintf("%s is rate limiting the API (HTTP 429, Retry-After %q)", provider, resp.Header.Get("Retry-After"))}
	case code >= 500:
		return nil, &engine.PollError{Reason: "unavailable", Status: code, RetryAfter: c.retryAfter(resp.Header.Get("Retry-After")),
			Message: fmt.Sprintf("%s's API is failing (HTTP %d) at GET %s", provider, code, redact(u))}
	default:
		return nil, &engine.PollError{Reason: "error", Status: code,
			Message: fmt.Sprintf("%s answered GET %s with HTTP %d", provider, redact(u), code)}
	}
}

// retryAfter reads a Retry-After value: seconds, or an HTTP date. 0 when
// absent or unreadable.
func (c *Client) retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(c.Now()); d > 0 {
			return d
		}
	}
	return 0
}

func transportError(provider, u string, err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return &engine.PollError{Reason: "timeout", Message: fmt.Sprintf("%s did not answer GET %s in time", provider, u)}
	}
	if errors.Is(err, context.Canceled) {
		return &engine.PollError{Reason: "error", Message: fmt.Sprintf("GET %s to %s was cancelled", u, provider)}
	}
	// A *url.Error prints the URL it was given; say it without it.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &engine.PollError{Reason: "unavailable", Message: fmt.Sprintf("%s's API cannot be reached at GET %s: %v", provider, u, err)}
}

// redact drops user info and the query from a URL before it is printed.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// Malformed is the error of an answer that is not the documented shape.
func Malformed(provider, what string, err error) error {
	msg := fmt.Sprintf("%s answered with %s", provider, what)
	if err != nil {
		msg += ": " + err.Error()
	}
	return &engine.PollError{Reason: "malformed", Status: http.StatusOK, Message: msg}
}
