package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/echopilot/echopilot/gen"
)

// gatewayPaths are the paths the gateway serves itself, which no proto
// declares, in the document's Swagger 2.0 form. (/metrics is not one: it
// is served on the admin port, not with the API.)
var gatewayPaths = map[string]any{
	"/health": map[string]any{"get": map[string]any{
		"summary":     "Gateway and backend health",
		"description": "Always 200 while the gateway runs; services maps each backend to its gRPC health (SERVING, NOT_SERVING, UNREACHABLE). No tenant context.",
		"operationId": "Gateway_Health", "tags": []string{"Gateway"}, "produces": []string{"application/json"},
		"responses": map[string]any{"200": map[string]any{"description": "status and per-service health",
			"schema": map[string]any{"type": "object", "properties": map[string]any{
				"status":   map[string]any{"type": "string"},
				"services": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
			}}}},
	}},
	"/openapi.json": map[string]any{"get": map[string]any{
		"summary": "This document", "operationId": "Gateway_OpenAPI", "tags": []string{"Gateway"},
		"produces":  []string{"application/json"},
		"responses": map[string]any{"200": map[string]any{"description": "the OpenAPI (Swagger 2.0) document of every path"}},
	}},
}

// openAPIDocument is the generated document of every RPC's REST mapping
// with the gateway's own paths added.
func openAPIDocument() ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(gen.OpenAPI, &doc); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("openapi: generated document has no paths")
	}
	for p, item := range gatewayPaths {
		paths[p] = item
	}
	return json.MarshalIndent(doc, "", "  ")
}

// serveOpenAPI serves doc.
func serveOpenAPI(doc []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(doc)
	}
}
