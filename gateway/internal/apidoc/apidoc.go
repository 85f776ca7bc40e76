// Package apidoc turns protoc-gen-openapiv2's Swagger 2.0 document into the
// OpenAPI 3.0 document of what the gateway really serves (`make generate`
// runs it; the result is gen/openapi/echopilot.openapi.json).
//
// protoc-gen-openapiv2 describes protojson, which is not the gateway's wire:
// restjson writes 64-bit integers as numbers, enums by their JSON names and
// "ok": true first in every success; errors are the envelope
// echopilot.rest.v1.ErrorResponse; webhooks take their raw body and
// signature headers (gateway RawRoute), and exports are byte streams of their
// own media type. Build applies those rules, so the document is the
// contract a validating proxy checks the gateway against.
//
// OpenAPI 3.0 rather than 3.1: kin-openapi (validation, openapi3filter) and
// oapi-codegen support 3.0 fully and 3.1 only in part.
//
// This package must not import the gen module's root package, which embeds
// the document it writes (and which `buf generate` deletes first).
package apidoc

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

// Build converts swagger, protoc-gen-openapiv2's merged document, to the
// gateway's OpenAPI 3.0 document, validated, as indented JSON.
func Build(swagger []byte) ([]byte, error) {
	doc, err := convert(swagger)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// convert is Build before encoding.
func convert(swagger []byte) (*openapi3.T, error) {
	var raw map[string]any
	if err := json.Unmarshal(swagger, &raw); err != nil {
		return nil, fmt.Errorf("apidoc: %w", err)
	}
	// Schema rules first, on the Swagger form, where every schema is a
	// plain JSON object.
	wireSchemas(raw, enumJSONNames())
	if defs, ok := raw["definitions"].(map[string]any); ok {
		nullWellKnown(defs)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var v2 openapi2.T
	if err := json.Unmarshal(b, &v2); err != nil {
		return nil, fmt.Errorf("apidoc: swagger: %w", err)
	}
	doc, err := openapi2conv.ToV3(&v2)
	if err != nil {
		return nil, fmt.Errorf("apidoc: convert: %w", err)
	}
	if err := shape(doc); err != nil {
		return nil, fmt.Errorf("apidoc: %w", err)
	}
	// The loader resolves the references Validate follows.
	b, err = json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	loaded, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("apidoc: reload: %w", err)
	}
	if err := loaded.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("apidoc: invalid document: %w", err)
	}
	return loaded, nil
}

// wireSchemas rewrites every schema of the Swagger document to restjson's
// encoding: 64-bit integers are JSON numbers (protojson's strings are a
// JavaScript precision guard the seed's contract never had), enums carry
// their JSON names, and a byte stream is a string without the properties
// the plugin gives it.
func wireSchemas(v any, enums map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		if f, _ := v["format"].(string); v["type"] == "string" {
			switch f {
			case "int64":
				v["type"] = "integer"
			case "uint64":
				v["type"], v["format"], v["minimum"] = "integer", "int64", 0
			case "binary":
				delete(v, "properties")
			}
		}
		if values, ok := v["enum"].([]any); ok {
			for i, e := range values {
				if s, ok := e.(string); ok {
					if name, ok := enums[s]; ok {
						values[i] = name
					}
				}
			}
			if s, ok := v["default"].(string); ok {
				if name, ok := enums[s]; ok {
					v["default"] = name
				}
			}
		}
		for _, e := range v {
			wireSchemas(e, enums)
		}
	case []any:
		for _, e := range v {
			wireSchemas(e, enums)
		}
	}
}

// nullWellKnown marks nullable the properties of message definitions that
// hold a well-known type (Timestamp, Duration, Struct...): restjson writes
// an unset one as null, where every other message is an object.
func nullWellKnown(defs map[string]any) {
	for name, fields := range wellKnownFields() {
		props, _ := dig(defs, name, "properties").(map[string]any)
		for _, f := range fields {
			if p, ok := props[f].(map[string]any); ok {
				p["x-nullable"] = true // openapi2conv's spelling of nullable
			}
		}
	}
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

// summaryAndDescription splits a proto comment, which protoc-gen-openapiv2
// puts whole in the summary (or in both), into a one-sentence summary and
// the full text as description, without buf's lint directives.
func summaryAndDescription(summary, description string) (string, string) {
	text := strings.TrimSpace(summary)
	if description != "" {
		text = strings.TrimSpace(text + "\n\n" + description)
	}
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "buf:lint:") {
			lines = append(lines, l)
		}
	}
	text = strings.TrimSpace(strings.Join(lines, "\n"))
	paragraph, _, _ := strings.Cut(text, "\n\n")
	first := strings.Join(strings.Fields(paragraph), " ")
	if i := strings.Index(first, ". "); i >= 0 {
		first = first[:i+1]
	}
	return strings.TrimSuffix(first, "."), text
}
