package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
	"github.com/echopilot/echopilot/services/queue/internal/store"
)

// fixture is a migrated database of one backend: st works as the service
// does (the app role on PostgreSQL); owner sees every row.
type fixture struct {
	st    *store.Store
	db    *pstore.DB
	owner *pstore.DB
	// t0 is a fixed clock origin; tests pass times explicitly.
	t0 time.Time
}

func newFixture(t testing.TB, b storetest.Backend) fixture {
	t.Helper()
	migrateURL, appURL := b.NewDB(t)
	owner := storetest.Open(t, migrateURL)
	for _, m := range []pstore.Migrations{store.Migrations, outbox.Migrations} {
		if err := owner.Migrate(t.Context(), m); err != nil {
			t.Fatalf("migrate %s: %v", b.Name, err)
		}
	}
	db := storetest.Open(t, appURL)
	return fixture{
		st: store.New(db), db: db, owner: owner,
		t0: time.Now().UTC().Truncate(time.Millisecond),
	}
}

// eachBackend runs fn as one subtest per backend.
func eachBackend(t *testing.T, fn func(t *testing.T, f fixture)) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, newFixture(t, b)) })
	}
}

// storeCase is a case of a store contract suite.
type storeCase struct {
	name string
	run  func(t *testing.T, f fixture)
}

// runCases runs each case on every backend, each on a fresh database
// opened as the service's role.
func runCases(t *testing.T, cases []storeCase) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, newFixture(t, b)) })
			}
		})
	}
}

type jobOpt func(*domain.NewJob)

func prio(p domain.Priority) jobOpt { return func(j *domain.NewJob) { j.Priority = p } }
func runAt(at time.Time) jobOpt     { return func(j *domain.NewJob) { j.RunAt = at } }
func key(k string) jobOpt           { return func(j *domain.NewJob) { j.IdempotencyKey = k } }
func jobType(typ string) jobOpt     { return func(j *domain.NewJob) { j.Type = typ } }
func maxAttempts(n int) jobOpt      { return func(j *domain.NewJob) { j.MaxAttempts = n } }
func payload(p map[string]any) jobOpt {
	return func(j *domain.NewJob) { j.Payload, _ = json.Marshal(p) }
}
func createdAt(at time.Time) jobOpt { return func(j *domain.NewJob) { j.CreatedAt = at } }
func newJob(tenant string, opts ...jobOpt) domain.NewJob {
	j := domain.NewJob{
		TenantID: tenant, ID: ulid.Make().String(), Type: "ai_task", Priority: domain.PriorityNormal,
		Payload: json.RawMessage(`{}`), MaxAttempts: 3,
	}
	for _, o := range opts {
		o(&j)
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = time.Now().UTC()
	}
	if j.RunAt.IsZero() {
		j.RunAt = j.CreatedAt
	}
	return j
}

func (f fixture) enqueue(t testing.TB, tenant string, opts ...jobOpt) domain.Job {
	t.Helper()
	opts = append([]jobOpt{createdAt(f.t0)}, opts...)
	j, dup, err := f.st.Enqueue(t.Context(), newJob(tenant, opts...))
	if err != nil || dup {
		t.Fatalf("enqueue: %v (duplicate %v)", err, dup)
	}
	return j
}

func (f fixture) claim(t testing.TB, tenant string, n int, now time.Time, opts ...func(*domain.Claim)) []domain.Lease {
	t.Helper()
	c := domain.Claim{TenantID: tenant, WorkerID: "w1", Max: n, LeaseFor: 30 * time.Second, Now: now}
	for _, o := range opts {
		o(&c)
	}
	leases, _, err := f.st.Claim(t.Context(), c)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return leases
}

func (f fixture) get(t testing.TB, tenant, id string) domain.Job {
	t.Helper()
	j, err := f.st.Get(t.Context(), tenant, id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return j
}

func ref(l domain.Lease) domain.LeaseRef {
	return domain.LeaseRef{TenantID: l.Job.TenantID, JobID: l.Job.ID, WorkerID: l.Job.WorkerID, Token: l.Token}
}

func wantConflict(t testing.TB, err error, current domain.Job, status domain.Status) {
	t.Helper()
	if !errors.Is(err, domain.ErrConflict) || current.Status != status {
		t.Fatalf("got %v with the job %s; want ErrConflict with the job %s", err, current.Status, status)
	}
}

// outboxRows lists the outbox events as topic/key/tenant strings.
func (f fixture) outboxRows(t testing.TB) []string {
	t.Helper()
	rows, err := f.owner.QueryContext(t.Context(), "SELECT topic, event_key, tenant_id, payload FROM outbox ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var topic, key, tenant string
		var payload []byte
		if err := rows.Scan(&topic, &key, &tenant, &payload); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %s %s", topic, key, tenant, payload))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func ids(leases []domain.Lease) []string {
	out := make([]string, len(leases))
	for i, l := range leases {
		out[i] = l.Job.ID
	}
	return out
}

// cancel cancels one job as CancelJob does, by a Repair.
func (f fixture) cancel(ctx context.Context, tenant, id string, now time.Time) (domain.Job, error) {
	res, err := f.st.Repair(ctx, domain.Repair{
		TenantID: tenant, Action: domain.ActionCancel, JobID: id, Limit: 1, Actor: "tester", Now: now,
	})
	return res.Job, err
}
