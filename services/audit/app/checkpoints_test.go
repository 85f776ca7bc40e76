package app_test

import (
	"encoding/hex"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
)

// ListCheckpoints returns every checkpoint issued for the caller's log,
// signed, from a size on, a page at a time; any two of them are proved
// consistent. Another tenant's are refused, except to a platform admin.
func TestListCheckpoints(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		acme := as(t, "acme", "user")
		appendN(t, s.c, acme, 4, auditv1.Severity_SEVERITY_LOW)
		appendN(t, s.c, as(t, "globex", "user"), 1, auditv1.Severity_SEVERITY_LOW)

		res, err := s.c.ListCheckpoints(acme, &auditv1.ListCheckpointsRequest{From: 2, PageSize: 2})
		if err != nil || len(res.GetCheckpoints()) != 2 || res.GetNextPageToken() == "" {
			t.Fatalf("first page: %v, %v", res, err)
		}
		v, err := note.NewVerifier(res.GetVerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		cps := res.GetCheckpoints()
		next, err := s.c.ListCheckpoints(acme, &auditv1.ListCheckpointsRequest{From: 2, PageSize: 2, PageToken: res.GetNextPageToken()})
		if err != nil || len(next.GetCheckpoints()) != 1 || next.GetNextPageToken() != "" {
			t.Fatalf("second page: %v, %v", next, err)
		}
		cps = append(cps, next.GetCheckpoints()...)
		// A page that holds the last checkpoint gives no token to an empty one.
		if all, err := s.c.ListCheckpoints(acme, &auditv1.ListCheckpointsRequest{From: 2, PageSize: 3}); err != nil ||
			len(all.GetCheckpoints()) != 3 || all.GetNextPageToken() != "" {
			t.Fatalf("the whole list in one page: %v, %v", all, err)
		}
		for i, cp := range cps {
			if cp.GetTreeSize() != uint64(i+2) || cp.GetIssueTime() == nil || len(cp.GetRootHash()) != 64 {
				t.Fatalf("checkpoint %d: %v", i, cp)
			}
			if _, err := note.Open([]byte(cp.GetCheckpoint()), note.VerifierList(v)); err != nil {
				t.Fatalf("checkpoint %d: %v", i, err)
			}
		}
		first, last := cps[0], cps[2]
		p, err := s.c.GetConsistencyProof(acme, &auditv1.GetConsistencyProofRequest{FromSize: first.GetTreeSize(), ToSize: last.GetTreeSize()})
		if err != nil {
			t.Fatal(err)
		}
		var hashes [][]byte
		for _, h := range p.GetHashes() {
			b, _ := hex.DecodeString(h)
			hashes = append(hashes, b)
		}
		r1, _ := hex.DecodeString(first.GetRootHash())
		r2, _ := hex.DecodeString(last.GetRootHash())
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, first.GetTreeSize(), last.GetTreeSize(), hashes, r1, r2); err != nil {
			t.Fatalf("listed checkpoints are not consistent: %v", err)
		}

		_, err = s.c.ListCheckpoints(metadata.AppendToOutgoingContext(acme, "x-tenant-id", "globex"), &auditv1.ListCheckpointsRequest{})
		wantErr(t, err, codes.PermissionDenied, "CROSS_TENANT_DENIED")
		admin := metadata.AppendToOutgoingContext(as(t, "default", "admin"), "x-tenant-id", "globex")
		g, err := s.c.ListCheckpoints(admin, &auditv1.ListCheckpointsRequest{})
		if err != nil || len(g.GetCheckpoints()) != 1 || g.GetCheckpoints()[0].GetTreeSize() != 1 {
			t.Fatalf("admin's cross-tenant read: %v, %v", g, err)
		}
		_, err = s.c.ListCheckpoints(acme, &auditv1.ListCheckpointsRequest{PageToken: "bogus"})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
	})
}
