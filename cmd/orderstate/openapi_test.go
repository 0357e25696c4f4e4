package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/cmd/orderstate/api"
	"github.com/orderstate/orderstate/engine"
	sm "github.com/orderstate/orderstate/statemachine"
)

// oas is the OpenAPI document the end-to-end tests hold the server to:
// every request testSidecar.do sends and every answer it gets is validated
// against it (see checkOpenAPI), and TestMain fails a full run in which
// some operation was never answered with a 2xx that validated.
var oas struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error

	mu sync.Mutex
	// ok holds the operations answered 2xx, request and answer valid;
	// checked counts the exchanges validated.
	ok      map[string]bool
	checked int
}

func loadOpenAPI() (*openapi3.T, routers.Router, error) {
	oas.once.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(api.OpenAPI)
		if err != nil {
			oas.err = fmt.Errorf("load openapi.json: %w", err)
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			oas.err = fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
			return
		}
		// The tests' servers listen on ports of their own: match the
		// paths on any host.
		routed := *doc
		routed.Servers = openapi3.Servers{{URL: "/"}}
		router, err := gorillamux.NewRouter(&routed)
		if err != nil {
			oas.err = fmt.Errorf("route openapi.json: %w", err)
			return
		}
		oas.doc, oas.router, oas.ok = doc, router, map[string]bool{}
	})
	return oas.doc, oas.router, oas.err
}

func init() {
	// The Markdown and HTML of a report are text to the validator.
	openapi3filter.RegisterBodyDecoder("text/markdown", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
}

// checkOpenAPI validates one exchange against the document: the answer
// always (its status must be documented for the operation, its body must
// fit the schema), and the request when the server took it (2xx): a
// request the server accepts must be one the document allows. A path or
// method the document does not have (the tests of unknown routes) is left
// alone; so is the HEAD method.
func checkOpenAPI(t testing.TB, method, url string, header http.Header, reqBody []byte, status int, respHeader http.Header, respBody []byte) {
	t.Helper()
	_, router, err := loadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	// A body of only whitespace is no body, to the server and here.
	if len(bytes.TrimSpace(reqBody)) == 0 {
		reqBody = nil
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(reqBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	// orderstate reads a body sent with no Content-Type as JSON, as the
	// document's description says; OpenAPI has no way to say so of each
	// operation.
	if len(reqBody) > 0 && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	ctx := context.Background()
	if status/100 == 2 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("OpenAPI: the server took %s %s (%d), which the document refuses: %v\nbody: %.400s", method, route.Path, status, err, reqBody)
			return
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: respHeader,
		Body: io.NopCloser(bytes.NewReader(respBody)), Options: opts}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("OpenAPI: the answer to %s %s does not fit the document: %d %v\nbody: %.600s", method, route.Path, status, err, respBody)
		return
	}
	oas.mu.Lock()
	defer oas.mu.Unlock()
	oas.checked++
	if status/100 == 2 {
		oas.ok[route.Operation.OperationID] = true
	}
}

// openAPICoverage says which operations no test exchanged with a 2xx;
// "" when the run was not a full one (-run, -short), which need not cover
// them all.
func openAPICoverage() string {
	if f := flag.Lookup("test.run"); f == nil || f.Value.String() != "" || testing.Short() {
		return ""
	}
	doc, _, err := loadOpenAPI()
	if err != nil {
		return err.Error()
	}
	var missing []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if !oas.ok[op.OperationID] {
				missing = append(missing, method+" "+path+" ("+op.OperationID+")")
			}
		}
	}
	if len(missing) == 0 {
		fmt.Fprintf(os.Stderr, "OpenAPI: %d exchanges of the end-to-end tests validated; every operation answered 2xx at least once\n", oas.checked)
		return ""
	}
	sort.Strings(missing)
	return "OpenAPI: no end-to-end test got a valid 2xx from " + strings.Join(missing, ", ")
}

// The document is valid OpenAPI 3.1, describes exactly the routes the
// server serves, is served at /openapi.json as it is in the repository,
// and lists the same values as the code.
func TestOpenAPI_DocumentMatchesTheServer(t *testing.T) {
	t.Parallel()
	doc, _, err := loadOpenAPI()
	require.NoError(t, err)
	require.Equal(t, "3.1.0", doc.OpenAPI)

	var served, documented []string
	for _, r := range api.Routes() {
		served = append(served, r.Method+" "+r.Pattern)
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	require.ElementsMatch(t, served, documented, "every route documented, and nothing else")

	onDisk, err := os.ReadFile(filepath.Join("api", "openapi.json"))
	require.NoError(t, err)
	s := startTestSidecar(t, filepath.Join(t.TempDir(), "o.db"))
	st, body := s.do("GET", "/openapi.json", nil, nil)
	require.Equal(t, http.StatusOK, st)
	require.Equal(t, onDisk, body)

	enum := func(schema string, prop ...string) []string {
		sc := doc.Components.Schemas[schema].Value
		for _, p := range prop {
			sc = sc.Properties[p].Value
		}
		var out []string
		for _, v := range sc.Enum {
			out = append(out, v.(string))
		}
		return out
	}
	var states, kinds, results []string
	for _, v := range sm.States {
		states = append(states, string(v))
	}
	for _, v := range append(slices.Clone(sm.Kinds), sm.KindUnknown) {
		kinds = append(kinds, string(v))
	}
	for _, v := range []sm.Result{sm.Applied, sm.Stale, sm.Duplicate, sm.Conflict, sm.Ignored} {
		results = append(results, string(v))
	}
	require.ElementsMatch(t, states, enum("State"))
	require.ElementsMatch(t, knownProviders, enum("Provider"))
	require.ElementsMatch(t, engine.AnomalyKinds, enum("Anomaly", "kind"))
	require.ElementsMatch(t, engine.AnomalyStatuses, enum("Anomaly", "status"))
	require.ElementsMatch(t, engine.Severities, enum("Anomaly", "severity"))
	require.ElementsMatch(t, kinds, enum("TimelineEntry", "kind"))
	require.ElementsMatch(t, results, enum("TimelineEntry", "result"))
	codes := enum("Error", "error", "code")
	for _, c := range []string{engine.EINVALID, engine.EUNAUTHORIZED, engine.ENOTFOUND, engine.ECONFLICT, engine.ETOOLARGE, engine.EUNAVAILABLE,
		engine.EINTERNAL, engine.EUNSUPPORTED, engine.EOVERLOADED, engine.ESHUTDOWN, engine.EMETHOD, engine.EPROVIDER, api.ETIMEOUT} {
		require.Contains(t, codes, c)
	}
}

// The validation is no formality: an answer that breaks the document, or
// a request the document refuses, fails it.
func TestOpenAPI_ValidationCatchesDrift(t *testing.T) {
	t.Parallel()
	ft := &fakeT{}
	h := http.Header{"Content-Type": {"application/json"}}
	checkOpenAPI(ft, "GET", "http://x/v1/orders/o1", nil, nil, 200, h, []byte(`{"order_id":"o1"}`))
	require.Len(t, ft.errors, 1, "an order without its required fields")
	ft = &fakeT{}
	checkOpenAPI(ft, "GET", "http://x/v1/orders/o1", nil, nil, 418, h, []byte(`{"error":{"code":"invalid","message":"m"}}`))
	require.Len(t, ft.errors, 1, "a status the operation does not document")
	ft = &fakeT{}
	checkOpenAPI(ft, "PUT", "http://x/v1/orders/o1", h, []byte(`{"provider":"tazapay","checkout_id":"c","amount":1,"currency":"USD","colour":"red"}`),
		200, h, []byte(`{}`))
	require.Len(t, ft.errors, 1, "a field the document does not have, taken")
	ft = &fakeT{}
	checkOpenAPI(ft, "GET", "http://x/healthz", nil, nil, 200, h, []byte(`{"status":"ok"}`))
	require.Empty(t, ft.errors)
}

// fakeT collects what checkOpenAPI reports.
type fakeT struct {
	testing.TB
	errors []string
}

func (f *fakeT) Helper()                   {}
func (f *fakeT) Errorf(s string, a ...any) { f.errors = append(f.errors, fmt.Sprintf(s, a...)) }
func (f *fakeT) Fatal(a ...any)            { panic(fmt.Sprint(a...)) }
