package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/echopilot/echopilot/gateway/internal/apidoc"
	"github.com/echopilot/echopilot/gateway/internal/restjson"
	"github.com/echopilot/echopilot/gen"
)

// Every RPC of the API answers with a message the envelope fits: no field
// of its own named "ok" (MarshalOK would refuse it), or an HttpBody, whose
// bytes go out as they are.
func TestEveryResponseTakesTheEnvelope(t *testing.T) {
	n := 0
	apiMethods(func(m protoreflect.MethodDescriptor) {
		out := m.Output()
		if out.FullName() == "google.api.HttpBody" {
			return
		}
		n++
		b, err := restjson.MarshalOK(dynamicpb.NewMessage(out))
		if err != nil || !strings.HasPrefix(string(b), `{"ok":true`) {
			t.Errorf("%s: %s %v", m.FullName(), b, err)
		}
	})
	if n < 40 {
		t.Fatalf("checked %d responses; are the services registered?", n)
	}
}

// apiMethods calls fn for every RPC of the API (the services' descriptors
// come with the handlers this package imports).
func apiMethods(fn func(protoreflect.MethodDescriptor)) {
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), "echopilot.") {
			return true
		}
		for i := 0; i < fd.Services().Len(); i++ {
			methods := fd.Services().Get(i).Methods()
			for j := 0; j < methods.Len(); j++ {
				fn(methods.Get(j))
			}
		}
		return true
	})
}

// loadDocument is the served document, parsed and validated.
func loadDocument(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(gen.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3: %v", err)
	}
	return doc
}

// Every operation is documented for a client generator and a linter:
// summary, description, tags, operationId, the error envelope on 4XX and
// 5XX, and "ok": true in every JSON success.
func TestOpenAPIDocumentsEveryOperation(t *testing.T) {
	doc := loadDocument(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	n := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			n++
			where := method + " " + path
			if op.Summary == "" || op.Description == "" || len(op.Tags) == 0 || op.OperationID == "" {
				t.Errorf("%s: summary %q, description %d bytes, tags %v, operationId %q", where, op.Summary, len(op.Description), op.Tags, op.OperationID)
			}
			for _, class := range []string{"4XX", "5XX"} {
				r := op.Responses.Value(class)
				if r == nil {
					t.Errorf("%s: no %s response", where, class)
					continue
				}
				envelope := r.Value.Content.Get("application/json").Schema.Value
				if ok := envelope.Properties["ok"]; envelope.Properties["error"] == nil || ok == nil || fmt.Sprint(ok.Value.Enum) != "[false]" {
					t.Errorf("%s: no error envelope on %s", where, class)
				}
			}
			success := op.Responses.Value("200")
			if success == nil {
				if op.Responses.Value("302") == nil {
					t.Errorf("%s: no success response", where)
				}
				continue
			}
			for mt, m := range success.Value.Content {
				if mt != "application/json" {
					if !m.Schema.Value.Type.Is("string") || len(m.Schema.Value.Properties) > 0 {
						t.Errorf("%s: %s is not a plain string", where, mt)
					}
					continue
				}
				ok := m.Schema.Value.Properties["ok"]
				if path != "/openapi.json" && (ok == nil || !slices.Contains(m.Schema.Value.Required, "ok") || !ok.Value.Type.Is("boolean")) {
					t.Errorf("%s: success without a required boolean ok", where)
				}
			}
		}
	}
	if n < 70 {
		t.Fatalf("checked %d operations", n)
	}
	errDetail := doc.Components.Schemas["v1ErrorDetail"].Value
	for _, f := range []string{"code", "status", "reason", "message", "request_id"} {
		if !slices.Contains(errDetail.Required, f) {
			t.Errorf("error detail: %s not required", f)
		}
	}
}

// The document describes the wire: int64 fields as integers (restjson
// writes numbers), webhooks with their raw body and signature headers,
// exports with their media types, an optional tenant_id.
func TestOpenAPIDescribesTheWire(t *testing.T) {
	doc := loadDocument(t)
	schemas := doc.Components.Schemas
	if f := schemas["v1GetQueueStatusResponse"]; f == nil {
		t.Fatal("no v1GetQueueStatusResponse")
	}
	var stringInts []string
	var walk func(name string, s *openapi3.SchemaRef, seen map[*openapi3.Schema]bool)
	walk = func(name string, s *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
		if s == nil || s.Value == nil || seen[s.Value] {
			return
		}
		seen[s.Value] = true
		if s.Value.Type.Is("string") && (s.Value.Format == "int64" || s.Value.Format == "uint64") {
			stringInts = append(stringInts, name)
		}
		for p, ps := range s.Value.Properties {
			walk(name+"."+p, ps, seen)
		}
		walk(name+"[]", s.Value.Items, seen)
	}
	for name, s := range schemas {
		walk(name, s, map[*openapi3.Schema]bool{})
	}
	if len(stringInts) > 0 {
		t.Errorf("64-bit integers documented as strings: %v", stringInts)
	}
	stripe := doc.Paths.Value("/api/finops/stripe/webhook").Post
	if p := stripe.Parameters.GetByInAndName("header", "Stripe-Signature"); p == nil || !p.Required {
		t.Error("Stripe-Signature is not a required header")
	}
	if p := stripe.Parameters.GetByInAndName("query", "stripe_signature"); p != nil {
		t.Error("stripe_signature is still a query parameter")
	}
	if s := stripe.RequestBody.Value.Content.Get("application/json").Schema.Value; !s.Type.Is("object") {
		t.Errorf("Stripe body documented as %v", s.Type)
	}
	compliance := doc.Paths.Value("/api/compliance/webhook").Post
	for _, h := range []string{"X-EchoPilot-Signature", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"} {
		if compliance.Parameters.GetByInAndName("header", h) == nil {
			t.Errorf("compliance webhook lacks header %s", h)
		}
	}
	if p := compliance.Parameters.GetByInAndName("query", "tenant_id"); p == nil || p.Required {
		t.Errorf("compliance webhook tenant_id: %+v", p)
	}
	for path, mt := range map[string]string{"/api/finops/export": "text/csv", "/api/growth/payouts/export": "text/csv", "/api/audit/export": "application/x-ndjson"} {
		if doc.Paths.Value(path).Get.Responses.Value("200").Value.Content.Get(mt) == nil {
			t.Errorf("%s: not %s", path, mt)
		}
	}
	if s := doc.Components.SecuritySchemes["bearer"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Errorf("bearer scheme: %+v", s)
	}
	if got := doc.Paths.Value("/api/finops/stripe/webhook").Post.Security; got == nil || len(*got) != 0 {
		t.Errorf("a public webhook documented with security %v", got)
	}
}

// routedOperations is what the gateway routes, from its registrations:
// every RPC's google.api.http rule (what the generated Register functions
// register), the raw routes of Backends(), and the root mux's own paths.
// Path templates are in OpenAPI's form ({tenant.tenant_id} is
// {tenant_id}).
func routedOperations(t *testing.T) map[string]bool {
	t.Helper()
	nested := regexp.MustCompile(`\{[a-z_]+\.([a-z_]+)\}`)
	routes := map[string]bool{}
	add := func(method, path string) { routes[method+" "+nested.ReplaceAllString(path, "{$1}")] = true }
	apiMethods(func(m protoreflect.MethodDescriptor) {
		rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
		if rule == nil {
			return
		}
		if len(rule.GetAdditionalBindings()) > 0 {
			t.Fatalf("%s: additional bindings are not handled here", m.FullName())
		}
		switch p := rule.GetPattern().(type) {
		case *annotations.HttpRule_Get:
			add(http.MethodGet, p.Get)
		case *annotations.HttpRule_Post:
			add(http.MethodPost, p.Post)
		case *annotations.HttpRule_Put:
			add(http.MethodPut, p.Put)
		case *annotations.HttpRule_Patch:
			add(http.MethodPatch, p.Patch)
		case *annotations.HttpRule_Delete:
			add(http.MethodDelete, p.Delete)
		default:
			t.Fatalf("%s: rule %v", m.FullName(), rule)
		}
	})
	for _, b := range Backends() {
		for _, rr := range b.Raw {
			add(rr.Method, rr.Path)
		}
	}
	for p := range (&Gateway{}).rootRoutes() {
		add(http.MethodGet, p)
	}
	return routes
}

// The document lists exactly the operations the gateway routes, and the
// gateway's mux answers each of them (with every backend down: a 5XX, not
// PATH_NOT_FOUND or METHOD_NOT_ALLOWED).
func TestOpenAPIListsWhatTheGatewayRoutes(t *testing.T) {
	doc := loadDocument(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	routed := routedOperations(t)
	for op := range routed {
		if !documented[op] {
			t.Errorf("routed but not documented: %s", op)
		}
	}
	for op := range documented {
		if !routed[op] {
			t.Errorf("documented but not routed: %s", op)
		}
	}

	var backends []Backend
	for _, b := range Backends() {
		b.Addr = "127.0.0.1:1" // nothing listens: every call fails fast
		backends = append(backends, b)
	}
	srv, _ := startGateway(t, Config{CallTimeout: 2 * time.Second}, backends, true)
	param := regexp.MustCompile(`\{[^}]+\}`)
	for op := range documented {
		method, path, _ := strings.Cut(op, " ")
		body := ""
		if method != http.MethodGet && method != http.MethodDelete {
			body = "{}"
		}
		req, err := http.NewRequest(method, srv.URL+param.ReplaceAllString(path, "x"), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error struct{ Reason string } }
		_ = json.NewDecoder(resp.Body).Decode(&e) // a page or script is no envelope
		resp.Body.Close()
		if e.Error.Reason == "PATH_NOT_FOUND" || e.Error.Reason == "METHOD_NOT_ALLOWED" {
			t.Errorf("%s: documented, but the gateway answers %d %s", op, resp.StatusCode, e.Error.Reason)
		}
	}
}

// Every reason an operation lists is one the code can answer with: a
// string literal in the non-test sources of the services, the platform or
// the gateway. (The document names reasons, it does not invent them.)
func TestOpenAPIReasonCodesExist(t *testing.T) {
	literals := map[string]bool{}
	lit := regexp.MustCompile(`"([A-Z][A-Z0-9]+(?:_[A-Z0-9]+)+)"`)
	for _, root := range []string{"../../../services", "../../../platform", "../../../gateway"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
				literals[m[1]] = true
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	doc := loadDocument(t)
	n := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			reasons, _ := op.Extensions["x-reason-codes"].([]any)
			for _, r := range reasons {
				n++
				if !literals[r.(string)] {
					t.Errorf("%s %s lists reason %s, which no source returns", method, path, r)
				}
			}
		}
	}
	if n < 100 {
		t.Fatalf("checked %d reasons", n)
	}
}

// The document describes each raw route's request (body as it is, signature
// headers) from apidoc's table; a raw route missing there would be
// documented as its RPC's JSON mapping, which it does not read.
func TestOpenAPIKnowsTheRawRoutes(t *testing.T) {
	var raw []string
	for _, b := range Backends() {
		for _, rr := range b.Raw {
			svc, method, _ := strings.Cut(strings.TrimPrefix(rr.FullMethod, "/"), "/")
			raw = append(raw, svc[strings.LastIndex(svc, ".")+1:]+"_"+method)
		}
	}
	slices.Sort(raw)
	if got := apidoc.RawOperations(); !slices.Equal(got, raw) {
		t.Fatalf("apidoc documents raw requests of %v; the gateway's raw routes are %v", got, raw)
	}
}
