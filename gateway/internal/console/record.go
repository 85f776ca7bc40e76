package console

import (
	"context"
	"net/url"
	"slices"

	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/text"
)

// ReasonAuditRecordFailed: an action was done but could not be written to
// the tenant's audit log.
const ReasonAuditRecordFailed = "AUDIT_RECORD_FAILED"

// notRecorded are form fields that say nothing about the change.
var notRecorded = []string{"csrf", "confirm", "next"}

// record appends what the person did to the audit log of the tenant the
// action ran in, as the person (event type console.<action>, the person as
// user, the form's fields as details): the backends record the change, the
// log records who made it from the console. No action's form carries a
// secret (a rotated secret is made by the backend), so the fields may be
// kept; each is clipped, and a selection to its first 50 values.
func (c *Console) record(ctx context.Context, s *session, a Action, form url.Values) error {
	details := map[string]any{}
	for k, vs := range form {
		if slices.Contains(notRecorded, k) || len(details) == 20 {
			continue
		}
		var kept []any
		for _, v := range vs[:min(len(vs), 50)] {
			kept = append(kept, text.Truncate(v, 128))
		}
		if len(kept) == 1 {
			details[k] = kept[0]
		} else {
			details[k] = kept
		}
	}
	st, err := structpb.NewStruct(details)
	if err != nil {
		return err
	}
	_, err = c.c.audit.AppendEntries(ctx, &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{
		EventType: "console." + a.Name, User: s.Subject, Action: a.Name, Resource: "console",
		Details: st, Severity: auditv1.Severity_SEVERITY_MEDIUM,
	}}})
	return err
}
