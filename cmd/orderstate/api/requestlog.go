package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// RequestIDHeader carries a request's id, taken from the client (a proxy
// in front of orderstate, or the shop) or made here, and returned on the
// answer so one id names the request in every log that saw it.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// RequestID is the id of the request ctx belongs to; "" outside one.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// WithRequestID returns ctx carrying the request id id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// requestID is the id a request is logged under: the client's, when it
// sent one that is safe to copy into logs and answers (at most 128
// characters, letters, digits and -_.:/+=), else a new random one.
func requestID(r *http.Request) string {
	if id := r.Header.Get(RequestIDHeader); id != "" && len(id) <= 128 && strings.Trim(id,
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:/+=") == "" {
		return id
	}
	var b [12]byte
	// crypto/rand.Read does not fail since Go 1.24; it aborts the process.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// LogHandler wraps a slog handler so that every record logged with a
// request's context carries the request's id as request_id.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(requestIDHandler); ok {
		return h
	}
	return requestIDHandler{h}
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// Millis is a duration as a log attribute: key with "_ms" after it, in
// milliseconds to the microsecond, a number a log pipeline can sum and
// compare (slog writes a time.Duration in JSON as nanoseconds).
func Millis(key string, d time.Duration) slog.Attr {
	return slog.Float64(key+"_ms", float64(d.Microseconds())/1000)
}

// withAccessLog logs one line for each request once it is answered: its
// method, route pattern, status, duration, the bytes of the answer, the
// provider of a webhook and the request id. It gives the request its id
// first, in its context and on the answer. Nothing of the request's body,
// query or headers is logged, so no signature, token or customer data
// reaches the log.
func (s *Server) withAccessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r)
		w.Header().Set(RequestIDHeader, id)
		r = r.WithContext(WithRequestID(r.Context(), id))
		aw := &accessWriter{ResponseWriter: w}
		next.ServeHTTP(aw, r)
		if aw.status == 0 {
			aw.status = http.StatusOK
		}
		// The mux sets the pattern on the request it was handed. "/" is
		// the fallback's, which answers a path or method no route takes.
		route := r.Pattern
		if _, path, ok := strings.Cut(route, " "); ok {
			route = path
		}
		if route == "/" || route == "" {
			route = "unmatched"
		}
		attrs := []slog.Attr{slog.String("method", r.Method), slog.String("route", route), slog.Int("status", aw.status),
			Millis("duration", time.Since(start)), slog.Int64("bytes", aw.bytes)}
		if strings.HasPrefix(route, "/webhooks/") {
			attrs = append(attrs, slog.String("provider", s.providerLabel(r.PathValue("provider"))))
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

// accessWriter notes the status and counts the bytes of an answer.
type accessWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *accessWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *accessWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *accessWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
