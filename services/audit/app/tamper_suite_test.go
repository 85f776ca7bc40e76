package app_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/audit/app"
)

// tamperLog is a tenant's log of 30 entries, verified, before tampering.
type tamperLog struct {
	tenant     string
	ctx, admin context.Context
	// held is the signed checkpoint a client kept before the tampering
	// (GetCheckpoint), vkey the log's verifier key.
	held, vkey string
}

// tamperKind is one kind of tampering of the suite.
type tamperKind struct {
	name     string
	rollback bool // the log is made for a rollback (rollbackLog)
	tamper   func(t *testing.T, s stack, l tamperLog)
	// seq is the first bad entry the scrubber and verify=full name, and
	// reason what their reason says.
	seq    uint64
	reason string
	// A plain read of limit entries after offset shows the tampering (or
	// its page check uses the tampered node), and names pageSeq.
	offset  int64
	limit   int32
	pageSeq uint64
	// headClean: entries 1 to 10 are the page that does not show the
	// tampering, not 21 to 30 (clean).
	headClean bool
	// export is what audit-verify checks (the whole log when zero), and
	// exportWant what it prints.
	export     *auditv1.ExportLogRequest
	exportWant string
}

// clean is the offset of a page of ten entries that does not show k.
func (k tamperKind) clean() int64 {
	if k.headClean {
		return 0
	}
	return 20
}

// The kinds: an edited old entry, a deleted entry, a swapped pair, an
// edited Merkle node, a database restored from an older copy.
var tamperKinds = []tamperKind{
	{
		name: "edited-entry",
		tamper: func(t *testing.T, s stack, l tamperLog) {
			exec(t, s, l.tenant, "UPDATE audit_entries SET user_name = 'mallory' WHERE tenant_id = '%s' AND seq = 5")
		},
		seq: 5, reason: "hash mismatch", offset: 4, limit: 2, pageSeq: 5,
		exportWant: "INVALID: entry 5: hash mismatch",
	},
	{
		name: "deleted-entry",
		tamper: func(t *testing.T, s stack, l tamperLog) {
			exec(t, s, l.tenant, "DELETE FROM audit_entries WHERE tenant_id = '%s' AND seq = 4")
		},
		seq: 4, reason: "missing entry", offset: 3, limit: 2, pageSeq: 4,
		exportWant: "INVALID: entry 4: missing entry",
	},
	{
		name:   "swapped-pair",
		tamper: func(t *testing.T, s stack, l tamperLog) { exec(t, s, l.tenant, swap(3, 4)...) },
		seq:    3, reason: "hash mismatch", offset: 2, limit: 2, pageSeq: 3,
		exportWant: "INVALID: entry 3: hash mismatch",
	},
	{
		// Node (4, 0) covers entries 1 to 16, the one stored node of the
		// log (the lower ones are derived from the entries); it takes the
		// hash of node (3, 2), the head's second frontier node (the head is
		// written with every append; the verified state only after a read,
		// in the background). The entries are untouched: what the
		// stored tree serves (proofs, page checks) is wrong.
		name: "edited-merkle-node",
		tamper: func(t *testing.T, s stack, l tamperLog) {
			exec(t, s, l.tenant, `UPDATE audit_nodes SET hash = (SELECT substr(h.tree_range, 33, 32) FROM audit_heads h
				WHERE h.tenant_id = '%s') WHERE tenant_id = '%s' AND level = 4 AND idx = 0`)
		},
		seq: 1, reason: "stored Merkle node (level 4, index 0) does not match the entries: the stored tree is damaged",
		// Entries 18 and 19, checked with entry 17: the tree left of them
		// is the stored node (4, 0). The page check names the range; the
		// full verification that follows a failed read names the node's
		// first entry.
		offset: 17, limit: 2, pageSeq: 1,
		// Every page after entry 16 folds (4, 0) in; 1 to 10 does not.
		headClean: true,
		// Entry 17's inclusion proof has node (4, 0) on its path.
		export:     &auditv1.ExportLogRequest{User: "user16@acme.test"},
		exportWant: "INVALID: entry 17: not in the tree",
	},
	{
		// The database is restored from the copy taken at 30 entries,
		// after 10 more were appended and seen.
		name: "rollback", rollback: true,
		tamper: func(t *testing.T, s stack, l tamperLog) { restoreCopy(t, s, l.tenant) },
		seq:    31, reason: "rolled back", pageSeq: 31,
		exportWant: "INVALID: entry 31: missing: the export ends at entry 30, but the log signed checkpoint",
	},
}

// newTamperLog makes tenant's log for kind k: 30 entries, verified (a
// rollback's also copied then, 10 more appended and verified). It keeps
// the checkpoint a client would hold.
func newTamperLog(t *testing.T, s stack, tenant string, k tamperKind) tamperLog {
	t.Helper()
	l := tamperLog{tenant: tenant, ctx: verifiedLog(t, s, tenant), admin: as(t, tenant, "admin")}
	if k.rollback {
		// The backup and the restore must not race the state the service
		// stores in the background after each read: the backup holds the
		// state at 30, and nothing writes after the restore.
		waitStoredState(t, s, tenant, 30)
		copyLog(t, s, tenant)
		appendN(t, s.c, l.ctx, 10, auditv1.Severity_SEVERITY_LOW)
		if v := readPage(t, s.c, l.ctx, 30, 10, ""); !v.GetValid() || v.GetVerifiedSize() != 40 {
			t.Fatalf("after 10 more: %v", v)
		}
		waitStoredState(t, s, tenant, 40)
	}
	cp, err := s.c.GetCheckpoint(l.ctx, &auditv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	l.held, l.vkey = cp.GetCheckpoint(), cp.GetVerifierKey()
	return l
}

// The tables a restored copy brings back: every row of a tenant's log.
var logTables = []string{"audit_entries", "audit_nodes", "audit_checkpoints", "audit_heads", "audit_verified"}

func copyName(table, tenant string) string {
	return "copy_" + table + "_" + strings.ReplaceAll(tenant, "-", "_")
}

// copyLog copies tenant's rows aside, as a backup would.
func copyLog(t *testing.T, s stack, tenant string) {
	t.Helper()
	for _, table := range logTables {
		exec(t, s, tenant, fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM %s WHERE tenant_id = '%%s'", copyName(table, tenant), table))
	}
}

// restoreCopy puts back tenant's rows as copyLog found them, behind the
// service's back, in one transaction.
func restoreCopy(t *testing.T, s stack, tenant string) {
	t.Helper()
	tx, err := s.owner.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, table := range logTables {
		for _, q := range []string{
			fmt.Sprintf("DELETE FROM %s WHERE tenant_id = '%s'", table, tenant),
			fmt.Sprintf("INSERT INTO %s SELECT * FROM %s", table, copyName(table, tenant)),
		} {
			if _, err := tx.ExecContext(t.Context(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// The tamper suite of issue 14: each kind of tampering, on both databases,
// is caught by the scrubber, by verify=full, by audit-verify on an export,
// and by a plain read whose page shows it, each naming the first bad entry
// (audit-verify names the entry of the export that fails).
func TestTamperSuite(t *testing.T) {
	bin := buildAuditVerify(t)
	backends(t, func(t *testing.T, s stack) {
		for _, k := range tamperKinds {
			t.Run(k.name, func(t *testing.T) {
				t.Run("verify=full", func(t *testing.T) {
					l := newTamperLog(t, s, k.name+"-full", k)
					k.tamper(t, s, l)
					// A plain read of a page without it does not see it (a
					// rolled-back log is consistent in itself).
					if v := readPage(t, s.c, l.ctx, k.clean(), 10, ""); !v.GetValid() || v.GetLastFullScrub() != nil {
						t.Fatalf("plain read of another page: %v", v)
					}
					v := readPage(t, s.c, l.admin, 20, 10, "full")
					wantFound(t, "verify=full", v, k.seq, k.reason)
					if v.GetMode() != "full" || v.GetLastFullScrub().GetValid() || v.GetLastFullScrub().GetFirstInvalidSeq() != k.seq {
						t.Fatalf("verify=full: %v", v)
					}
					if !k.rollback {
						return
					}
					// With the kept checkpoint, on a replica that never
					// saw the log (no witness): the held path.
					l = newTamperLog(t, s, k.name+"-full-held", k)
					k.tamper(t, s, l)
					res, err := freshReplica(t, s).GetChain(l.admin, &auditv1.GetChainRequest{Verify: "full", Checkpoint: l.held})
					if err != nil {
						t.Fatal(err)
					}
					wantFound(t, "verify=full with the kept checkpoint", res.GetVerification(), k.seq, k.reason)
				})
				t.Run("audit-verify", func(t *testing.T) {
					l := newTamperLog(t, s, k.name+"-export", k)
					req := k.export
					if req == nil {
						req = &auditv1.ExportLogRequest{}
					}
					if out, code := runAuditVerify(t, bin, exportFile(t, s, l, req), l.vkey); code != 0 || !strings.Contains(out, "OK: ") {
						t.Fatalf("before tampering: exit %d\n%s", code, out)
					}
					k.tamper(t, s, l)
					file := exportFile(t, s, l, req)
					var args []string
					if k.rollback {
						// Alone, the export of the restored copy is valid;
						// the checkpoint kept before shows the rollback.
						if out, code := runAuditVerify(t, bin, file, l.vkey); code != 0 || !strings.Contains(out, "OK: 30 entries") {
							t.Fatalf("the restored copy's export alone: exit %d\n%s", code, out)
						}
						held := filepath.Join(t.TempDir(), "held.txt")
						if err := os.WriteFile(held, []byte(l.held), 0o600); err != nil {
							t.Fatal(err)
						}
						args = []string{"--checkpoint", held}
					}
					out, code := runAuditVerify(t, bin, file, l.vkey, args...)
					if code != 1 || !strings.Contains(out, k.exportWant) || strings.Contains(out, "OK:") {
						t.Fatalf("after tampering: exit %d, want 1 and %q\n%s", code, k.exportWant, out)
					}
				})
				t.Run("plain read", func(t *testing.T) {
					l := newTamperLog(t, s, k.name+"-page", k)
					k.tamper(t, s, l)
					if v := readPage(t, s.c, l.ctx, k.clean(), 10, ""); !v.GetValid() {
						t.Fatalf("plain read of a page without it: %v", v)
					}
					req := &auditv1.GetChainRequest{Offset: k.offset, Limit: k.limit}
					if k.rollback {
						req.Checkpoint = l.held // the page is the end: held by the client
					}
					res, err := s.c.GetChain(l.ctx, req)
					if err != nil {
						t.Fatal(err)
					}
					wantFound(t, "plain read of the page", res.GetVerification(), k.pageSeq, "")
				})
			})
		}
		// One scrubber for all the kinds: it verifies each log, then finds
		// each tampering on its next pass. The rollback only the
		// scrubber's own memory of the log (its witness) can show.
		t.Run("scrubber", func(t *testing.T) {
			logs := make([]tamperLog, len(tamperKinds))
			for i, k := range tamperKinds {
				logs[i] = newTamperLog(t, s, k.name+"-scrub", k)
			}
			scrub(t, s)
			for _, l := range logs {
				waitFor(t, s.c, l.ctx, func(v *auditv1.Verification) bool {
					return v.GetValid() && v.GetLastFullScrub().GetValid()
				})
			}
			for i, k := range tamperKinds {
				k.tamper(t, s, logs[i])
			}
			for i, k := range tamperKinds {
				t.Run(k.name, func(t *testing.T) {
					v := waitFor(t, s.c, logs[i].ctx, func(v *auditv1.Verification) bool {
						return v.GetLastFullScrub().GetFirstInvalidSeq() == k.seq
					})
					wantFound(t, "after the scrubber", v, k.seq, k.reason)
					if f := v.GetLastFullScrub(); f.GetValid() || !strings.Contains(f.GetReason(), k.reason) {
						t.Fatalf("the scrubber's result: %v", f)
					}
				})
			}
		})
	})
}

// wantFound fails unless v is invalid at seq with a reason that contains
// reason.
func wantFound(t *testing.T, what string, v *auditv1.Verification, seq uint64, reason string) {
	t.Helper()
	if v.GetValid() || v.GetFirstInvalidSeq() != seq || v.GetReason() == "" || !strings.Contains(v.GetReason(), reason) {
		t.Fatalf("%s: %v, want invalid at %d (%q)", what, v, seq, reason)
	}
}

// freshReplica starts another replica on s's database, without a scrubber.
func freshReplica(t *testing.T, s stack) auditv1.AuditServiceClient {
	t.Helper()
	opt := s.opt
	opt.Args = append(append([]string(nil), s.opt.Args...), "--scrub-interval=0")
	return auditv1.NewAuditServiceClient(servicetest.Start(t, app.Spec(), opt))
}

// exportFile writes the export req of l's log to a file.
func exportFile(t *testing.T, s stack, l tamperLog, req *auditv1.ExportLogRequest) string {
	t.Helper()
	exp, err := exportOf(t, s.c, l.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), l.tenant+".jsonl")
	if err := os.WriteFile(file, exp, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// buildAuditVerify builds cmd/audit-verify, the binary a customer runs.
func buildAuditVerify(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "audit-verify")
	out, err := osexec.Command("go", "build", "-o", bin, "../cmd/audit-verify").CombinedOutput()
	if err != nil {
		t.Fatalf("go build audit-verify: %v\n%s", err, out)
	}
	return bin
}

// runAuditVerify runs the binary on file with the verifier key, and returns
// its stdout and exit status.
func runAuditVerify(t *testing.T, bin, file, vkey string, args ...string) (string, int) {
	t.Helper()
	cmd := osexec.Command(bin, append(append([]string{"--key", vkey}, args...), file)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *osexec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatalf("audit-verify: %v\n%s", err, stderr.String())
	}
	return string(out), 0
}
