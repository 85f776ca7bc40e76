package store_test

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/store"
)

// Attacks on PostgreSQL's row-level security and grants, as the service's
// own role: another tenant's rows are invisible and cannot be written, and
// even a tenant's own entries, nodes and checkpoints cannot be changed or
// deleted (the log is append-only for the application).
func TestRLSAndAppendOnly(t *testing.T) {
	migrateURL, appURL := storetest.Postgres(t)
	owner := storetest.Open(t, migrateURL)
	if err := owner.Migrate(t.Context(), store.Migrations); err != nil {
		t.Fatal(err)
	}
	db := storetest.Open(t, appURL)
	st := store.New(db)
	ts := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, tenant := range []string{"acme", "globex"} {
		err := st.Append(t.Context(), []string{tenant}, nil, func(tenant string, h domain.Head) (domain.Batch, error) {
			e, err := ledger.Link(nil, ledger.Entry{TenantID: tenant, Seq: 1, TS: ts, EventType: "x", Severity: "low", Details: "{}"})
			if err != nil {
				return domain.Batch{}, err
			}
			leaf, _ := ledger.DecodeHash(e.Hash)
			nodes, _, _, err := ledger.Append(0, nil, [][]byte{leaf})
			return domain.Batch{Entries: []ledger.Entry{e}, Nodes: nodes, Checkpoint: []byte("note")}, err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, tenant := range []string{"acme", "globex"} {
		err := st.UpdateVerified(t.Context(), tenant, func(cur domain.VerifiedState, _ bool) (domain.VerifiedState, bool) {
			cur.FailedSeq, cur.FailedReason = 1, "test"
			return cur, true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	storetest.RLSRefusesWrites(t, db, "acme", map[string]string{
		"foreign verified state": `INSERT INTO audit_verified (tenant_id, size, root, last_hash, last_ts, tree_range, verified_at)
			VALUES ('initech', 0, 'x', 'genesis', now(), '', now())`,
		"foreign entry": `INSERT INTO audit_entries (tenant_id, seq, ts, event_type, user_name, action, resource, details, severity, prev_hash, hash)
			VALUES ('globex', 2, now(), 'x', '', '', '', '{}', 'low', 'h', 'h')`,
		"foreign node":       "INSERT INTO audit_nodes (tenant_id, level, idx, hash) VALUES ('globex', 0, 1, 'x')",
		"foreign checkpoint": "INSERT INTO audit_checkpoints (tenant_id, size, note) VALUES ('globex', 2, 'n')",
		"foreign secret":     "INSERT INTO webhook_secrets (tenant_id, secret_id, value, created_at) VALUES ('globex', 's', 'v', now())",
		"foreign endpoint":   "INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, secret, created_at) VALUES ('globex', 'e', 'http://x', 's', now())",
		"move head":          "UPDATE audit_heads SET tenant_id = 'globex' WHERE tenant_id = 'acme'",
		"foreign retention":  "INSERT INTO audit_retention (tenant_id, max_age_s) VALUES ('globex', 1)",
	})
	storetest.RLSHidesForeignRows(t, db, "acme", []string{
		"UPDATE audit_heads SET size = 0 WHERE tenant_id = 'globex'",
		"UPDATE webhook_secrets SET revoked_at = now() WHERE tenant_id = 'globex'",
		"UPDATE webhook_endpoints SET deleted_at = now() WHERE tenant_id = 'globex'",
		"DELETE FROM claimed_keys WHERE tenant_id = 'globex'",
		"UPDATE audit_verified SET failed_seq = 0 WHERE tenant_id = 'globex'",
		"UPDATE audit_retention SET max_age_s = 1 WHERE tenant_id = 'globex'",
	})
	storetest.RLSAllTenantsReadCannotWrite(t, db, "UPDATE audit_heads SET size = 0")
	// Not even its own history: no UPDATE or DELETE grant on the log.
	for _, q := range []string{
		"UPDATE audit_entries SET user_name = 'mallory' WHERE tenant_id = 'acme'",
		"DELETE FROM audit_entries WHERE tenant_id = 'acme'",
		"UPDATE audit_nodes SET hash = 'x' WHERE tenant_id = 'acme'",
		"DELETE FROM audit_checkpoints WHERE tenant_id = 'acme'",
		"DELETE FROM audit_retention WHERE tenant_id = 'acme'",
		// Retention's deletion function: not for another tenant, and not
		// for its own entries without a retention cut recorded (below).
		"SELECT audit_cut('globex', 1, '{}', '{}')",
		"SELECT audit_erase_cut('globex', 1, '{}', '{}')",
	} {
		err := db.InTenantTx(t.Context(), "acme", func(tx *sql.Tx) error {
			_, err := tx.ExecContext(t.Context(), q)
			return err
		})
		if code := storetest.PGCode(err); code != "42501" {
			t.Errorf("%s: %v (SQLSTATE %q), want permission denied (42501)", q, err, code)
		}
	}
	// An erasure's cut needs a recorded cut and an erasure tombstone after
	// it (acme's one entry is not one); nothing is deleted.
	err := db.InTenantTx(t.Context(), "acme", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(t.Context(), "INSERT INTO audit_retention (tenant_id, max_age_s, cut_size) VALUES ('acme', 0, 1)"); err != nil {
			return err
		}
		_, err := tx.ExecContext(t.Context(), "SELECT audit_erase_cut('acme', 1, '{}', '{}')")
		return err
	})
	if code := storetest.PGCode(err); code != "P0001" || !strings.Contains(err.Error(), "no erasure tombstone") {
		t.Errorf("audit_erase_cut without a tombstone: %v (SQLSTATE %q), want raise_exception (P0001)", err, code)
	}
	// A cut the tenant's retention did not record, or of entries younger
	// than it, is refused; nothing is deleted.
	for _, q := range []string{
		"SELECT audit_cut('acme', 1, '{}', '{}')",
		"INSERT INTO audit_retention (tenant_id, max_age_s, cut_size) VALUES ('acme', 315360000, 1)",
	} {
		err := db.InTenantTx(t.Context(), "acme", func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(t.Context(), q); err != nil {
				return err
			}
			_, err := tx.ExecContext(t.Context(), "SELECT audit_cut('acme', 1, '{}', '{}')")
			return err
		})
		if code := storetest.PGCode(err); code != "P0001" {
			t.Errorf("%s, then audit_cut: %v (SQLSTATE %q), want raise_exception (P0001)", q, err, code)
		}
	}
	var seen int
	err = db.InTenantReadTx(t.Context(), "acme", func(tx *sql.Tx) error {
		// No WHERE: row-level security alone hides globex's rows.
		return tx.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM audit_entries").Scan(&seen)
	})
	if err != nil || seen != 1 {
		t.Fatalf("acme sees %d entries (%v), want its own 1", seen, err)
	}
}
