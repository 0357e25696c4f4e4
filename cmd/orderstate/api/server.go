package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/poll"
	sm "github.com/orderstate/orderstate/statemachine"
)

// Config tunes the server; zero fields take the defaults below.
type Config struct {
	Addr string
	// Listener, when set, is served instead of binding Addr: the caller
	// bound it first, to fail on a taken port before doing anything else.
	Listener net.Listener
	// Token, when set, is required as a bearer token on /v1/*.
	Token string
	// MaxBody bounds a request body; larger ones get 413.
	MaxBody int64
	// MaxInFlight bounds webhooks handled at once; past it a webhook gets
	// 503 with Retry-After instead of queueing without bound.
	MaxInFlight int
	// BodyTimeout bounds how long a webhook's body may take to arrive once
	// its headers have; a slower one gets 408. The body is read before the
	// webhook takes one of the MaxInFlight slots, so a sender that stalls
	// holds its own connection and nothing other webhooks need.
	BodyTimeout time.Duration
	// Providers are the names PUT /v1/orders accepts.
	Providers []string
	// Poller answers POST /v1/orders/{order_id}/poll; nil when no
	// provider's API credentials are set.
	Poller            OrderPoller
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

// Defaults for Config.
const (
	DefaultAddr        = "127.0.0.1:8080"
	DefaultMaxBody     = 256 << 10
	DefaultMaxInFlight = 512
	DefaultBodyTimeout = 5 * time.Second
	// DefaultReadTimeout bounds a whole request, headers and body.
	DefaultReadTimeout = 15 * time.Second
)

// ReportSource serves stored reports; the engine's DB is one.
type ReportSource interface {
	Reports(ctx context.Context, limit int) ([]engine.StoredReport, error)
	Report(ctx context.Context, id int64) (*engine.StoredReport, error)
}

// Server is the HTTP server.
type Server struct {
	cfg      Config
	store    engine.Store
	reports  ReportSource
	pipeline *engine.Pipeline
	log      *slog.Logger
	metrics  *Metrics
	slots    chan struct{}
	http     *http.Server
	ln       net.Listener
	done     chan error
}

// New builds a server; Open starts it.
func New(cfg Config, store engine.Store, reports ReportSource, pipeline *engine.Pipeline, metrics *Metrics, log *slog.Logger) *Server {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 5 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 90 * time.Second
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	if metrics == nil {
		metrics = NewMetrics()
	}
	if c, ok := store.(AnomalyCounter); ok {
		metrics.CountAnomalies(c)
	}
	if c, ok := store.(WriterStatser); ok {
		metrics.CountWrites(c)
	}
	if log == nil {
		log = slog.Default()
	}
	log = slog.New(LogHandler(log.Handler()))
	s := &Server{cfg: cfg, store: store, reports: reports, pipeline: pipeline, log: log, metrics: metrics,
		slots: make(chan struct{}, cfg.MaxInFlight), done: make(chan error, 1)}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// Route is one route the server serves: a method and a ServeMux path
// pattern.
type Route struct {
	Method, Pattern string
}

// route is a Route with its handler.
type route struct {
	Route
	handler http.Handler
}

// routes is the route table: Handler serves it, Routes lists it, and the
// OpenAPI document describes every entry (a test holds the two together).
func (s *Server) routes() []route {
	metrics := promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	})
	return []route{
		{Route{"POST", "/webhooks/{provider}"}, http.HandlerFunc(s.handleWebhook)},
		{Route{"PUT", "/v1/orders/{order_id}"}, s.auth(s.handleOrderRegister)},
		{Route{"POST", "/v1/orders/{order_id}/redirect"}, s.auth(s.handleRedirect)},
		{Route{"GET", "/v1/orders/{order_id}"}, s.auth(s.handleOrderGet)},
		{Route{"POST", "/v1/orders/{order_id}/poll"}, s.auth(s.handleOrderPoll)},
		{Route{"GET", "/v1/checkouts/{provider}/{checkout_id}"}, s.auth(s.handleCheckoutGet)},
		{Route{"GET", "/v1/anomalies"}, s.auth(s.handleAnomalies)},
		{Route{"POST", "/v1/anomalies/{id}/ack"}, s.auth(s.handleAnomalyAck)},
		{Route{"GET", "/v1/reports"}, s.auth(s.handleReports)},
		{Route{"GET", "/v1/reports/{id}"}, s.auth(s.handleReport)},
		{Route{"GET", "/healthz"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		})},
		{Route{"GET", "/readyz"}, http.HandlerFunc(s.handleReady)},
		{Route{"GET", "/metrics"}, metrics},
		{Route{"GET", "/openapi.json"}, http.HandlerFunc(serveOpenAPI)},
	}
}

// Routes lists the routes the server serves.
func Routes() []Route {
	var out []Route
	for _, r := range (&Server{metrics: NewMetrics(), log: slog.New(slog.DiscardHandler)}).routes() {
		out = append(out, r.Route)
	}
	return out
}

// Handler is the full route table.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range s.routes() {
		mux.Handle(r.Method+" "+r.Pattern, r.handler)
	}
	fallback := func(w http.ResponseWriter, r *http.Request) {
		// A path served under another method is a wrong verb, not a missing
		// route: say which methods it takes.
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut} {
			probe := &http.Request{Method: m, URL: r.URL, Host: r.Host}
			if _, pattern := mux.Handler(probe); m != r.Method && pattern != "" && pattern != "/" {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			s.writeError(w, r, engine.Errorf(engine.EMETHOD, "%s takes %s, not %s", r.URL.Path, strings.Join(allowed, " or "), r.Method))
			return
		}
		s.writeError(w, r, engine.Errorf(engine.ENOTFOUND, "no route %s %s", r.Method, r.URL.Path))
	}
	// Under /v1 the token comes first even for a route that is not there
	// or a method it does not take: the answer would tell a caller without
	// the token which routes and methods exist.
	v1Fallback := s.auth(fallback)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/") {
			v1Fallback.ServeHTTP(w, r)
			return
		}
		fallback(w, r)
	})
	return s.withAccessLog(withSecurityHeaders(mux))
}

// The content security policies. Nothing orderstate serves runs a script,
// loads anything or may be framed; the HTML report's one need is its inline
// <style> element. base-uri and form-action do not fall back to
// default-src, so the page's policy names them.
const (
	policyPage  = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	policyOther = "default-src 'none'; frame-ancestors 'none'"
)

// withSecurityHeaders marks every answer nosniff, so a browser never takes
// JSON or Markdown built from webhook text for a page, and gives it a
// content security policy: the page's for HTML, the strictest for the rest.
// The policy is chosen when the answer's header is written, from the
// Content-Type its handler set; one that set none gets the strictest.
// Answers net/http writes before any handler runs (431, a malformed
// request line) carry neither.
func withSecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", policyOther)
		next.ServeHTTP(&policyWriter{ResponseWriter: w}, r)
	})
}

// policyWriter sets the page policy on an HTML answer as its header goes
// out.
type policyWriter struct {
	http.ResponseWriter
	written bool
}

func (w *policyWriter) choose() {
	if w.written {
		return
	}
	w.written = true
	if mt, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type")); mt == "text/html" {
		w.Header().Set("Content-Security-Policy", policyPage)
	}
}

func (w *policyWriter) WriteHeader(code int) {
	if code >= 200 {
		w.choose()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *policyWriter) Write(b []byte) (int, error) {
	w.choose()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection, for the
// webhook body's read deadline.
func (w *policyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Open binds the listener (so a bad address fails here, not later) and
// serves in the background.
func (s *Server) Open() error {
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
		}
	}
	s.ln = ln
	go func() {
		err := s.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return nil
}

// Addr is the bound address (with the real port when Addr asked for 0).
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.cfg.Addr
	}
	return s.ln.Addr().String()
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Close stops accepting connections and waits for in-flight requests (and
// so their commits) to finish, up to ctx's deadline.
func (s *Server) Close(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if s.ln != nil {
		if serr := <-s.done; serr != nil && err == nil {
			err = serr
		}
	}
	return err
}

func (s *Server) auth(next http.HandlerFunc) http.Handler {
	want := sha256.Sum256([]byte(s.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token != "" {
			// The scheme is case-insensitive (RFC 9110, section 11.1).
			scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
			ok = ok && strings.EqualFold(scheme, "Bearer")
			// Comparing fixed-size hashes keeps the comparison constant-time
			// whatever the lengths.
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="orderstate"`)
				s.writeError(w, r, engine.Errorf(engine.EUNAUTHORIZED, "a valid bearer token is required for /v1"))
				return
			}
		}
		next(w, r)
	})
}

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	provider := r.PathValue("provider")
	start := time.Now()
	fail := func(err error) {
		s.metrics.Webhooks.WithLabelValues(s.providerLabel(provider), engine.ErrorCode(err)).Inc()
		// The message is the one the sender gets: it names the failed check
		// and never quotes a header, so no signature reaches the log.
		s.log.DebugContext(r.Context(), "webhook refused", slog.String("provider", s.providerLabel(provider)),
			slog.Int("status", StatusOf(err)), slog.String("code", engine.ErrorCode(err)),
			slog.String("message", engine.ErrorMessage(err)), Millis("took", time.Since(start)))
		s.writeError(w, r, err)
	}
	if !s.pipeline.Has(provider) {
		if s.knownProvider(provider) {
			fail(engine.Errorf(engine.ENOTFOUND, "provider %s is not configured: set ORDERSTATE_%s_SECRET", provider, strings.ToUpper(provider)))
			return
		}
		fail(engine.Errorf(engine.ENOTFOUND, "no provider %q; configured: %s", provider, strings.Join(s.pipeline.Providers(), ", ")))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			s.pipeline.Reject(provider, "content_type")
			fail(engine.Errorf(engine.EUNSUPPORTED, "content type %q is not JSON", ct))
			return
		}
	}
	body, err := s.readBody(w, r)
	if err != nil {
		switch engine.ErrorCode(err) {
		case engine.ETOOLARGE:
			s.pipeline.Reject(provider, "too_large")
		case ETIMEOUT:
			s.pipeline.Reject(provider, "body_timeout")
			// Not an error of the server's: a sender on a bad link, or one
			// holding connections open on purpose. Either way an operator
			// should be able to see it and who it was.
			s.log.WarnContext(r.Context(), "webhook body too slow", slog.String("provider", provider),
				slog.String("remote", r.RemoteAddr), slog.Int("bytes", len(body)), Millis("took", time.Since(start)))
			// What is left of the body will never be read; the connection
			// cannot carry another request.
			w.Header().Set("Connection", "close")
		}
		fail(err)
		return
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		fail(engine.Errorf(engine.EOVERLOADED, "too many webhooks in flight; retry"))
		return
	}
	s.metrics.InFlight.Inc()
	defer s.metrics.InFlight.Dec()
	res, err := s.pipeline.Handle(r.Context(), provider, &engine.Request{Header: r.Header, Body: body})
	if err != nil {
		fail(err)
		return
	}
	s.metrics.Ingest.WithLabelValues(provider).Observe(time.Since(start).Seconds())
	s.metrics.Webhooks.WithLabelValues(provider, string(res.Result)).Inc()
	s.log.DebugContext(r.Context(), "webhook stored", slog.String("provider", provider), slog.String("result", string(res.Result)),
		slog.Int64("seq", res.Seq), slog.String("order_id", res.OrderID), slog.String("state", string(res.State)),
		Millis("took", time.Since(start)))
	writeJSON(w, http.StatusOK, res)
}

// readBody reads a webhook's body whole, within MaxBody bytes and
// BodyTimeout. It runs before the webhook takes a slot: a slot is for
// handling a webhook, and one taken to wait on a stalled sender would be
// held until the whole-request timeout, so a few hundred senders of a
// single byte could keep every other webhook out. On a timeout it returns
// what arrived with the error.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	s.metrics.Receiving.Inc()
	defer s.metrics.Receiving.Dec()
	// Where the deadline cannot be set (a ResponseWriter that is not a
	// connection's), the server's ReadTimeout still bounds the read.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	switch {
	case err == nil:
		return body, nil
	case isTooLarge(err):
		return nil, engine.Errorf(engine.ETOOLARGE, "body is larger than %d bytes", s.cfg.MaxBody)
	case isTimeout(err):
		return body, engine.Wrap(ETIMEOUT, err, "the body did not arrive within %s of the headers", s.cfg.BodyTimeout)
	}
	return nil, engine.Wrap(engine.EINVALID, err, "cannot read the request body")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// providerLabel keeps metric cardinality bounded against made-up names.
func (s *Server) providerLabel(p string) string {
	if s.pipeline.Has(p) {
		return p
	}
	return "unknown"
}

// decode reads the request body as one JSON object into v. With emptyOK,
// a body that is empty (or only whitespace) leaves v as it is: for an
// endpoint whose fields are all optional, sending none is not an error.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if emptyOK && errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		// Whatever follows the object was never read: taking the request
		// would act on less than the client sent.
		if _, terr := dec.Token(); isTooLarge(terr) {
			err = terr
		} else if !errors.Is(terr, io.EOF) {
			err = errors.New("data after the JSON object")
		}
	}
	if err != nil {
		if isTooLarge(err) {
			return engine.Errorf(engine.ETOOLARGE, "body is larger than %d bytes", s.cfg.MaxBody)
		}
		return engine.Errorf(engine.EINVALID, "body is not valid JSON for this endpoint: %s", jsonProblem(err))
	}
	return nil
}

// jsonProblem says what is wrong with a body in the API's own terms:
// encoding/json names Go types and struct fields, which mean nothing to
// whoever sent the request.
func jsonProblem(err error) string {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field == "" {
		return fmt.Sprintf("the body must be a JSON object, not %s", typ.Value)
	}
	if errors.As(err, &typ) {
		t := typ.Type
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		want := map[reflect.Kind]string{reflect.String: "a string", reflect.Bool: "true or false", reflect.Struct: "an object",
			reflect.Map: "an object", reflect.Slice: "an array", reflect.Float32: "a number", reflect.Float64: "a number"}[t.Kind()]
		if want == "" {
			want = "a whole number"
		}
		// An embedded struct's Go name leads the path; the client never
		// wrote it.
		var path []string
		for _, seg := range strings.Split(typ.Field, ".") {
			if seg != "" && !unicode.IsUpper(rune(seg[0])) {
				path = append(path, seg)
			}
		}
		return fmt.Sprintf("field %q must be %s, not %s", strings.Join(path, "."), want, typ.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func isTooLarge(err error) bool {
	var tooLarge *http.MaxBytesError
	return errors.As(err, &tooLarge)
}

// registrationBody is the PUT /v1/orders body. Amount and Mode shadow the
// Registration's fields so that a field left out can be told from one
// sent as its zero value.
type registrationBody struct {
	engine.Registration
	Amount *int64  `json:"amount"`
	Mode   *string `json:"mode"`
}

func (s *Server) handleOrderRegister(w http.ResponseWriter, r *http.Request) {
	var body registrationBody
	if err := s.decode(w, r, &body, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	reg := body.Registration
	id := r.PathValue("order_id")
	if reg.OrderID != "" && reg.OrderID != id {
		s.writeError(w, r, engine.Errorf(engine.EINVALID, "order_id in the body (%q) differs from the path (%q)", reg.OrderID, id))
		return
	}
	reg.OrderID = id
	if !s.knownProvider(reg.Provider) {
		s.writeError(w, r, engine.Errorf(engine.EINVALID, "provider must be one of %s; got %q", strings.Join(s.cfg.Providers, ", "), reg.Provider))
		return
	}
	// Taken as 0, a missing amount would flag every capture of the order
	// as an amount_mismatch; an explicit 0 is a price the shop chose.
	if body.Amount == nil {
		s.writeError(w, r, engine.Errorf(engine.EINVALID, "amount is required, in minor units"))
		return
	}
	reg.Amount = *body.Amount
	// A missing mode means live, as documented; an empty one is a value
	// the client meant to set, and the store would take it as live too.
	if body.Mode != nil {
		if *body.Mode == "" {
			s.writeError(w, r, engine.Errorf(engine.EINVALID, "mode must be live or test; got \"\""))
			return
		}
		reg.Mode = *body.Mode
	}
	o, err := s.store.RegisterOrder(r.Context(), reg)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *Server) knownProvider(p string) bool {
	if len(s.cfg.Providers) == 0 {
		return s.pipeline.Has(p)
	}
	for _, v := range s.cfg.Providers {
		if v == p {
			return true
		}
	}
	return false
}

// providers are the names knownProvider accepts.
func (s *Server) providers() []string {
	if len(s.cfg.Providers) == 0 {
		return s.pipeline.Providers()
	}
	return s.cfg.Providers
}

func (s *Server) handleRedirect(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Outcome string `json:"outcome"`
	}
	if err := s.decode(w, r, &body, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	o, err := s.store.ReportRedirect(r.Context(), r.PathValue("order_id"), body.Outcome)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *Server) handleOrderGet(w http.ResponseWriter, r *http.Request) {
	o, err := s.store.Order(r.Context(), r.PathValue("order_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

// OrderPoller asks an order's provider about it now; *poll.Service is one.
type OrderPoller interface {
	PollOrder(ctx context.Context, orderID string) (poll.Outcome, error)
}

// pollAnswer is the answer to POST /v1/orders/{order_id}/poll: what the
// poll did, the order as it is now, and why the provider gave no usable
// answer, if it did not.
type pollAnswer struct {
	Poll  poll.Outcome  `json:"poll"`
	Order *engine.Order `json:"order,omitempty"`
	Error *errorDetail  `json:"error,omitempty"`
}

// handleOrderPoll asks the order's provider now. A provider that gave no
// usable answer is a 502 that still says what was tried; one that asked
// to be left alone adds its Retry-After.
func (s *Server) handleOrderPoll(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Poller == nil {
		s.writeError(w, r, engine.Errorf(engine.EINVALID, "polling is off: no provider's API credentials are set "+
			"(ORDERSTATE_TAZAPAY_API_KEY with ORDERSTATE_TAZAPAY_API_SECRET, or ORDERSTATE_YOCO_API_KEY)"))
		return
	}
	id := r.PathValue("order_id")
	out, err := s.cfg.Poller.PollOrder(r.Context(), id)
	if err != nil && out.Result == "" {
		s.writeError(w, r, err)
		return
	}
	ans := pollAnswer{Poll: out}
	status := http.StatusOK
	if err != nil {
		status = StatusOf(err)
		ans.Error = &errorDetail{Code: engine.ErrorCode(err), Message: engine.ErrorMessage(err)}
		if d, perr := time.ParseDuration(out.RetryAfter); perr == nil && d > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(d.Round(time.Second).Seconds())))
		}
	}
	if o, oerr := s.store.Order(r.Context(), id); oerr == nil {
		ans.Order = o
	}
	writeJSON(w, status, ans)
}

func (s *Server) handleCheckoutGet(w http.ResponseWriter, r *http.Request) {
	// A misspelt provider would otherwise read as "no such checkout".
	if p := r.PathValue("provider"); !s.knownProvider(p) {
		s.writeError(w, r, engine.Errorf(engine.ENOTFOUND, "unknown provider %q; providers: %s", p, strings.Join(s.providers(), ", ")))
		return
	}
	o, err := s.store.OrderByCheckout(r.Context(), r.PathValue("provider"), r.PathValue("checkout_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

// anomalyParams are the query parameters GET /v1/anomalies takes.
var anomalyParams = []string{"kind", "provider", "status", "severity", "state", "since", "until", "limit", "before"}

// checkParams refuses a parameter the endpoint does not take and one given
// twice: a misspelt filter ("stauts=open") or a second value that is never
// read would answer a list that looks filtered and is not.
func checkParams(q url.Values, known []string) error {
	for name, vs := range q {
		if !slices.Contains(known, name) {
			return engine.Errorf(engine.EINVALID, "unknown query parameter %q; parameters: %s", name, strings.Join(known, ", "))
		}
		if len(vs) > 1 {
			return engine.Errorf(engine.EINVALID, "query parameter %q given %d times; give it once", name, len(vs))
		}
	}
	return nil
}

func (s *Server) handleAnomalies(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := checkParams(q, anomalyParams); err != nil {
		s.writeError(w, r, err)
		return
	}
	f := engine.AnomalyFilter{Kind: q.Get("kind"), Provider: q.Get("provider"), Status: q.Get("status"), Severity: q.Get("severity"),
		State: sm.State(q.Get("state"))}
	if f.State != "" && !f.State.Valid() {
		s.writeError(w, r, engine.Errorf(engine.EINVALID, "unknown order state %q", f.State))
		return
	}
	var err error
	if f.Since, err = parseWhen(q.Get("since")); err != nil {
		s.writeError(w, r, err)
		return
	}
	if f.Until, err = parseWhen(q.Get("until")); err != nil {
		s.writeError(w, r, err)
		return
	}
	if f.Limit, err = pageLimit(q.Get("limit"), defaultAnomalies); err != nil {
		s.writeError(w, r, err)
		return
	}
	if v := q.Get("before"); v != "" {
		if f.Before, err = strconv.ParseInt(v, 10, 64); err != nil || f.Before <= 0 {
			s.writeError(w, r, engine.Errorf(engine.EINVALID, "before must be an anomaly id (a positive integer); got %q", v))
			return
		}
	}
	// A value no anomaly can have would answer an empty list, which reads
	// as "nothing to act on": a typo must get an error instead.
	switch {
	case f.Kind != "" && !contains(engine.AnomalyKinds, f.Kind):
		err = engine.Errorf(engine.EINVALID, "unknown anomaly kind %q; kinds: %s", f.Kind, strings.Join(engine.AnomalyKinds, ", "))
	case f.Status != "" && !contains(engine.AnomalyStatuses, f.Status):
		err = engine.Errorf(engine.EINVALID, "unknown anomaly status %q; statuses: %s", f.Status, strings.Join(engine.AnomalyStatuses, ", "))
	case f.Severity != "" && !contains(engine.Severities, f.Severity):
		err = engine.Errorf(engine.EINVALID, "unknown severity %q; severities: %s", f.Severity, strings.Join(engine.Severities, ", "))
	case f.Provider != "" && !s.knownProvider(f.Provider):
		err = engine.Errorf(engine.EINVALID, "unknown provider %q; providers: %s", f.Provider, strings.Join(s.providers(), ", "))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit := f.Limit
	f.Limit++ // one more than asked for says whether there are more
	list, err := s.store.Anomalies(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page := anomalyPage{Anomalies: list, Limit: limit}
	if len(list) > limit {
		page.Anomalies, page.More = list[:limit], true
		next := r.URL.Query()
		next.Set("before", strconv.FormatInt(list[limit-1].ID, 10))
		// A window given as a duration ("24h") would move between
		// pages: the next page keeps the times this one used.
		for key, at := range map[string]time.Time{"since": f.Since, "until": f.Until} {
			if !at.IsZero() {
				next.Set(key, at.UTC().Format(time.RFC3339Nano))
			}
		}
		page.Next = r.URL.Path + "?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, page)
}

// anomalyPage is one page of GET /v1/anomalies, newest first. A list cut
// short by the limit says so, and where the next page is: a silently
// truncated list would read as "that is all".
type anomalyPage struct {
	Anomalies []engine.Anomaly `json:"anomalies"`
	Limit     int              `json:"limit"`
	More      bool             `json:"more"`
	Next      string           `json:"next,omitempty"`
}

// Page sizes of the lists, when the request gives no limit.
const (
	defaultAnomalies = 1000
	defaultReports   = 100
)

// pageLimit reads a list's limit parameter.
func pageLimit(v string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > maxPage {
		return 0, engine.Errorf(engine.EINVALID, "limit must be a whole number from 1 to %d; got %q", maxPage, v)
	}
	return n, nil
}

// maxPage bounds a list's limit: a page is built in memory whole.
const maxPage = 100_000

// parseWhen reads a time as RFC 3339 or as a duration before now ("24h").
func parseWhen(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().UTC().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, engine.Errorf(engine.EINVALID, "time %q is neither RFC 3339 nor a duration like 24h", v)
	}
	return t, nil
}

func (s *Server) handleAnomalyAck(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.writeError(w, r, engine.Errorf(engine.EINVALID, "anomaly id must be an integer"))
		return
	}
	var body struct {
		Note string `json:"note"`
	}
	if err := s.decode(w, r, &body, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	a, err := s.store.AckAnomaly(r.Context(), id, body.Note)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) handleReports(w http.ResponseWriter, r *http.Request) {
	if err := checkParams(r.URL.Query(), []string{"limit"}); err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := pageLimit(r.URL.Query().Get("limit"), defaultReports)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.reports.Reports(r.Context(), limit+1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	more := len(list) > limit
	if more {
		list = list[:limit]
	}
	writeJSON(w, http.StatusOK, map[string]any{"reports": list, "limit": limit, "more": more})
}

// handleReport serves a report as JSON by default, or as Markdown or HTML
// with ?format=md|html.
func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.writeError(w, r, engine.Errorf(engine.EINVALID, "report id must be an integer"))
		return
	}
	rep, err := s.reports.Report(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(withID(rep.JSON, rep.ID))
	case "md", "markdown":
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		_, _ = io.WriteString(w, rep.Markdown)
	case "html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, rep.HTML)
	default:
		s.writeError(w, r, engine.Errorf(engine.EINVALID, "format must be json, md or html; got %q", f))
	}
}

// withID puts the report's id first in its JSON, as GET /v1/reports lists
// it: the report is rendered, and stored, before the store numbers it.
func withID(report []byte, id int64) []byte {
	body := bytes.TrimLeft(report, " \t\r\n")
	if len(body) < 2 || body[0] != '{' {
		return report
	}
	out := fmt.Appendf(make([]byte, 0, len(body)+24), `{"id":%d`, id)
	if rest := bytes.TrimLeft(body[1:], " \t\r\n"); len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, body[1:]...)
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.writeError(w, r, engine.Wrap(engine.EUNAVAILABLE, err, "not ready: the store cannot commit"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func contains(ss []string, s string) bool {
	for _, v := range ss {
		if v == s {
			return true
		}
	}
	return false
}
