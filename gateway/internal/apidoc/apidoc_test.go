package apidoc

import (
	"bytes"
	"os"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// The committed document is what Build makes of the committed Swagger
// one: a change here without `make generate` fails before CI's
// check-generated does.
func TestCommittedDocumentIsCurrent(t *testing.T) {
	swagger, err := os.ReadFile("../../../gen/openapi/echopilot.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../../../gen/openapi/echopilot.openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	built, err := Build(swagger)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, committed) {
		t.Fatal("gen/openapi/echopilot.openapi.json is stale: run make generate")
	}
}

func TestSummaryAndDescription(t *testing.T) {
	for _, c := range []struct{ summary, description, wantSummary, wantDescription string }{
		{"Adds a job. The same key\nreturns the first job.", "", "Adds a job", "Adds a job. The same key\nreturns the first job."},
		{"One line\nbuf:lint:ignore RPC_RESPONSE_STANDARD_NAME", "More.", "One line", "One line\n\nMore."},
		{"The click of a referral link. Over REST, GET /r/{code}.", "Details.", "The click of a referral link", "The click of a referral link. Over REST, GET /r/{code}.\n\nDetails."},
	} {
		s, d := summaryAndDescription(c.summary, c.description)
		if s != c.wantSummary || d != c.wantDescription {
			t.Errorf("(%q, %q) = %q, %q", c.summary, c.description, s, d)
		}
	}
}

// A response message nested in another message would be documented with
// an "ok" that the nested copy does not carry; the generator refuses it.
func TestNestedResponseIsFound(t *testing.T) {
	doc := &openapi3.T{Components: &openapi3.Components{Schemas: openapi3.Schemas{
		"v1JobResponse":   openapi3.NewObjectSchema().WithProperty("job_id", openapi3.NewStringSchema()).NewRef(),
		"v1JobsResponse":  openapi3.NewObjectSchema().WithProperty("jobs", openapi3.NewArraySchema().WithItems(nil)).NewRef(),
		"v1OtherResponse": openapi3.NewObjectSchema().WithProperty("n", openapi3.NewInt64Schema()).NewRef(),
	}}}
	doc.Components.Schemas["v1JobsResponse"].Value.Properties["jobs"].Value.Items = &openapi3.SchemaRef{Ref: "#/components/schemas/v1JobResponse"}
	if in := nestedIn(doc, "v1JobResponse"); in != "v1JobsResponse" {
		t.Fatalf("nestedIn = %q, want v1JobsResponse", in)
	}
	if in := nestedIn(doc, "v1OtherResponse"); in != "" {
		t.Fatalf("nestedIn of a top-level-only message = %q", in)
	}
}

// The lint ruleset's document rules, kept here (Redocly's "recommended",
// run once, `npx @redocly/cli lint --extends=recommended`: no error, no
// warning): a server, a license with its URL, and no schema that no path
// reaches.
func TestDocumentLintRules(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile("../../../gen/openapi/echopilot.openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Servers) == 0 || doc.Info.License == nil || doc.Info.License.Name == "" || doc.Info.License.URL == "" {
		t.Fatalf("servers %v, license %v", doc.Servers, doc.Info.License)
	}
	unused, err := unusedSchemas(doc)
	if err != nil || len(unused) != 0 {
		t.Fatalf("unused schemas %v (%v)", unused, err)
	}
	// The check finds one: a schema nothing refers to.
	doc.Components.Schemas["v1Orphan"] = openapi3.NewObjectSchema().NewRef()
	if unused, _ := unusedSchemas(doc); len(unused) != 1 || unused[0] != "v1Orphan" {
		t.Fatalf("unusedSchemas with an orphan = %v", unused)
	}
}
