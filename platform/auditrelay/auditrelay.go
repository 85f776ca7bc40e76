// Package auditrelay delivers a service's outbox events to the audit
// service as log entries: the publisher that services hand to
// service.Runtime.StartRelay for their audited topics.
package auditrelay

import (
	"context"

	"google.golang.org/grpc"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/outbox"
)

// Publisher returns the publisher that maps each claimed event to an
// entry with entry and appends a claimed batch with one AppendEntries
// call, with the service's own token (the service role may append to any
// tenant's log). entry should set the event id as IdempotencyKey, so an
// event redelivered after a lost answer is appended once.
func Publisher(entry func(outbox.Event) (*auditv1.NewEntry, error)) func(grpc.ClientConnInterface) outbox.BatchPublisher {
	return func(conn grpc.ClientConnInterface) outbox.BatchPublisher {
		client := auditv1.NewAuditServiceClient(conn)
		return outbox.CallPublisher(entry, func(ctx context.Context, entries []*auditv1.NewEntry) error {
			_, err := client.AppendEntries(ctx, &auditv1.AppendEntriesRequest{Entries: entries})
			return err
		})
	}
}
