package app_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/audit/app"
)

func readPage(t *testing.T, c auditv1.AuditServiceClient, ctx context.Context, offset int64, limit int32, verify string) *auditv1.Verification {
	t.Helper()
	res, err := c.GetChain(ctx, &auditv1.GetChainRequest{Offset: offset, Limit: limit, Verify: verify})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetVerification()
}

// verifiedLog appends 30 entries to tenant's log and reads a page of it
// (which verifies it all and keeps the state); it returns a user of tenant.
func verifiedLog(t *testing.T, s stack, tenant string) context.Context {
	t.Helper()
	ctx := as(t, tenant, "user")
	appendN(t, s.c, ctx, 30, auditv1.Severity_SEVERITY_LOW)
	if v := readPage(t, s.c, ctx, 20, 10, ""); !v.GetValid() || v.GetVerifiedSize() != 30 {
		t.Fatalf("before tampering: %v", v)
	}
	return ctx
}

// swap is the statements that swap entries a and b of the tenant %s (its
// own undoing).
func swap(a, b uint64) []string {
	return []string{
		fmt.Sprintf("UPDATE audit_entries SET seq = 1000000 WHERE tenant_id = '%%s' AND seq = %d", a),
		fmt.Sprintf("UPDATE audit_entries SET seq = %d WHERE tenant_id = '%%s' AND seq = %d", a, b),
		fmt.Sprintf("UPDATE audit_entries SET seq = %d WHERE tenant_id = '%%s' AND seq = 1000000", b),
	}
}

func exec(t *testing.T, s stack, tenant string, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		q = strings.ReplaceAll(q, "%s", tenant)
		if _, err := s.owner.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// A read verifies what was appended since the last verified state, not
// the whole log; a read with nothing new writes nothing.
func TestIncrementalReads(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		ctx := as(t, "acme", "user")
		appendN(t, s.c, ctx, 12, auditv1.Severity_SEVERITY_LOW)
		first := readPage(t, s.c, ctx, 0, 10, "")
		if !first.GetValid() || first.GetMode() != "full" || first.GetVerifiedSize() != 12 || first.GetEntries() != 12 ||
			first.GetVerifiedAt() == nil || first.GetLastFullScrub() != nil {
			t.Fatalf("first read: %v", first)
		}
		appendN(t, s.c, ctx, 3, auditv1.Severity_SEVERITY_LOW)
		next := readPage(t, s.c, ctx, 5, 10, "")
		if !next.GetValid() || next.GetMode() != "incremental" || next.GetVerifiedSize() != 15 || next.GetEntries() != 15 ||
			!next.GetVerifiedAt().AsTime().After(first.GetVerifiedAt().AsTime()) {
			t.Fatalf("after appends: %v", next)
		}
		// Nothing new: the state is not rewritten.
		if again := readPage(t, s.c, ctx, 0, 10, ""); !again.GetValid() || !again.GetVerifiedAt().AsTime().Equal(next.GetVerifiedAt().AsTime()) {
			t.Fatalf("read again: %v, verified at %v", again, next.GetVerifiedAt().AsTime())
		}
		// The state is stored in the background, soon after the read.
		waitStoredState(t, s, "acme", 15)
	})
}

// waitStoredState waits until the verified state of tenant that the
// service stores in the background covers size entries.
func waitStoredState(t *testing.T, s stack, tenant string, size int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var got int64
		err := s.owner.QueryRowContext(t.Context(), "SELECT size FROM audit_verified WHERE tenant_id = '"+tenant+"'").Scan(&got)
		if err == nil && got == size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored state of %s: size %d, %v; want %d", tenant, got, err, size)
		}
	}
}

// A tampered entry a reader is shown is detected at that read, whichever
// page it is on, and from then on every read reports it.
func TestIncrementalReadDetectsThePage(t *testing.T) {
	cases := []struct {
		name   string
		tamper []string
		seq    uint64
	}{
		{"edit", []string{"UPDATE audit_entries SET user_name = 'mallory' WHERE tenant_id = '%s' AND seq = 25"}, 25},
		{"delete", []string{"DELETE FROM audit_entries WHERE tenant_id = '%s' AND seq = 25"}, 25},
		{"swap", swap(24, 25), 24},
		// The entry before the page: its hash is what the first one links to.
		{"edit the entry before the page", []string{"UPDATE audit_entries SET action = 'x' WHERE tenant_id = '%s' AND seq = 20"}, 20},
	}
	backends(t, func(t *testing.T, s stack) {
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				tenant := fmt.Sprintf("page-%d", i)
				ctx := verifiedLog(t, s, tenant)
				exec(t, s, tenant, c.tamper...)
				v := readPage(t, s.c, ctx, 20, 10, "")
				if v.GetValid() || v.GetFirstInvalidSeq() != c.seq || v.GetReason() == "" {
					t.Fatalf("page read after tampering: %v, want invalid at %d", v, c.seq)
				}
				// Sticky: a page that does not show it reports it too.
				if v := readPage(t, s.c, ctx, 0, 2, ""); v.GetValid() || v.GetFirstInvalidSeq() != c.seq {
					t.Fatalf("later read: %v, want invalid at %d", v, c.seq)
				}
			})
		}
		t.Run("rewrite and re-hash", func(t *testing.T) {
			tenant := "page-rehash"
			ctx := as(t, tenant, "user")
			appendN(t, s.c, ctx, 30, auditv1.Severity_SEVERITY_LOW)
			if forgeSuffix(t, s, ctx, tenant, 25) == 0 {
				t.Fatal("nothing forged")
			}
			if v := readPage(t, s.c, ctx, 20, 10, ""); v.GetValid() || v.GetFirstInvalidSeq() != 25 {
				t.Fatalf("after a re-hashed rewrite: %v, want invalid at 25", v)
			}
		})
	})
}

// An old entry no page shows is found by the scrubber and by verify=full;
// then every read reports it, until a full verification passes again.
func TestTamperOffThePage(t *testing.T) {
	cases := []struct {
		name    string
		tamper  []string
		restore []string
		seq     uint64
	}{
		{"edit", []string{"UPDATE audit_entries SET user_name = 'mallory' WHERE tenant_id = '%s' AND seq = 5"},
			[]string{"UPDATE audit_entries SET user_name = 'user4@acme.test' WHERE tenant_id = '%s' AND seq = 5"}, 5},
		{"delete", []string{"DELETE FROM audit_entries WHERE tenant_id = '%s' AND seq = 4"}, nil, 4},
		{"swap", swap(3, 4), swap(3, 4), 3},
	}
	backends(t, func(t *testing.T, s stack) {
		for i, c := range cases {
			t.Run(c.name+"/verify=full", func(t *testing.T) {
				tenant := fmt.Sprintf("old-%d", i)
				ctx, admin := verifiedLog(t, s, tenant), as(t, tenant, "admin")
				exec(t, s, tenant, c.tamper...)
				// Not on the page, not appended since: a read does not see it.
				if v := readPage(t, s.c, ctx, 20, 10, ""); !v.GetValid() || v.GetMode() != "incremental" {
					t.Fatalf("a page without it: %v", v)
				}
				v := readPage(t, s.c, admin, 20, 10, "full")
				if v.GetValid() || v.GetFirstInvalidSeq() != c.seq || v.GetMode() != "full" ||
					v.GetLastFullScrub().GetValid() || v.GetLastFullScrub().GetFirstInvalidSeq() != c.seq {
					t.Fatalf("verify=full: %v, want invalid at %d", v, c.seq)
				}
				v = readPage(t, s.c, ctx, 20, 10, "")
				if v.GetValid() || v.GetFirstInvalidSeq() != c.seq || v.GetLastFullScrub().GetFirstInvalidSeq() != c.seq {
					t.Fatalf("plain read after verify=full: %v, want invalid at %d (sticky)", v, c.seq)
				}
			})
			t.Run(c.name+"/scrubber", func(t *testing.T) {
				tenant := fmt.Sprintf("scrub-%d", i)
				ctx := verifiedLog(t, s, tenant)
				exec(t, s, tenant, c.tamper...)
				scrub(t, s) // a pass runs when it starts
				v := waitFor(t, s.c, ctx, func(v *auditv1.Verification) bool { return !v.GetValid() })
				if v.GetFirstInvalidSeq() != c.seq || v.GetLastFullScrub().GetValid() || v.GetLastFullScrub().GetAt() == nil {
					t.Fatalf("after the scrubber: %v, want invalid at %d", v, c.seq)
				}
				if c.restore == nil {
					return
				}
				// Sticky until a full verification passes: put the log back
				// and the next pass clears it.
				exec(t, s, tenant, c.restore...)
				waitFor(t, s.c, ctx, func(v *auditv1.Verification) bool { return v.GetValid() && v.GetLastFullScrub().GetValid() })
			})
		}
	})
}

// scrub starts another replica on s's database whose scrubber makes a pass
// at once, and every second after, the tenants spread over the second,
// seven entries per snapshot.
func scrub(t *testing.T, s stack) {
	t.Helper()
	opt := s.opt
	opt.Args = append(slices.Clone(s.opt.Args), "--scrub-interval=1s", "--scrub-cpu-share=0.5",
		"--scrub-chunk=7") // chunk boundaries inside the 30 entries
	servicetest.Start(t, app.Spec(), opt)
}

// waitFor reads the log until ok holds of its verification (10 s at most).
func waitFor(t *testing.T, c auditv1.AuditServiceClient, ctx context.Context, ok func(*auditv1.Verification) bool) *auditv1.Verification {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := readPage(t, c, ctx, 20, 10, "")
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %v", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// verify=full is for admins, once a minute per tenant.
func TestFullVerifyPolicy(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		appendN(t, s.c, as(t, "acme", "user"), 3, auditv1.Severity_SEVERITY_LOW)
		_, err := s.c.GetChain(as(t, "acme", "user"), &auditv1.GetChainRequest{Verify: "full"})
		wantErr(t, err, codes.PermissionDenied, "FULL_VERIFY_NOT_ALLOWED")
		_, err = s.c.GetChain(as(t, "acme", "user"), &auditv1.GetChainRequest{Verify: "everything"})
		wantErr(t, err, codes.InvalidArgument, "VERIFY_MODE_INVALID")
		if v := readPage(t, s.c, as(t, "acme", "admin"), 0, 10, "full"); !v.GetValid() || v.GetMode() != "full" ||
			!v.GetLastFullScrub().GetValid() || v.GetEntries() != 3 {
			t.Fatalf("verify=full: %v", v)
		}
		_, err = s.c.GetChain(as(t, "acme", "admin"), &auditv1.GetChainRequest{Verify: "full"})
		wantErr(t, err, codes.ResourceExhausted, "FULL_VERIFY_RATE_LIMITED")
		// A platform admin reading acme shares acme's turn.
		platform := metadata.AppendToOutgoingContext(as(t, "default", "admin"), "x-tenant-id", "acme")
		_, err = s.c.GetChain(platform, &auditv1.GetChainRequest{Verify: "full"})
		wantErr(t, err, codes.ResourceExhausted, "FULL_VERIFY_RATE_LIMITED")
		// Another tenant has its own.
		appendN(t, s.c, as(t, "globex", "user"), 1, auditv1.Severity_SEVERITY_LOW)
		if v := readPage(t, s.c, metadata.AppendToOutgoingContext(as(t, "default", "admin"), "x-tenant-id", "globex"), 0, 10, "full"); !v.GetValid() || v.GetMode() != "full" {
			t.Fatalf("platform admin verify=full of globex: %v", v)
		}
		// The plain read afterwards shows the full verification's result.
		if v := readPage(t, s.c, as(t, "acme", "user"), 0, 10, ""); !v.GetValid() || v.GetLastFullScrub().GetAt() == nil {
			t.Fatalf("read after verify=full: %v", v)
		}
	})
}

// A scrub chunk that ends between two signed checkpoints (appends of five
// entries, chunks of seven) leaves the rest to the next chunk: the log
// stays valid.
func TestScrubChunksBetweenCheckpoints(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		ctx := as(t, "batched", "user")
		for b := range 6 {
			var batch []*auditv1.NewEntry
			for i := range 5 {
				batch = append(batch, &auditv1.NewEntry{EventType: "batch", User: fmt.Sprintf("u%d", b*5+i), Severity: auditv1.Severity_SEVERITY_LOW})
			}
			if _, err := s.c.AppendEntries(ctx, &auditv1.AppendEntriesRequest{Entries: batch}); err != nil {
				t.Fatal(err)
			}
		}
		scrub(t, s)
		v := waitFor(t, s.c, ctx, func(v *auditv1.Verification) bool { return v.GetLastFullScrub() != nil })
		if !v.GetValid() || !v.GetLastFullScrub().GetValid() {
			t.Fatalf("after a scrub in chunks of 7 over checkpoints every 5: %v", v)
		}
	})
}
