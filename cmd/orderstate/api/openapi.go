package api

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the OpenAPI 3.1 document of every route the server serves,
// kept in the repository beside the code (openapi.json) and served at
// GET /openapi.json. The end-to-end tests validate the requests they send
// and the answers they get against it, so it cannot drift from the code.
//
//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(OpenAPI)
}
