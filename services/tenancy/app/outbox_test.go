package app_test

import (
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"

	outboxv1 "github.com/echopilot/echopilot/gen/go/echopilot/outbox/v1"
	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/tenancy/app"
)

// The outbox repair RPCs are a platform admin's: a tenant's users and
// admins, and the default tenant's non-admins, are refused; the platform
// admin lists a dead event and puts it back for the relay.
func TestOutboxDeadLettersAdminOnly(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			opt := servicetest.Options{AuthMode: "required", DatabaseURL: "sqlite://" + filepath.Join(t.TempDir(), "tenancy.db")}
			ownerURL := opt.DatabaseURL
			if backend == "postgres" {
				opt.MigrateURL, opt.DatabaseURL = storetest.Postgres(t)
				ownerURL = opt.MigrateURL
			}
			c := tenancyv1.NewTenancyServiceClient(servicetest.Start(t, app.Spec(), opt))
			// A denial writes an event; no audit address, so no relay runs.
			// The event is then dead-lettered as a relay would after a
			// permanent failure.
			if _, err := c.TestAccess(as(t, "acme", "user"), &tenancyv1.TestAccessRequest{TargetTenantId: "globex"}); err != nil {
				t.Fatal(err)
			}
			db := storetest.Open(t, ownerURL)
			var id string
			if err := db.QueryRowContext(t.Context(), "SELECT id FROM outbox WHERE tenant_id = 'acme'").Scan(&id); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(t.Context(), db.Rebind(
				"UPDATE outbox SET dead_at = next_attempt_at, attempts = 3, last_error = 'audit refused it' WHERE id = ?"), id); err != nil {
				t.Fatal(err)
			}

			for _, who := range []struct{ tenant, role, reason string }{
				{"acme", "user", "TENANT_NOT_ALLOWED"},
				{"acme", "admin", "TENANT_NOT_ALLOWED"},
				{"default", "user", "ROLE_REQUIRED"},
			} {
				ctx := as(t, who.tenant, who.role)
				_, err := c.ListDeadEvents(ctx, &outboxv1.ListDeadEventsRequest{})
				wantErr(t, err, codes.PermissionDenied, who.reason)
				_, err = c.RequeueDeadEvents(ctx, &outboxv1.RequeueDeadEventsRequest{All: true})
				wantErr(t, err, codes.PermissionDenied, who.reason)
			}

			admin := as(t, "default", "admin")
			list, err := c.ListDeadEvents(admin, &outboxv1.ListDeadEventsRequest{Topic: "tenancy.access.denied"})
			if err != nil || len(list.GetEvents()) != 1 {
				t.Fatalf("ListDeadEvents = %v, %v; want the dead denial", list, err)
			}
			if e := list.GetEvents()[0]; e.GetId() != id || e.GetTenantId() != "acme" || e.GetAttempts() != 3 || e.GetLastError() != "audit refused it" {
				t.Errorf("dead event = %v", e)
			}
			_, err = c.RequeueDeadEvents(admin, &outboxv1.RequeueDeadEventsRequest{Ids: []string{"no-such-event"}})
			wantErr(t, err, codes.NotFound, "OUTBOX_EVENT_NOT_FOUND")
			_, err = c.RequeueDeadEvents(admin, &outboxv1.RequeueDeadEventsRequest{})
			wantErr(t, err, codes.InvalidArgument, "OUTBOX_REQUEUE_INVALID")
			res, err := c.RequeueDeadEvents(admin, &outboxv1.RequeueDeadEventsRequest{Ids: []string{id}})
			if err != nil || res.GetRequeued() != 1 {
				t.Fatalf("RequeueDeadEvents = %v, %v", res, err)
			}
			var pending int
			if err := db.QueryRowContext(t.Context(), db.Rebind(
				"SELECT COUNT(*) FROM outbox WHERE id = ? AND dead_at IS NULL AND attempts = 0 AND last_error = ''"), id).Scan(&pending); err != nil || pending != 1 {
				t.Fatalf("requeued row pending: %d, %v", pending, err)
			}
			if list, err := c.ListDeadEvents(admin, &outboxv1.ListDeadEventsRequest{}); err != nil || len(list.GetEvents()) != 0 {
				t.Fatalf("dead events after the requeue = %v, %v", list, err)
			}
		})
	}
}
