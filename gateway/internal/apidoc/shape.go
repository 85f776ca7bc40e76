package apidoc

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
)

// Names of the shared components.
const (
	errorSchema     = "v1ErrorResponse"
	errorDetail     = "v1ErrorDetail"
	clientError     = "ClientError"
	serverError     = "ServerError"
	tenantParam     = "TenantID"
	requestIDParam  = "RequestID"
	bearerScheme    = "bearer"
	apiKeyScheme    = "apiKey"
	requestIDHeader = "RequestID"
)

// exports are the server streams of google.api.HttpBody: the media type
// each service writes (bodystream.NewWriter in its grpcapi), and whether
// it names a file (Content-Disposition).
var exports = map[string]struct {
	mediaType  string
	attachment bool
}{
	"AuditService_ExportLog":        {"application/x-ndjson", false},
	"FinOpsService_ExportCosts":     {"text/csv", true},
	"GrowthService_ExportPayouts":   {"text/csv", true},
	"TenancyService_DownloadExport": {"application/gzip", true},
}

// rawRequest is what a gateway RawRoute (gateway.Backends) reads of the
// request in place of the generated mapping: the body as it is, headers,
// and the query parameters it still honours.
type rawRequest struct {
	body        string // the body's description; "" when there is none
	headers     []*openapi3.Parameter
	query       []string
	tenantAware bool // reads X-Tenant-ID although the method is public
}

func header(name string, required bool, desc string) *openapi3.Parameter {
	return &openapi3.Parameter{In: "header", Name: name, Required: required, Description: desc,
		Schema: openapi3.NewStringSchema().NewRef()}
}

var rawRequests = map[string]rawRequest{
	"FinOpsService_HandleStripeWebhook": {
		body: "The Stripe event exactly as Stripe sends it; the signature covers these bytes.",
		headers: []*openapi3.Parameter{header("Stripe-Signature", true,
			"t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">[,...], as Stripe signs it.")},
	},
	"AuditService_HandleComplianceWebhook": {
		body: "The compliance event as the sender signed it.",
		headers: []*openapi3.Parameter{
			header("X-EchoPilot-Signature", false, "t=<unix seconds>,v1=<hex HMAC-SHA256> (EchoPilot signing); or the three Webhook-* headers."),
			header("Webhook-Id", false, "Standard Webhooks: the message id (with Webhook-Timestamp and Webhook-Signature)."),
			header("Webhook-Timestamp", false, "Standard Webhooks: unix seconds."),
			header("Webhook-Signature", false, "Standard Webhooks: v1,<base64 HMAC-SHA256>[ ...]."),
		},
		query:       []string{"tenant_id"},
		tenantAware: true,
	},
	"GrowthService_TrackClick": {}, // the path's code, the visitor cookie and the connection
}

// RawOperations are the operationIds whose request the document takes from
// rawRequests, not from the RPC's mapping: they must be the gateway's raw
// routes, and only those (gateway's tests check it).
func RawOperations() []string {
	ids := make([]string, 0, len(rawRequests))
	for id := range rawRequests {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// shape applies the gateway's rules to the converted document.
func shape(doc *openapi3.T) error {
	doc.OpenAPI = "3.0.3"
	doc.Info.Description = "The EchoPilot Platform's REST gateway. JSON bodies use proto field names " +
		"(snake_case), 64-bit integers as JSON numbers, enums by lower-case names, and every field is present. " +
		"A success is `{\"ok\": true, ...}`; an error is `{\"ok\": false, \"error\": {code, status, reason, message, request_id, metadata}}` " +
		"with a stable `reason`. A request body is read as JSON whatever its Content-Type (webhooks take theirs as it is).\n\nAuthentication depends on the deployment's ECHOPILOT_AUTH_MODE: `required` refuses a " +
		"request without a bearer token (TOKEN_MISSING); `optional` lets it act, unverified and without roles, as the tenant " +
		"in X-Tenant-ID (or `default`). A presented token is always verified."
	components(doc)
	if err := flatPathParams(doc); err != nil {
		return err
	}
	pols := policies()
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			pol, ok := pols[op.OperationID]
			if !ok {
				return fmt.Errorf("%s %s: no RPC %q", method, path, op.OperationID)
			}
			if err := operation(doc, op, pol); err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
		}
	}
	requireWritten(doc)
	for path, item := range gatewayPaths() {
		doc.Paths.Set(path, item)
	}
	doc.Tags = append(doc.Tags, &openapi3.Tag{Name: "Gateway", Description: "Paths the gateway serves itself."})
	// What a recommended lint ruleset (Redocly's "recommended") asks of a
	// document: a server (the gateway serving it: the paths are absolute
	// from its root), a license, and no schema that nothing uses (the
	// plugin emits every message of the protos).
	doc.Servers = openapi3.Servers{{URL: "/", Description: "The gateway that serves this document."}}
	doc.Info.License = &openapi3.License{Name: "Proprietary", URL: "https://github.com/echopilot/echopilot/blob/main/README.md#license"}
	unused, err := unusedSchemas(doc)
	if err != nil {
		return err
	}
	for _, name := range unused {
		delete(doc.Components.Schemas, name)
	}
	return nil
}

// unusedSchemas names the component schemas that no path reaches, through
// any chain of references.
func unusedSchemas(doc *openapi3.T) ([]string, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	schemas, _ := dig(m, "components", "schemas").(map[string]any)
	used := map[string]bool{}
	var queue []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if name, ok := strings.CutPrefix(ref, "#/components/schemas/"); ok && !used[name] {
					used[name] = true
					queue = append(queue, name)
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	for k, v := range m {
		if k != "components" {
			walk(v)
		}
	}
	if comps, ok := m["components"].(map[string]any); ok {
		for k, v := range comps {
			if k != "schemas" {
				walk(v)
			}
		}
	}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		walk(schemas[name])
	}
	var unused []string
	for name := range schemas {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	return unused, nil
}

// flatPathParams renames path parameters that name a nested field
// ({tenant.tenant_id}) after the field ({tenant_id}): OpenAPI takes
// /api/tenants/{tenant.tenant_id} and /api/tenants/{tenant_id} for the
// same path, so their operations must share one path item.
func flatPathParams(doc *openapi3.T) error {
	for _, path := range doc.Paths.InMatchingOrder() {
		if !strings.Contains(path, ".") || !strings.Contains(path, "{") {
			continue
		}
		item := doc.Paths.Value(path)
		flat := path
		for _, op := range item.Operations() {
			for _, p := range op.Parameters {
				if p.Value.In != "path" || !strings.Contains(p.Value.Name, ".") {
					continue
				}
				short := p.Value.Name[strings.LastIndex(p.Value.Name, ".")+1:]
				flat = strings.ReplaceAll(flat, "{"+p.Value.Name+"}", "{"+short+"}")
				p.Value.Name = short
			}
		}
		if flat == path {
			continue
		}
		doc.Paths.Delete(path)
		into := doc.Paths.Value(flat)
		if into == nil {
			doc.Paths.Set(flat, item)
			continue
		}
		for method, op := range item.Operations() {
			if into.GetOperation(method) != nil {
				return fmt.Errorf("%s %s and %s", method, path, flat)
			}
			into.SetOperation(method, op)
		}
	}
	return nil
}

// components adds the error envelope, its responses, the identity headers
// and the bearer scheme.
func components(doc *openapi3.T) {
	c := doc.Components
	errResp := c.Schemas[errorSchema].Value
	errResp.Properties["ok"].Value.Enum = []any{false}
	errResp.Required = []string{"ok", "error"}
	c.Schemas[errorDetail].Value.Required = []string{"code", "status", "reason", "message", "request_id", "metadata"}
	envelope := func(desc string) *openapi3.ResponseRef {
		return &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription(desc).
			WithJSONSchemaRef(openapi3.NewSchemaRef("#/components/schemas/"+errorSchema, nil))}
	}
	c.Responses = openapi3.ResponseBodies{
		clientError: envelope("The request was refused. `error.reason` says why: among others INVALID_REQUEST " +
			"(malformed JSON or query), BODY_TOO_LARGE (413), RATE_LIMITED (429), TOKEN_MISSING, TOKEN_INVALID, " +
			"TOKEN_EXPIRED (401), CROSS_TENANT_DENIED, ROLE_REQUIRED (403), PATH_NOT_FOUND (404), METHOD_NOT_ALLOWED (405), " +
			"and the operation's own reasons."),
		serverError: envelope("The request could not be served: BACKEND_UNAVAILABLE (503), BACKEND_TIMEOUT (504), " +
			"INTERNAL (500, details masked)."),
	}
	for _, r := range c.Responses {
		r.Value.Headers = openapi3.Headers{"X-Request-Id": {Ref: "#/components/headers/" + requestIDHeader}}
	}
	c.Responses[clientError].Value.Headers["Retry-After"] = &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
		Description: "On 429 (RATE_LIMITED): whole seconds to wait before retrying.",
		Schema:      openapi3.NewIntegerSchema().WithMin(0).NewRef()}}}
	c.Headers = openapi3.Headers{requestIDHeader: {Value: &openapi3.Header{Parameter: openapi3.Parameter{
		Description: "The request's id (the client's X-Request-Id, or one the gateway made), as in error.request_id.",
		Schema:      openapi3.NewStringSchema().NewRef()}}}}
	c.Parameters = openapi3.ParametersMap{
		tenantParam: {Value: header("X-Tenant-ID", false, "The tenant the request acts for. With a token: its own "+
			"tenant (the default), or another one a platform admin may read. Without a token (auth mode optional): the "+
			"tenant claimed, unverified; `default` when absent.")},
		requestIDParam: {Value: header("X-Request-Id", false, "A correlation id (at most 128 characters) echoed in "+
			"the X-Request-Id response header and error.request_id; the gateway makes one when absent.")},
	}
	c.SecuritySchemes = openapi3.SecuritySchemes{
		bearerScheme: {Value: &openapi3.SecurityScheme{
			Type: "http", Scheme: "bearer",
			Description: "A JWT with sub, tenant_id and roles, or a tenant's API key (ep_live_<key id>_<secret>). Required when " +
				"the deployment runs with ECHOPILOT_AUTH_MODE=required; optional (but verified when present) with ECHOPILOT_AUTH_MODE=optional.",
		}},
		apiKeyScheme: {Value: &openapi3.SecurityScheme{
			Type: "apiKey", In: "header", Name: "X-API-Key",
			Description: "A tenant's API key (ep_live_…), as an alternative to `Authorization: Bearer ep_live_…`.",
		}},
	}
	// A bearer token, an API key, or, where the deployment allows it, none.
	doc.Security = openapi3.SecurityRequirements{{bearerScheme: []string{}}, {apiKeyScheme: []string{}}, {}}
}

// operation rewrites one RPC's operation.
func operation(doc *openapi3.T, op *openapi3.Operation, pol *authv1.Policy) error {
	op.Summary, op.Description = summaryAndDescription(op.Summary, op.Description)
	if op.Summary == "" {
		return fmt.Errorf("%s has no comment to document it", op.OperationID)
	}
	reasons := reasonCodes(op.Description, pol)
	if pol.GetPublic() {
		op.Security = &openapi3.SecurityRequirements{}
		op.Description += "\n\nPublic: no token is needed (or read)."
	} else if roles := pol.GetRequiredRoles(); len(roles) > 0 {
		op.Description += "\n\nRequires role " + strings.Join(roles, " and ") + " (reason ROLE_REQUIRED otherwise)."
	}
	if len(reasons) > 0 {
		op.Description += "\n\nReasons (error.reason) of its own and of the access check: " + strings.Join(reasons, ", ") + "."
		op.Extensions = map[string]any{"x-reason-codes": reasons}
	}
	raw, isRaw := rawRequests[op.OperationID]
	if isRaw {
		rawOperation(op, raw)
	}
	if !pol.GetPublic() || raw.tenantAware {
		op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Ref: "#/components/parameters/" + tenantParam})
	}
	op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Ref: "#/components/parameters/" + requestIDParam})

	ok := op.Responses.Value("200")
	if ok == nil || ok.Value == nil {
		return fmt.Errorf("no 200 response")
	}
	op.Responses.Delete("default")
	op.Responses.Set("4XX", &openapi3.ResponseRef{Ref: "#/components/responses/" + clientError})
	op.Responses.Set("5XX", &openapi3.ResponseRef{Ref: "#/components/responses/" + serverError})
	ok.Value.Description = ptr("Success.")
	if exp, isExport := exports[op.OperationID]; isExport {
		ok.Value.Content = openapi3.Content{exp.mediaType: openapi3.NewMediaType().WithSchema(openapi3.NewStringSchema())}
		ok.Value.Description = ptr("The export, streamed as it is read (" + exp.mediaType + ").")
		if exp.attachment {
			ok.Value.Headers = openapi3.Headers{"Content-Disposition": {Value: &openapi3.Header{Parameter: openapi3.Parameter{
				Description: "attachment; filename=\"<name>.csv\"", Schema: openapi3.NewStringSchema().NewRef()}}}}
		}
		return nil
	}
	mt := ok.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Ref == "" {
		return fmt.Errorf("200 is neither an export nor a JSON message")
	}
	if op.OperationID == "GrowthService_TrackClick" {
		// Over REST a click is a redirect; the message is the gRPC answer.
		op.Responses.Delete("200")
		found := openapi3.NewResponse().WithDescription("To the campaign's landing URL with ref=<code> in its query.")
		found.Headers = openapi3.Headers{
			"Location":   {Value: &openapi3.Header{Parameter: openapi3.Parameter{Required: true, Schema: openapi3.NewStringSchema().NewRef()}}},
			"Set-Cookie": {Value: &openapi3.Header{Parameter: openapi3.Parameter{Description: "ep_ref=<code> and ep_vid=<visitor id>, HttpOnly, SameSite=Lax, for the campaign's attribution window.", Schema: openapi3.NewStringSchema().NewRef()}}},
		}
		op.Responses.Set("302", &openapi3.ResponseRef{Value: found})
		paused := openapi3.NewResponse().WithDescription("The code's tenant is suspended: a neutral page, no redirect, no cookie, the click not counted.")
		paused.Content = openapi3.NewContentWithSchema(openapi3.NewStringSchema(), []string{"text/html"})
		op.Responses.Set("200", &openapi3.ResponseRef{Value: paused})
		return nil
	}
	// restjson opens every success with "ok": true. Response messages are
	// never nested in others, so their schemas may say so; one that is
	// would be documented with an "ok" the wire does not have.
	name := strings.TrimPrefix(mt.Schema.Ref, "#/components/schemas/")
	s := doc.Components.Schemas[name]
	if s == nil || s.Value == nil {
		return fmt.Errorf("no schema %s", name)
	}
	if in := nestedIn(doc, name); in != "" {
		return fmt.Errorf("response message %s is nested in %s: give the nested use a message of its own", name, in)
	}
	if s.Value.Properties == nil {
		s.Value.Properties = openapi3.Schemas{}
	}
	s.Value.Properties["ok"] = openapi3.NewBoolSchema().WithEnum(true).NewRef()
	s.Value.Properties["ok"].Value.Description = "Always true on success (an error body has false)."
	if !contains(s.Value.Required, "ok") {
		s.Value.Required = append(s.Value.Required, "ok")
	}
	return nil
}

// requireWritten marks required every field restjson always writes, in the
// schemas only responses use: a client may count on them, and the contract
// check catches one missing. Schemas a request also uses stay as they are
// (a request may leave any field out).
func requireWritten(doc *openapi3.T) {
	inRequests := map[string]bool{}
	inResponses := map[string]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, p := range op.Parameters {
				if p.Value != nil {
					refs(doc, p.Value.Schema, inRequests)
				}
			}
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				for _, mt := range op.RequestBody.Value.Content {
					refs(doc, mt.Schema, inRequests)
				}
			}
			for _, r := range op.Responses.Map() {
				if r.Value != nil && r.Ref == "" {
					for _, mt := range r.Value.Content {
						refs(doc, mt.Schema, inResponses)
					}
				}
			}
		}
	}
	written := alwaysWritten()
	for name := range inResponses {
		fields, ok := written[name]
		if inRequests[name] || !ok {
			continue
		}
		s := doc.Components.Schemas[name].Value
		for _, f := range fields {
			if s.Properties[f] != nil && !slices.Contains(s.Required, f) {
				s.Required = append(s.Required, f)
			}
		}
		slices.Sort(s.Required)
	}
}

// refs adds to seen the component schemas s refers to, transitively.
// nestedIn names a schema that holds schema name in a field ("" for none).
func nestedIn(doc *openapi3.T, name string) string {
	for other, s := range doc.Components.Schemas {
		if other == name || s.Value == nil {
			continue
		}
		seen := map[string]bool{}
		for _, p := range s.Value.Properties {
			refs(doc, p, seen)
		}
		refs(doc, s.Value.Items, seen)
		if seen[name] {
			return other
		}
	}
	return ""
}

func refs(doc *openapi3.T, s *openapi3.SchemaRef, seen map[string]bool) {
	if s == nil {
		return
	}
	if name, ok := strings.CutPrefix(s.Ref, "#/components/schemas/"); ok {
		if seen[name] {
			return
		}
		seen[name] = true
		s = doc.Components.Schemas[name]
		if s == nil {
			return
		}
	}
	v := s.Value
	if v == nil {
		return
	}
	for _, p := range v.Properties {
		refs(doc, p, seen)
	}
	refs(doc, v.Items, seen)
	if v.AdditionalProperties.Schema != nil {
		refs(doc, v.AdditionalProperties.Schema, seen)
	}
	for _, group := range []openapi3.SchemaRefs{v.AllOf, v.AnyOf, v.OneOf} {
		for _, e := range group {
			refs(doc, e, seen)
		}
	}
}

// statusNames are the gRPC status names, which comments mention beside
// reasons (an error.status, not an error.reason).
var statusNames = map[string]bool{
	"INVALID_ARGUMENT": true, "FAILED_PRECONDITION": true, "OUT_OF_RANGE": true, "NOT_FOUND": true,
	"ALREADY_EXISTS": true, "PERMISSION_DENIED": true, "RESOURCE_EXHAUSTED": true, "DEADLINE_EXCEEDED": true,
	"DATA_LOSS": true,
}

var upperSnake = regexp.MustCompile(`\b[A-Z][A-Z0-9]+(?:_[A-Z0-9]+)+\b`)

// reasonCodes are the reasons an operation may answer with, as far as its
// description and access policy say: the reasons its comment names, and
// those of platform/identity's access check that the policy can give.
// (The gateway's own, for any path, are in the shared error responses.)
func reasonCodes(description string, pol *authv1.Policy) []string {
	var out []string
	for _, r := range upperSnake.FindAllString(description, -1) {
		if !statusNames[r] && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if !pol.GetPublic() {
		out = append(out, "TOKEN_MISSING", "TOKEN_INVALID", "TOKEN_EXPIRED", "TENANT_INVALID", "TENANT_CONFLICT",
			"CROSS_TENANT_DENIED", "SERVICE_IDENTITY_INVALID", "SERVICE_NOT_ALLOWED")
		if len(pol.GetAllowedTenants()) > 0 {
			out = append(out, "TENANT_NOT_ALLOWED")
		}
		if len(pol.GetRequiredRoles()) > 0 {
			out = append(out, "ROLE_REQUIRED")
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// rawOperation documents a RawRoute's request: the plugin saw only the
// RPC's request message, whose fields the route fills from the body,
// headers and path.
func rawOperation(op *openapi3.Operation, raw rawRequest) {
	var params openapi3.Parameters
	for _, p := range op.Parameters {
		if p.Value.In == "path" || contains(raw.query, p.Value.Name) && p.Value.In == "query" {
			p.Value.Required = p.Value.In == "path"
			params = append(params, p)
		}
	}
	for _, h := range raw.headers {
		params = append(params, &openapi3.ParameterRef{Value: h})
	}
	op.Parameters = params
	op.RequestBody = nil
	if raw.body != "" {
		body := openapi3.NewObjectSchema()
		body.Description = raw.body
		op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(true).
			WithDescription(raw.body).WithJSONSchema(body)}
	}
}

// gatewayPaths are the paths the gateway serves itself, which no proto
// declares. (/metrics is not one: it is on the admin port.)
func gatewayPaths() map[string]*openapi3.PathItem {
	health := openapi3.NewObjectSchema().
		WithProperty("ok", openapi3.NewBoolSchema().WithEnum(true)).
		WithProperty("status", openapi3.NewStringSchema().WithEnum("ok", "degraded")).
		WithProperty("services", openapi3.NewObjectSchema().WithAdditionalProperties(
			openapi3.NewStringSchema().WithEnum("SERVING", "NOT_SERVING", "UNREACHABLE", "UNKNOWN", "SERVICE_UNKNOWN")))
	health.Required = []string{"ok", "status", "services"}
	op := func(id, summary, desc string, ok *openapi3.Response) *openapi3.Operation {
		o := &openapi3.Operation{
			OperationID: id, Summary: summary, Description: desc, Tags: []string{"Gateway"},
			Security:  &openapi3.SecurityRequirements{},
			Responses: openapi3.NewResponses(openapi3.WithStatus(http.StatusOK, &openapi3.ResponseRef{Value: ok})),
		}
		o.Responses.Set("4XX", &openapi3.ResponseRef{Ref: "#/components/responses/" + clientError})
		o.Responses.Set("5XX", &openapi3.ResponseRef{Ref: "#/components/responses/" + serverError})
		return o
	}
	return map[string]*openapi3.PathItem{
		"/health": {Get: op("Gateway_Health", "Gateway and backend health",
			"Always 200 while the gateway runs; services maps each backend to its gRPC health. No tenant context, no token.",
			openapi3.NewResponse().WithDescription("Status and per-service health.").WithJSONSchema(health))},
		"/openapi.json": {Get: op("Gateway_OpenAPI", "This document",
			"The OpenAPI 3.0 document of every path the gateway serves.",
			openapi3.NewResponse().WithDescription("The document.").WithJSONSchema(openapi3.NewObjectSchema()))},
		"/docs": {Get: op("Gateway_Docs", "API reference page",
			"This document rendered by Redoc, served by the gateway with its own Content-Security-Policy.",
			openapi3.NewResponse().WithDescription("The page.").WithContent(openapi3.NewContentWithSchema(openapi3.NewStringSchema(), []string{"text/html"})))},
		"/docs/redoc.standalone.js": {Get: op("Gateway_DocsScript", "The reference page's script",
			"Redoc's standalone bundle, vendored (MIT).",
			openapi3.NewResponse().WithDescription("The script.").WithContent(openapi3.NewContentWithSchema(openapi3.NewStringSchema(), []string{"text/javascript"})))},
	}
}

func ptr[T any](v T) *T { return &v }

func contains(s []string, v string) bool { return slices.Contains(s, v) }
