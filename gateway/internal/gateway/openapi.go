package gateway

import (
	"net/http"

	"github.com/echopilot/echopilot/gen"
)

// serveOpenAPI serves the OpenAPI 3.0 document `make generate` wrote
// (gateway/internal/apidoc): it is final, so nothing is done to it here.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(gen.OpenAPI)
}
