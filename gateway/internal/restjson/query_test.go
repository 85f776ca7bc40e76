package restjson

import (
	"net/url"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

func parseQuery(t *testing.T, query string, into proto.Message) error {
	t.Helper()
	values, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	return QueryParser{}.Parse(into, values, utilities.NewDoubleArray(nil))
}

func TestQueryEnumsTakeSeedStrings(t *testing.T) {
	unknown := queuev1.JobStatus(unknownEnumNumber)
	for query, want := range map[string]*queuev1.ListJobsRequest{
		"status=queued&type=ai_task&page_size=5": {Status: queuev1.JobStatus_JOB_STATUS_QUEUED, Type: "ai_task", PageSize: 5},
		"status=cancelled":                       {Status: queuev1.JobStatus_JOB_STATUS_CANCELLED},
		"status=":                                {}, // "" is any, as before
		"type=x":                                 {Type: "x"},
		"status=done":                            {Status: unknown}, // the service refuses it with STATUS_INVALID
		"status=JOB_STATUS_QUEUED":               {Status: unknown},
		"status=1":                               {Status: unknown},
		"unrelated=1&status=dead":                {Status: queuev1.JobStatus_JOB_STATUS_DEAD},
	} {
		got := &queuev1.ListJobsRequest{}
		if err := parseQuery(t, query, got); err != nil {
			t.Errorf("%s: %v", query, err)
			continue
		}
		if !proto.Equal(want, got) {
			t.Errorf("%s: got %v, want %v", query, got, want)
		}
	}
	chain := &auditv1.GetChainRequest{}
	if err := parseQuery(t, "severity=high&limit=2&order=desc", chain); err != nil ||
		chain.GetSeverity() != auditv1.Severity_SEVERITY_HIGH || chain.GetLimit() != 2 || chain.GetOrder() != "desc" {
		t.Errorf("chain: %v %v", chain, err)
	}
}

func TestQueryRefusals(t *testing.T) {
	for _, query := range []string{
		"status=queued&status=dead", // one field, two values
		"page_size=many",            // the default parser still parses the rest
	} {
		if err := parseQuery(t, query, &queuev1.ListJobsRequest{}); err == nil {
			t.Errorf("%s parsed", query)
		}
	}
}

// A field bound from the path is not set again from the query.
func TestQueryFilter(t *testing.T) {
	got := &queuev1.ListJobsRequest{}
	values := url.Values{"status": {"queued"}}
	if err := (QueryParser{}).Parse(got, values, utilities.NewDoubleArray([][]string{{"status"}})); err != nil {
		t.Fatal(err)
	}
	if got.GetStatus() != queuev1.JobStatus_JOB_STATUS_UNSPECIFIED {
		t.Errorf("filtered field set: %v", got)
	}
	if len(values["status"]) != 1 {
		t.Errorf("the caller's values were changed: %v", values)
	}
}
