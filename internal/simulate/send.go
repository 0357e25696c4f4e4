package simulate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sender plays orders against an orderstate over HTTP: the deliveries of
// one order in their sequence, different orders concurrently.
type Sender struct {
	// BaseURL is where orderstate listens: "http://127.0.0.1:8080".
	BaseURL string
	// Secrets sign the webhooks; orderstate must have the same.
	Secrets Secrets
	// Now is the clock Tokenz and Yoco signatures are dated by; it must
	// agree with orderstate's within their tolerance. time.Now when nil.
	Now func() time.Time
	// Token is sent as a bearer token on /v1 requests when set.
	Token string
	// Workers is how many orders are in flight at once; 16 when zero.
	Workers int
	// Client sends the requests; one keeping a connection per worker alive
	// when nil.
	Client *http.Client

	once                               sync.Once
	orders, requests, webhooks, failed atomic.Int64
	mu                                 sync.Mutex
	problems                           []Problem
}

// Problem is a delivery orderstate did not answer as it should have.
type Problem struct {
	OrderID  string
	Delivery int
	Action   Action
	Want     int
	Got      int
	Detail   string
}

func (p Problem) String() string {
	return fmt.Sprintf("order %s delivery %d (%s): want HTTP %d, got %d: %s", p.OrderID, p.Delivery, p.Action, p.Want, p.Got, p.Detail)
}

// Progress is how far a Sender got.
type Progress struct {
	Orders   int64
	Requests int64
	Webhooks int64
	Problems int64
}

// Progress returns the counts so far; safe while Play runs.
func (s *Sender) Progress() Progress {
	return Progress{Orders: s.orders.Load(), Requests: s.requests.Load(), Webhooks: s.webhooks.Load(), Problems: s.failed.Load()}
}

// Problems returns every delivery answered with the wrong status.
func (s *Sender) Problems() []Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Problem(nil), s.problems...)
}

// init fills the defaults once, whichever of Play, SendOrder and Send is
// called first and from however many goroutines.
func (s *Sender) init() { s.once.Do(s.defaults) }

func (s *Sender) defaults() {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Workers <= 0 {
		s.Workers = 16
	}
	if s.Client == nil {
		s.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        s.Workers * 2,
			MaxIdleConnsPerHost: s.Workers * 2,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}}
	}
	s.BaseURL = strings.TrimRight(s.BaseURL, "/")
}

// Play sends orders 0 to n-1, taking each from order (which may generate
// it on the spot) on the worker that sends it. It returns when all are
// sent or ctx is done; wrong answers are collected as Problems, not
// returned.
func (s *Sender) Play(ctx context.Context, n int, order func(i int) *Order) error {
	s.init()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(s.Workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				s.SendOrder(ctx, order(i))
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// SendOrder sends one order's deliveries in sequence.
func (s *Sender) SendOrder(ctx context.Context, o *Order) {
	s.init()
	for i := range o.Deliveries {
		if ctx.Err() != nil {
			return
		}
		d := &o.Deliveries[i]
		status, body, err := s.Send(ctx, d)
		detail := ""
		switch {
		case err != nil:
			detail = err.Error()
		case status != d.WantStatus():
			detail = strings.Join(strings.Fields(string(body)), " ")
			if len(detail) > 300 {
				detail = detail[:300] + "..."
			}
		}
		if detail != "" && ctx.Err() == nil {
			s.failed.Add(1)
			s.mu.Lock()
			s.problems = append(s.problems, Problem{OrderID: o.ID, Delivery: i, Action: d.Action, Want: d.WantStatus(), Got: status, Detail: detail})
			s.mu.Unlock()
		}
	}
	s.orders.Add(1)
}

// Send sends one delivery, signed now, and returns orderstate's answer.
func (s *Sender) Send(ctx context.Context, d *Delivery) (int, []byte, error) {
	s.init()
	r := d.Request(s.Secrets, s.Now())
	req, err := http.NewRequestWithContext(ctx, r.Method, s.BaseURL+r.Path, bytes.NewReader(r.Body))
	if err != nil {
		return 0, nil, err
	}
	req.Header = r.Header
	if s.Token != "" && d.Action != Webhook {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	s.requests.Add(1)
	if d.Action == Webhook {
		s.webhooks.Add(1)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
