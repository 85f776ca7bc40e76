package store_test

import (
	"io/fs"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
	"github.com/echopilot/echopilot/services/queue/internal/store"
)

// migrationsBefore is fsys without the migration named last and those
// after it.
func migrationsBefore(t *testing.T, fsys fs.FS, last string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() >= last {
			continue
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = &fstest.MapFile{Data: b}
	}
	return out
}

// TestAttemptsMoveIntoRows: the migration moving job_attempts into the
// jobs' rows keeps every attempt a job had, in order, with its fields.
func TestAttemptsMoveIntoRows(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			migrateURL, appURL := b.NewDB(t)
			owner := storetest.Open(t, migrateURL)
			old := store.Migrations
			old.SQLite = migrationsBefore(t, old.SQLite, "00006_attempts_in_row.sql")
			old.Postgres = migrationsBefore(t, old.Postgres, "00008_attempts_in_row.sql")
			for _, m := range []pstore.Migrations{old, outbox.Migrations} {
				if err := owner.Migrate(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			db := storetest.Open(t, appURL)
			st := store.New(db)
			t0 := time.Now().UTC().Truncate(time.Millisecond)
			j := fixture{st: st, db: db, owner: owner, t0: t0}.enqueue(t, "acme")
			// Three leases as the old schema held them: two ended, one running.
			r := owner.Rebind
			if _, err := owner.ExecContext(ctx, r(`UPDATE jobs SET state = 'processing', lease_token = 3, attempts = 3,
				worker_id = 'w3', last_error = 'boom' WHERE id = ?`), j.ID); err != nil {
				t.Fatal(err)
			}
			at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
			for _, a := range []struct {
				token          int
				worker         string
				start          time.Time
				end            any
				outcome, error string
			}{
				{1, "w1", at(1), at(2), "failed", "boom"},
				{2, "w2", at(3), at(4), "lease_expired", "lease expired"},
				{3, "w3", at(5), nil, "running", ""},
			} {
				if _, err := owner.ExecContext(ctx, r(`INSERT INTO job_attempts
					(tenant_id, job_id, lease_token, attempt, worker_id, started_at, ended_at, outcome, error)
					VALUES ('acme', ?, ?, ?, ?, ?, ?, ?, ?)`),
					j.ID, a.token, a.token, a.worker, a.start, a.end, a.outcome, a.error); err != nil {
					t.Fatal(err)
				}
			}
			if err := owner.Migrate(ctx, store.Migrations); err != nil {
				t.Fatal(err)
			}
			as, err := st.ListAttempts(ctx, domain.AttemptFilter{TenantID: "acme", JobID: j.ID, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"1:w1:failed:boom", "2:w2:lease_expired:lease expired", "3:w3:running:"}
			if got := outcomes(as); !slices.Equal(got, want) {
				t.Fatalf("attempts after the migration = %v, want %v", got, want)
			}
			for i, a := range as {
				if !a.StartedAt.Equal(at(2*i+1)) || (i < 2 && !a.EndedAt.Equal(at(2*i+2))) || (i == 2 && !a.EndedAt.IsZero()) {
					t.Errorf("attempt %d ran %v to %v", i+1, a.StartedAt, a.EndedAt)
				}
			}
			var tables int
			if err := owner.QueryRowContext(ctx, "SELECT count(*) FROM "+catalog(b.Name)+" WHERE "+tableName(b.Name)+" = 'job_attempts'").Scan(&tables); err != nil || tables != 0 {
				t.Errorf("job_attempts still there (%d, %v)", tables, err)
			}
		})
	}
}

func catalog(backend string) string {
	if backend == "postgres" {
		return "pg_tables"
	}
	return "sqlite_master"
}

func tableName(backend string) string {
	if backend == "postgres" {
		return "tablename"
	}
	return "name"
}
