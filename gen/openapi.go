// Package gen holds the code and the OpenAPI document generated from proto/ by
// `make generate`. Only this file is written by hand.
package gen

import _ "embed"

// OpenAPI is the OpenAPI 3.0 document of every REST path the gateway
// serves: protoc-gen-openapiv2's echopilot.swagger.json with the gateway's
// wire rules applied (gateway/internal/apidoc).
//
//go:embed openapi/echopilot.openapi.json
var OpenAPI []byte
