// Command apidoc writes the gateway's OpenAPI 3.0 document from
// protoc-gen-openapiv2's Swagger 2.0 one (`make generate` runs it):
//
//	apidoc gen/openapi/echopilot.swagger.json gen/openapi/echopilot.openapi.json
package main

import (
	"fmt"
	"os"

	"github.com/echopilot/echopilot/gateway/internal/apidoc"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: apidoc <swagger.json> <openapi.json>")
		os.Exit(2)
	}
	in, err := os.ReadFile(os.Args[1])
	if err == nil {
		var out []byte
		if out, err = apidoc.Build(in); err == nil {
			err = os.WriteFile(os.Args[2], out, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
