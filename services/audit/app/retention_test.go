package app_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// retentionArgs: segments of 8 entries, a minimum of 1 s, and a scrubber
// pass (which applies retention) every second.
var retentionArgs = []string{"--retention-segment=8", "--retention-min=1s", "--scrub-interval=1s", "--scrub-chunk=5"}

// Setting retention is a platform admin's call, with a floor.
func TestRetentionPolicy(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		admin := as(t, "default", "admin")
		set := func(ctx context.Context, tenant string, age time.Duration) (*auditv1.SetRetentionResponse, error) {
			return s.c.SetRetention(ctx, &auditv1.SetRetentionRequest{TargetTenantId: tenant, MaxAge: durationpb.New(age)})
		}
		_, err := set(as(t, "acme", "admin"), "acme", time.Hour)
		wantErr(t, err, codes.PermissionDenied, "TENANT_NOT_ALLOWED")
		_, err = set(as(t, "default", "user"), "acme", time.Hour)
		wantErr(t, err, codes.PermissionDenied, "ROLE_REQUIRED")
		_, err = set(admin, "acme", 500*time.Millisecond)
		wantErr(t, err, codes.InvalidArgument, "RETENTION_INVALID")
		_, err = set(admin, "acme", -time.Hour)
		wantErr(t, err, codes.InvalidArgument, "RETENTION_INVALID")
		_, err = set(admin, "../acme", time.Hour)
		wantErr(t, err, codes.InvalidArgument, "RETENTION_INVALID")
		res, err := set(admin, "acme", 30*24*time.Hour)
		if err != nil || res.GetRetention().GetMaxAge().AsDuration() != 30*24*time.Hour || res.GetRetention().GetRetainedFromSeq() != 1 {
			t.Fatalf("set = %v, %v", res, err)
		}
		ctx := as(t, "acme", "user")
		appendN(t, s.c, ctx, 3, auditv1.Severity_SEVERITY_LOW)
		if r := chain(t, s.c, ctx).GetRetention(); r.GetMaxAge().AsDuration() != 30*24*time.Hour || r.GetRetainedFromSeq() != 1 || r.GetCutCheckpoint() != "" {
			t.Fatalf("chain's retention = %v", r)
		}
		if res, err := set(admin, "acme", 0); err != nil || res.GetRetention().GetMaxAge() != nil {
			t.Fatalf("off = %v, %v", res, err)
		}
	}, retentionArgs...)
}

// Old entries go in whole segments after a passing scrub; the frontier and
// a checkpoint signed at the cut are kept, so the rest still chains,
// verifies (incrementally, fully, offline) and proves.
func TestRetentionCut(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		admin, ctx, tadmin := as(t, "default", "admin"), as(t, "acme", "user"), as(t, "acme", "admin")
		setAge := func(age time.Duration) {
			t.Helper()
			if _, err := s.c.SetRetention(admin, &auditv1.SetRetentionRequest{TargetTenantId: "acme", MaxAge: durationpb.New(age)}); err != nil {
				t.Fatal(err)
			}
		}
		const age = 4 * time.Second
		setAge(age)
		old := appendN(t, s.c, ctx, 10, auditv1.Severity_SEVERITY_LOW)
		cp10, err := s.c.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{})
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, appendN(t, s.c, ctx, 10, auditv1.Severity_SEVERITY_LOW)...)
		early, err := s.c.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(age + 100*time.Millisecond)
		appendN(t, s.c, ctx, 5, auditv1.Severity_SEVERITY_LOW)

		// Entries 1-20 are older than the max age: the cut is at 16, the
		// last whole segment of 8 among them. Then retention is made long,
		// so entries 21-25 stay.
		var res *auditv1.GetChainResponse
		deadline := time.Now().Add(15 * time.Second)
		for {
			res, err = s.c.GetChain(ctx, &auditv1.GetChainRequest{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if res.GetRetention().GetRetainedFromSeq() == 17 {
				setAge(time.Hour)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no cut: %v", res.GetRetention())
			}
			time.Sleep(50 * time.Millisecond)
		}
		v := res.GetVerification()
		if !v.GetValid() || res.GetTotal() != 25 || len(res.GetEntries()) != 9 || res.GetEntries()[0].GetSeq() != 17 {
			t.Fatalf("after the cut: %v, total %d, %d entries", v, res.GetTotal(), len(res.GetEntries()))
		}
		cut := openCheckpoint(t, early.GetVerifierKey(), res.GetRetention().GetCutCheckpoint())
		if cut.Size != 16 || cut.Origin != ledger.Origin("acme") {
			t.Fatalf("cut checkpoint %+v", cut)
		}
		var rootAt16 []tlog.Hash
		for _, e := range old[:16] {
			leaf, _ := hex.DecodeString(e.GetHash())
			rootAt16 = append(rootAt16, tlog.RecordHash(leaf))
		}
		if r := rootOf(rootAt16); !bytes.Equal(cut.Root, r[:]) {
			t.Fatal("the cut checkpoint does not sign the root of entries 1 to 16")
		}

		// What remains in the database: entries 17 on, one frontier node
		// (16 = one subtree of level 4) inside the prefix, checkpoints from 16.
		var entries, prefixNodes, oldCPs int
		q := "SELECT (SELECT count(*) FROM audit_entries WHERE tenant_id = 'acme'), " +
			"(SELECT count(*) FROM audit_nodes WHERE tenant_id = 'acme' AND ((idx + 1) << level) <= 16), " +
			"(SELECT count(*) FROM audit_checkpoints WHERE tenant_id = 'acme' AND size < 16)"
		if err := s.owner.QueryRowContext(t.Context(), q).Scan(&entries, &prefixNodes, &oldCPs); err != nil {
			t.Fatal(err)
		}
		if entries != 9 || prefixNodes != 1 || oldCPs != 0 {
			t.Fatalf("after the cut: %d entries, %d nodes in the prefix, %d checkpoints before it", entries, prefixNodes, oldCPs)
		}

		// Appends go on; reads, full verification and the scrubber pass.
		appendN(t, s.c, ctx, 3, auditv1.Severity_SEVERITY_LOW)
		if v := readPage(t, s.c, ctx, 0, 5, ""); !v.GetValid() || v.GetEntries() != 28 {
			t.Fatalf("read after the cut: %v", v)
		}
		if v := readPage(t, s.c, tadmin, 20, 5, "full"); !v.GetValid() || v.GetMode() != "full" {
			t.Fatalf("verify=full after the cut: %v", v)
		}

		// Proofs of kept entries work; into the prefix they are refused.
		cp, err := s.c.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{})
		if err != nil || cp.GetTreeSize() != 28 {
			t.Fatalf("checkpoint = %v, %v", cp, err)
		}
		root := hashOf(t, cp.GetRootHash())
		p, err := s.c.GetInclusionProof(ctx, &auditv1.GetInclusionProofRequest{Seq: 17})
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := hex.DecodeString(old[16].GetHash())
		if err := tlog.CheckRecord(proofOf(t, p.GetHashes()), 28, root, 16, tlog.RecordHash(leaf)); err != nil {
			t.Errorf("inclusion of 17: %v", err)
		}
		_, err = s.c.GetInclusionProof(ctx, &auditv1.GetInclusionProofRequest{Seq: 3})
		wantErr(t, err, codes.FailedPrecondition, "ENTRY_NOT_RETAINED")
		c, err := s.c.GetConsistencyProof(ctx, &auditv1.GetConsistencyProofRequest{FromSize: 16})
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(tlog.TreeProof(proofOf(t, c.GetHashes())), 28, root, 16, tlog.Hash(cut.Root)); err != nil {
			t.Errorf("consistency 16 → 28: %v", err)
		}
		_, err = s.c.GetConsistencyProof(ctx, &auditv1.GetConsistencyProofRequest{FromSize: cp10.GetTreeSize()})
		wantErr(t, err, codes.FailedPrecondition, "ENTRY_NOT_RETAINED")
		_, err = s.c.GetChain(ctx, &auditv1.GetChainRequest{Limit: 1, Checkpoint: cp10.GetCheckpoint()})
		wantErr(t, err, codes.FailedPrecondition, "ENTRY_NOT_RETAINED")
		if v := readPageHeld(t, s.c, ctx, early.GetCheckpoint()); !v.GetValid() {
			t.Fatalf("read with a checkpoint after the cut: %v", v)
		}
		cps, err := s.c.ListCheckpoints(ctx, &auditv1.ListCheckpointsRequest{})
		if err != nil || len(cps.GetCheckpoints()) == 0 || cps.GetCheckpoints()[0].GetTreeSize() != 16 {
			t.Fatalf("checkpoints = %v, %v", cps, err)
		}

		// The export starts at the cut and verifies offline.
		exp, err := exportOf(t, s.c, ctx, &auditv1.ExportLogRequest{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ledger.VerifyExport(bytes.NewReader(exp), early.GetVerifierKey())
		if err != nil || !rep.Valid || rep.CutSize != 16 || rep.Entries != 12 || rep.Checkpoint.Size != 28 {
			t.Fatalf("export after the cut: %+v, %v\n%s", rep, err, exp)
		}
		// A forged frontier in the export is caught.
		lines := strings.SplitN(string(exp), "\n", 3)
		frontier := lines[1][strings.Index(lines[1], `"frontier":["`)+13:][:64]
		forged := strings.Replace(string(exp), frontier, strings.Repeat("0", 64), 1)
		if rep, err := ledger.VerifyExport(strings.NewReader(forged), early.GetVerifierKey()); err != nil || rep.Valid || rep.FirstBad != 17 {
			t.Fatalf("export with a forged frontier: %+v, %v", rep, err)
		}

		// A forged cut in the database is caught by the scrubber: the last
		// deleted entry's hash, which entry 17 links to; then the frontier.
		exec(t, s, "acme", "UPDATE audit_retention SET cut_last_hash = '"+strings.Repeat("0", 64)+"' WHERE tenant_id = '%s'")
		if v := waitFor(t, s.c, ctx, func(v *auditv1.Verification) bool { return !v.GetValid() }); v.GetFirstInvalidSeq() != 17 {
			t.Fatalf("scrub of a forged cut: %v", v)
		}
		exec(t, s, "acme", "UPDATE audit_retention SET cut_last_hash = '"+old[15].GetHash()+"' WHERE tenant_id = '%s'")
		waitFor(t, s.c, ctx, func(v *auditv1.Verification) bool { return v.GetValid() && v.GetLastFullScrub().GetValid() })
		forgedRange := "UPDATE audit_retention SET cut_range = (SELECT root FROM audit_verified WHERE tenant_id = '%s') WHERE tenant_id = '%s'"
		exec(t, s, "acme", forgedRange)
		if v := waitFor(t, s.c, ctx, func(v *auditv1.Verification) bool { return !v.GetValid() }); v.GetFirstInvalidSeq() != 17 ||
			!strings.Contains(v.GetReason(), "frontier") {
			t.Fatalf("scrub of a forged frontier: %v", v)
		}
	}, retentionArgs...)
}

func openCheckpoint(t *testing.T, vkey, signed string) ledger.Checkpoint {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.Open([]byte(signed), v)
	if err != nil {
		t.Fatalf("checkpoint %q: %v", signed, err)
	}
	return cp
}

func readPageHeld(t *testing.T, c auditv1.AuditServiceClient, ctx context.Context, held string) *auditv1.Verification {
	t.Helper()
	res, err := c.GetChain(ctx, &auditv1.GetChainRequest{Limit: 1, Checkpoint: held})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetVerification()
}
