package api

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/orderstate/orderstate/engine"
)

// ETIMEOUT is a request body that did not arrive in time. Only the HTTP
// layer reads bodies off the wire, so the code is defined here rather
// than with the engine's.
const ETIMEOUT = "timeout"

// statusByCode is the one place engine error codes become HTTP statuses.
// A provider retries on 5xx (and Tazapay on some 4xx), so only an error that
// may pass on a retry is a 5xx.
var statusByCode = map[string]int{
	engine.EINVALID:      http.StatusBadRequest,
	engine.EUNAUTHORIZED: http.StatusUnauthorized,
	engine.ENOTFOUND:     http.StatusNotFound,
	engine.ECONFLICT:     http.StatusConflict,
	engine.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	engine.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	engine.EMETHOD:       http.StatusMethodNotAllowed,
	engine.EPROVIDER:     http.StatusBadGateway,
	ETIMEOUT:             http.StatusRequestTimeout,
	engine.EUNAVAILABLE:  http.StatusServiceUnavailable,
	engine.EOVERLOADED:   http.StatusServiceUnavailable,
	engine.ESHUTDOWN:     http.StatusServiceUnavailable,
	engine.EINTERNAL:     http.StatusInternalServerError,
}

// StatusOf maps an error to its HTTP status.
func StatusOf(err error) int {
	if s, ok := statusByCode[engine.ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

// errorDetail is the code and message of an error answer.
type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := StatusOf(err)
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Int("status", status), slog.Any("err", err))
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	var body errorBody
	body.Error.Code = engine.ErrorCode(err)
	body.Error.Message = engine.ErrorMessage(err)
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// An answer is read as JSON, never put in a page: "<" stays "<" in
	// the messages a person reads with curl.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
