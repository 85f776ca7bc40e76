package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// contract is an http.RoundTripper that checks every exchange with the
// gateway against the document the gateway serves at /openapi.json, as a
// validating proxy would: every response must be one the document
// describes (status, headers, JSON body), and every request the gateway
// accepted (a status below 400) one it allows. A refused request is not
// checked: the tests send hostile ones on purpose, and the document
// promises only that they get the error envelope, which is checked.
type contract struct {
	base   http.RoundTripper
	router routers.Router
	errors *openapi3.SchemaRef // the error envelope, for unknown paths

	mu         sync.Mutex
	violations []string
}

// newContract loads the document gatewayURL serves.
func newContract(t *testing.T, gatewayURL string) *contract {
	t.Helper()
	resp, err := http.Get(gatewayURL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("/openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("/openapi.json is not valid OpenAPI 3: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: gatewayURL}}
	verbless(doc)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{base: http.DefaultTransport, router: router, errors: doc.Components.Schemas["v1ErrorResponse"]}
}

// report fails t with every violation seen, once its requests are done.
func (c *contract) report(t *testing.T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.violations {
		t.Errorf("contract: %s", v)
	}
}

func (c *contract) violate(req *http.Request, status int, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violations = append(c.violations, fmt.Sprintf("%s %s (%d): ", req.Method, req.URL.RequestURI(), status)+fmt.Sprintf(format, args...))
}

var checkOptions = &openapi3filter.Options{
	MultiError:            true,
	IncludeResponseStatus: true,
	// The scheme's presence is what the document states; the gateway
	// verifies the token itself.
	AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
		h := in.RequestValidationInput.Request.Header
		switch in.SecuritySchemeName {
		case "apiKey":
			if h.Get("X-API-Key") == "" {
				return fmt.Errorf("no X-API-Key")
			}
		default:
			if !strings.HasPrefix(h.Get("Authorization"), "Bearer ") {
				return fmt.Errorf("no bearer token")
			}
		}
		return nil
	},
}

func (c *contract) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	send := req.Clone(req.Context())
	send.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := c.base.RoundTrip(send)
	if err != nil {
		return nil, err
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var respBody []byte
	if mt == "application/json" { // byte streams (exports) are read by the test as they come
		respBody, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(respBody))
		if err != nil {
			return resp, nil // the test sees the broken body itself
		}
	}
	c.check(req, body, resp, mt, respBody)
	return resp, nil
}

func (c *contract) check(req *http.Request, body []byte, resp *http.Response, mt string, respBody []byte) {
	checked := req.Clone(context.Background())
	checked.Body = io.NopCloser(bytes.NewReader(body))
	if len(body) > 0 && checked.Header.Get("Content-Type") == "" {
		// The gateway reads a body without a Content-Type as JSON (the
		// document's info says so); the check reads it the same way.
		checked.Header.Set("Content-Type", "application/json")
	}
	route, params, err := c.router.FindRoute(checked)
	if err != nil {
		// A path or method the document does not list must be refused,
		// in the envelope.
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			c.violate(req, resp.StatusCode, "not in the document, yet answered: %v", err)
			return
		}
		if err := c.errors.Value.VisitJSON(decodeJSON(respBody)); err != nil {
			c.violate(req, resp.StatusCode, "refusal is not the error envelope: %v", err)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: checked, PathParams: params, Route: route, Options: checkOptions}
	if resp.StatusCode < 400 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			c.violate(req, resp.StatusCode, "accepted a request the document does not allow: %v", err)
		}
	}
	opts := *checkOptions
	opts.ExcludeResponseBody = mt != "application/json"
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: &opts}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.violate(req, resp.StatusCode, "response does not match the document: %v", err)
	}
}

func decodeJSON(b []byte) any {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	return v
}

// pathVar is a path template's variable.
var pathVar = regexp.MustCompile(`\{(\w+)\}`)

// verbless keeps the router's path variables from taking a ":verb" suffix,
// as the gateway does (grpc-gateway splits the verb off the last segment
// first): /api/tenants/acme:suspend is SuspendTenant, never GetTenant of
// "acme:suspend". The variables keep their names.
func verbless(doc *openapi3.T) {
	for path, item := range doc.Paths.Map() {
		if re := pathVar.ReplaceAllString(path, `{$1:[^/:]+}`); re != path {
			doc.Paths.Delete(path)
			doc.Paths.Set(re, item)
		}
	}
}
