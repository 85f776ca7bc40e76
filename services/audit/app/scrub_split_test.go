package app_test

import (
	"fmt"
	"strings"
	"testing"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
)

// An unthrottled scrub verifies the two halves of a log at once; whatever
// is tampered, and wherever, it names the same first bad entry with the
// same reason as a scrub in one lane, and it keeps the second lane's work
// only when the first lane reached exactly the state the second started
// from.
func TestScrubSplitMatchesOneLane(t *testing.T) {
	const n, chunk, mid = 60, 4, 28
	// RangeIDs(28): node (4, 0) over entries 1-16, the stored frontier the
	// second lane starts from, with (3, 2) over 17-24 and (2, 6) over 25-28,
	// derived from the entries (below ledger.StoredLevel).
	cases := []struct {
		name  string
		stmts []string
		kept  bool // the second lane's work stands
		one   bool // too damaged to split: one lane
	}{
		{name: "untouched", kept: true},
		{name: "edited-first-half", stmts: []string{edit(7)}},
		{name: "edited-mid-entry", stmts: []string{edit(mid)}},
		{name: "edited-after-mid", stmts: []string{edit(mid + 1)}},
		{name: "edited-second-half", stmts: []string{edit(45)}},
		{name: "deleted-second-half", stmts: []string{"DELETE FROM audit_entries WHERE tenant_id = '%s' AND seq = 50"}},
		{name: "swapped-across-mid", stmts: swap(mid, mid+1)},
		{name: "damaged-frontier-node", stmts: []string{damage(4, 0, 1)}},
		{name: "damaged-second-half-node", stmts: []string{damage(4, 2, 1)}},
		{name: "missing-frontier-node", stmts: []string{"DELETE FROM audit_nodes WHERE tenant_id = '%s' AND level = 4 AND idx = 0"}, one: true},
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			svc, c, ownerURL := startScrubService(t, backend)
			owner := storetest.Open(t, ownerURL)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					tenant := "split-" + tc.name
					ctx := as(t, tenant, "user")
					for range n / 12 { // checkpoints at 12, 24, 36…: the middle falls between two
						var batch []*auditv1.NewEntry
						for i := range 12 {
							batch = append(batch, &auditv1.NewEntry{EventType: "user.login",
								User: fmt.Sprintf("user%d@acme.test", i), Action: "login", Resource: "console",
								Severity: auditv1.Severity_SEVERITY_LOW})
						}
						if _, err := c.AppendEntries(ctx, &auditv1.AppendEntriesRequest{Entries: batch}); err != nil {
							t.Fatal(err)
						}
					}
					for _, q := range tc.stmts {
						if _, err := owner.ExecContext(t.Context(), strings.ReplaceAll(q, "%s", tenant)); err != nil {
							t.Fatalf("%s: %v", q, err)
						}
					}
					one, err := svc.ScrubTenant(t.Context(), tenant, domain.ScrubConfig{CPUShare: 1, Chunk: chunk, Lanes: 1,
						Split: func(string, uint64, bool) { t.Error("one lane split the log") }})
					if err != nil {
						t.Fatal(err)
					}
					var at uint64
					var kept, split bool
					two, err := svc.ScrubTenant(t.Context(), tenant, domain.ScrubConfig{CPUShare: 1, Chunk: chunk, Lanes: 2,
						Split: func(_ string, a uint64, k bool) { at, kept, split = a, k, true }})
					if err != nil {
						t.Fatal(err)
					}
					if split == tc.one || (split && (at != mid || kept != tc.kept)) {
						t.Fatalf("split %v at %d, kept %v; want a split (%v) at %d, kept %v", split, at, kept, !tc.one, mid, tc.kept)
					}
					if one.Valid != (tc.stmts == nil) || two.Valid != one.Valid || two.FirstBad != one.FirstBad ||
						two.Reason != one.Reason || two.Entries != one.Entries {
						t.Fatalf("two lanes: %+v\none lane: %+v", two, one)
					}
				})
			}
		})
	}
}

// edit changes entry seq of the tenant %s.
func edit(seq int) string {
	return fmt.Sprintf("UPDATE audit_entries SET user_name = 'mallory' WHERE tenant_id = '%%s' AND seq = %d", seq)
}

// damage gives node (level, idx) of the tenant %s the hash of its
// neighbour (level, other).
func damage(level, idx, other int) string {
	return fmt.Sprintf(`UPDATE audit_nodes SET hash = (SELECT n.hash FROM audit_nodes n
		WHERE n.tenant_id = '%%s' AND n.level = %d AND n.idx = %d) WHERE tenant_id = '%%s' AND level = %d AND idx = %d`,
		level, other, level, idx)
}
