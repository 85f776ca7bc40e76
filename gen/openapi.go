// Package gen holds the code and the OpenAPI document generated from proto/ by
// `make generate`. Only this file is written by hand.
package gen

import _ "embed"

// OpenAPI is the merged OpenAPI v2 document of every REST path.
//
//go:embed openapi/echopilot.swagger.json
var OpenAPI []byte
