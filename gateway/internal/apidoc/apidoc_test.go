package apidoc

import (
	"bytes"
	"os"
	"testing"
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
