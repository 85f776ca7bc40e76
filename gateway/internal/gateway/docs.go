package gateway

import (
	"embed"
	"net/http"
)

// docsFiles is the API reference page: Redoc, vendored (docs/README.md),
// rendering /openapi.json.
//
//go:embed docs/index.html docs/redoc.standalone.js
var docsFiles embed.FS

// docsCSP allows the page's own script and the document's fetch. Redoc
// injects its styles (styled-components) and runs its search in a worker
// it makes from a blob: URL, so styles may be inline and workers blob:;
// scripts may not be inline.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// serveDocsFile serves one file of docsFiles with the page's headers.
func serveDocsFile(name, contentType string) http.HandlerFunc {
	body, err := docsFiles.ReadFile(name)
	if err != nil {
		panic(err) // embedded above: cannot fail
	}
	return func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Content-Security-Policy", docsCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(body)
	}
}
