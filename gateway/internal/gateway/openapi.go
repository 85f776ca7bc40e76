package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/echopilot/echopilot/gateway/internal/restjson"
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

// httpBodyRef is google.api.HttpBody's definition: its data is the body
// itself (an export), with no JSON envelope around it.
const httpBodyRef = "#/definitions/apiHttpBody"

// openAPIDocument is the generated document of every RPC's REST mapping
// with the gateway's own paths added, and the envelope's "ok" in every
// successful JSON response.
func openAPIDocument() ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(gen.OpenAPI, &doc); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("openapi: generated document has no paths")
	}
	defs, ok := doc["definitions"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("openapi: generated document has no definitions")
	}
	if err := documentOK(paths, defs); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	for p, item := range gatewayPaths {
		paths[p] = item
	}
	jsonEnums(doc, enumJSONNames())
	return json.MarshalIndent(doc, "", "  ")
}

// documentOK adds "ok" to the definition of every 200 response: the
// messages have no such field (restjson.MarshalOK writes it), yet clients
// read it. Response messages are never nested in others, so adding it to
// their definitions documents nothing false.
func documentOK(paths, defs map[string]any) error {
	for p, item := range paths {
		ops, _ := item.(map[string]any)
		for method, op := range ops {
			ref, _ := dig(op, "responses", "200", "schema", "$ref").(string)
			if ref == "" || ref == httpBodyRef {
				continue // a byte stream, or no JSON body to describe
			}
			def, ok := defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
			if !ok {
				return fmt.Errorf("%s %s: no definition %s", method, p, ref)
			}
			props, _ := def["properties"].(map[string]any)
			if props == nil { // a message with no fields
				props = map[string]any{}
				def["properties"] = props
			}
			props["ok"] = map[string]any{"type": "boolean", "description": "Always true on success (an error body has false)."}
		}
	}
	return nil
}

// dig follows keys through nested JSON objects; nil when one is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// enumJSONNames maps the value names of every enum of the API's protos to
// their JSON names (restjson.EnumJSONName). Value names are unique within a
// package, and the rule gives a value the same JSON name wherever it is.
func enumJSONNames() map[string]string {
	names := map[string]string{}
	var add func(enums protoreflect.EnumDescriptors, msgs protoreflect.MessageDescriptors)
	add = func(enums protoreflect.EnumDescriptors, msgs protoreflect.MessageDescriptors) {
		for i := 0; i < enums.Len(); i++ {
			values := enums.Get(i).Values()
			for j := 0; j < values.Len(); j++ {
				v := values.Get(j)
				names[string(v.Name())], _ = restjson.EnumJSONName(enums.Get(i), v.Number())
			}
		}
		for i := 0; i < msgs.Len(); i++ {
			add(msgs.Get(i).Enums(), msgs.Get(i).Messages())
		}
	}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(fd.Package()), "echopilot.") {
			add(fd.Enums(), fd.Messages())
		}
		return true
	})
	return names
}

// jsonEnums rewrites the enum lists and defaults of the generated document,
// which name proto values ("PRIORITY_HIGH"), to the JSON names the REST API
// reads and writes ("high").
func jsonEnums(v any, names map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		if values, ok := v["enum"].([]any); ok {
			for i, e := range values {
				if s, ok := e.(string); ok {
					if name, ok := names[s]; ok {
						values[i] = name
					}
				}
			}
			if s, ok := v["default"].(string); ok {
				if name, ok := names[s]; ok {
					v["default"] = name
				}
			}
		}
		for _, e := range v {
			jsonEnums(e, names)
		}
	case []any:
		for _, e := range v {
			jsonEnums(e, names)
		}
	}
}

// serveOpenAPI serves doc.
func serveOpenAPI(doc []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(doc)
	}
}
