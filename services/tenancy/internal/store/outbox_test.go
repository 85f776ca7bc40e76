package store_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
	"github.com/echopilot/echopilot/services/tenancy/internal/store"
)

// testDB is a database migrated as the service's is: app is the service's
// role, owner sees every row (on PostgreSQL, through row-level security).
type testDB struct {
	app, owner *pstore.DB
}

// openDB creates a fresh database of b with the tenancy and outbox schemas.
func openDB(t *testing.T, b storetest.Backend) testDB {
	t.Helper()
	migrateURL, appURL := b.NewDB(t)
	owner := storetest.Open(t, migrateURL)
	for _, m := range []pstore.Migrations{store.Migrations, outbox.Migrations} {
		if err := owner.Migrate(t.Context(), m); err != nil {
			t.Fatalf("migrate %s: %v", b.Name, err)
		}
	}
	return testDB{app: storetest.Open(t, appURL), owner: owner}
}

// outboxRow is one stored event, as the relay would read it.
type outboxRow struct {
	ID, Topic, Key, Tenant string
	Payload                map[string]any
}

func outboxRows(t *testing.T, db *pstore.DB) []outboxRow {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT id, topic, event_key, tenant_id, payload FROM outbox ORDER BY event_key")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		var payload []byte
		if err := rows.Scan(&r.ID, &r.Topic, &r.Key, &r.Tenant, &payload); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(payload, &r.Payload); err != nil {
			t.Fatalf("event %s: payload %q: %v", r.ID, payload, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func countOutbox(t *testing.T, db *pstore.DB, topic string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), db.Rebind("SELECT count(*) FROM outbox WHERE topic = ?"), topic).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// decisionID is the stored id of the one decision of tenant with reason.
func decisionID(t *testing.T, db *pstore.DB, tenant, reason string) string {
	t.Helper()
	var id string
	err := db.InTenantReadTx(t.Context(), tenant, func(tx *sql.Tx) error {
		return tx.QueryRowContext(t.Context(), db.Rebind(
			"SELECT id FROM decisions WHERE tenant_id = ? AND reason = ?"), tenant, reason).Scan(&id)
	})
	if err != nil {
		t.Fatalf("decision %s/%s: %v", tenant, reason, err)
	}
	return id
}

// Recording a batch writes exactly the audited denials' events, in the
// batch's transaction, under the denied caller's tenant and keyed by the
// stored decision's id.
func TestDenialEvents(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := openDB(t, b)
			st := store.New(db.app)
			at := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
			batch := []domain.Decision{
				// Audited: verified denials.
				{TenantID: "acme", TargetTenantID: "globex", Subject: "alice", Method: "/echopilot.finops.v1.FinOpsService/GetSummary",
					Service: "finops", Reason: "CROSS_TENANT_DENIED", Verified: true, Time: at},
				{TenantID: "globex", TargetTenantID: "globex", Subject: "bob", Method: "/m", Service: "audit",
					Reason: "ROLE_REQUIRED", Verified: true, Time: at},
				{TenantID: "initech", Subject: "carol", Method: "/m", Service: "queue", Reason: "TENANT_NOT_ALLOWED", Verified: true},
				// Not audited: grants, and denials of unverified callers, even
				// cross-tenant ones (the domain counts them in the unverified
				// bucket; the store holds whatever it is given to the rule).
				{TenantID: "umbrella", TargetTenantID: "acme", Method: "/m", Service: "tenancy", Reason: "CROSS_TENANT_DENIED", Time: at},
				{TenantID: "acme", TargetTenantID: "acme", Subject: "alice", Allowed: true, Reason: "SAME_TENANT", Verified: true, Time: at},
				{TenantID: "default", TargetTenantID: "acme", Subject: "admin", Allowed: true, Reason: "ADMIN_READ_ONLY", Verified: true, Time: at},
				{TenantID: "acme", TargetTenantID: "acme", Method: "/m", Service: "finops", Reason: "TOKEN_INVALID", Time: at},
				{TenantID: "default", TargetTenantID: "default", Method: "/m", Service: "finops", Reason: "TOKEN_MISSING", Time: at},
			}
			before := time.Now()
			mustRecord(t, st, batch...)
			if n := countOutbox(t, db.app, domain.TopicAccessDenied); n != 3 {
				t.Fatalf("%d %s events, want 3 (one per audited denial)", n, domain.TopicAccessDenied)
			}
			got := map[string]outboxRow{}
			for _, r := range outboxRows(t, db.app) {
				got[r.Tenant] = r
			}
			if len(got) != 3 {
				t.Fatalf("events by tenant = %v, want acme, globex and initech", got)
			}
			want := map[string]map[string]any{
				"acme": {"tenant_id": "acme", "target_tenant_id": "globex", "subject": "alice",
					"method": "/echopilot.finops.v1.FinOpsService/GetSummary", "service": "finops",
					"reason": "CROSS_TENANT_DENIED", "verified": true, "time": "2026-03-04T05:06:07.123456Z"},
				"globex": {"tenant_id": "globex", "target_tenant_id": "globex", "subject": "bob", "method": "/m",
					"service": "audit", "reason": "ROLE_REQUIRED", "verified": true, "time": "2026-03-04T05:06:07.123456Z"},
			}
			for tenant, reason := range map[string]string{"acme": "CROSS_TENANT_DENIED", "globex": "ROLE_REQUIRED",
				"initech": "TENANT_NOT_ALLOWED"} {
				ev := got[tenant]
				if ev.Topic != domain.TopicAccessDenied || ev.Key != decisionID(t, db.app, tenant, reason) || ev.ID == "" {
					t.Errorf("%s event = %+v, want topic %s keyed by the decision id", tenant, ev, domain.TopicAccessDenied)
				}
				if w, ok := want[tenant]; ok && !reflect.DeepEqual(ev.Payload, w) {
					t.Errorf("%s payload = %v\nwant %v", tenant, ev.Payload, w)
				}
			}
			// A decision without a time gets the store's, and an empty target
			// means the caller's own tenant.
			p := got["initech"].Payload
			if p["target_tenant_id"] != "initech" || p["reason"] != "TENANT_NOT_ALLOWED" {
				t.Errorf("initech payload = %v", p)
			}
			if ts, err := time.Parse(time.RFC3339Nano, p["time"].(string)); err != nil || ts.Before(before.Add(-time.Second)) {
				t.Errorf("initech time = %v (%v), want the time of recording", p["time"], err)
			}

			// Grants and unaudited denials write nothing.
			mustRecord(t, st,
				domain.Decision{TenantID: "acme", Allowed: true, Reason: "SAME_TENANT", Verified: true},
				domain.Decision{TenantID: "acme", TargetTenantID: "globex", Allowed: true, Reason: "SERVICE_DELEGATION", Verified: true},
				domain.Decision{TenantID: "globex", Reason: "TOKEN_EXPIRED"},
			)
			if n := countOutbox(t, db.app, domain.TopicAccessDenied); n != 3 {
				t.Fatalf("%d events after a batch with no audited denial, want still 3", n)
			}
			assertStats(t, mustStats(t, st, all), 11, 7, 2,
				map[string]int64{"acme": 5, "globex": 2, "initech": 1, "umbrella": 1, "default": 2})
		})
	}
}

// The events and the decisions share one transaction: when the events
// cannot be written, no decision is stored or counted either.
func TestDenialEventsRollBackWithDecisions(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := openDB(t, b)
			st := store.New(db.app)
			if _, err := db.owner.ExecContext(t.Context(), "DROP TABLE outbox"); err != nil {
				t.Fatal(err)
			}
			err := st.RecordDecisions(t.Context(), []domain.Decision{
				{TenantID: "acme", Allowed: true, Verified: true},
				{TenantID: "acme", TargetTenantID: "globex", Reason: "CROSS_TENANT_DENIED", Verified: true},
			}, domain.Mark{})
			if err == nil {
				t.Fatal("RecordDecisions succeeded without an outbox to write the denial's event to")
			}
			assertStats(t, mustStats(t, st, all), 0, 0, 0, map[string]int64{})
			var n int
			if err := db.owner.QueryRowContext(t.Context(), "SELECT count(*) FROM decisions").Scan(&n); err != nil || n != 0 {
				t.Errorf("%d raw decisions stored (%v), want 0", n, err)
			}
			// A batch without audited denials writes no event at all.
			mustRecord(t, st, domain.Decision{TenantID: "acme", Allowed: true, Verified: true})
			assertStats(t, mustStats(t, st, all), 1, 0, 0, map[string]int64{"acme": 1})
		})
	}
}

// A state change stores the state and its events in one transaction; the
// same state again changes and writes nothing; an events error (a refused
// transition) leaves both as they were; an unknown tenant is ErrNotFound.
func TestChangeTenantState(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := openDB(t, b)
			st := store.New(db.app)
			ctx := t.Context()
			if _, _, err := st.CreateTenant(ctx, domain.Tenant{ID: "acme", DisplayName: "Acme"}); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
			events := func(before, after domain.Tenant) ([]domain.Event, error) {
				return []domain.Event{
					{Topic: domain.TopicTenantState, Key: "k-" + string(after.State), TenantID: "acme", Payload: json.RawMessage(`{}`)},
					{Topic: domain.TopicTenantState, Key: "p-" + string(after.State), TenantID: "default", Payload: json.RawMessage(`{}`)},
				}, nil
			}
			ch := domain.StateChange{To: domain.StateSuspended, Reason: "unpaid", By: "ops", At: at, Events: events}
			got, changed, err := st.ChangeTenantState(ctx, "acme", ch)
			if err != nil || !changed || got.State != domain.StateSuspended || got.StateReason != "unpaid" || got.StateChangedBy != "ops" || !got.StateChangedAt.Equal(at) {
				t.Fatalf("suspend = %+v, %v, %v", got, changed, err)
			}
			if read, err := st.GetTenant(ctx, "acme"); err != nil || read != got {
				t.Fatalf("GetTenant = %+v, %v; want %+v", read, err, got)
			}
			if n := countOutbox(t, db.app, domain.TopicTenantState); n != 2 {
				t.Fatalf("%d state events, want 2", n)
			}
			if _, changed, err := st.ChangeTenantState(ctx, "acme", ch); err != nil || changed {
				t.Fatalf("suspend again = %v, %v; want unchanged", changed, err)
			}
			refused := errors.New("refused")
			_, _, err = st.ChangeTenantState(ctx, "acme", domain.StateChange{To: domain.StateActive, At: at,
				Events: func(domain.Tenant, domain.Tenant) ([]domain.Event, error) { return nil, refused }})
			if !errors.Is(err, refused) {
				t.Fatalf("refused change = %v", err)
			}
			if read, _ := st.GetTenant(ctx, "acme"); read.State != domain.StateSuspended || countOutbox(t, db.app, domain.TopicTenantState) != 2 {
				t.Fatalf("a refused change wrote: %+v", read)
			}
			if _, _, err := st.ChangeTenantState(ctx, "nosuch", ch); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown tenant = %v", err)
			}
		})
	}
}
