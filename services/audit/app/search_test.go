package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

var searchSeverities = []auditv1.Severity{auditv1.Severity_SEVERITY_LOW, auditv1.Severity_SEVERITY_MEDIUM, auditv1.Severity_SEVERITY_HIGH, auditv1.Severity_SEVERITY_CRITICAL}

// searchLog appends n entries to ctx's tenant: entry i (from 0) has event
// type "type<i%3>", user "user<i%4>", resource "res<i%5>" and severity
// searchSeverities[i%4]. One append each: each has its own time and
// checkpoint. It returns them.
func searchLog(t *testing.T, c auditv1.AuditServiceClient, ctx context.Context, n int) []*auditv1.Entry {
	t.Helper()
	var out []*auditv1.Entry
	for i := range n {
		res, err := c.AppendEntries(ctx, &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{
			EventType: fmt.Sprintf("type%d", i%3), User: fmt.Sprintf("user%d", i%4), Action: "act",
			Resource: fmt.Sprintf("res%d", i%5), Severity: searchSeverities[i%4]}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.GetEntries()...)
	}
	return out
}

// searchAll pages through req with page tokens, checking each page's
// verification, and returns the seqs read.
func searchAll(t *testing.T, c auditv1.AuditServiceClient, ctx context.Context, req *auditv1.GetChainRequest) []uint64 {
	t.Helper()
	var seqs []uint64
	for range 100 {
		res, err := c.GetChain(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if v := res.GetVerification(); !v.GetValid() {
			t.Fatalf("page of %v: %v", req, v)
		}
		if req.PageToken != "" && len(res.GetEntries()) == 0 {
			t.Fatalf("the token of the page before led to an empty page: %v", req)
		}
		for _, e := range res.GetEntries() {
			seqs = append(seqs, e.GetSeq())
		}
		if res.GetNextPageToken() == "" {
			return seqs
		}
		req.PageToken = res.GetNextPageToken()
	}
	t.Fatal("too many pages")
	return nil
}

// GetChain filters by event type, user, resource, minimum severity and
// time, newest first on request, a page at a time by token; every page
// is verified.
func TestChainSearch(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		ctx := as(t, "acme", "user")
		all := searchLog(t, s.c, ctx, 40)
		searchLog(t, s.c, as(t, "beta", "user"), 10)
		want := func(keep func(i int, e *auditv1.Entry) bool) []uint64 {
			var out []uint64
			for i, e := range all {
				if keep(i, e) {
					out = append(out, e.GetSeq())
				}
			}
			return out
		}
		mid := all[20].GetTs().AsTime()
		for _, c := range []struct {
			name string
			req  *auditv1.GetChainRequest
			want []uint64
		}{
			{"event type", &auditv1.GetChainRequest{EventType: "type1", Limit: 4},
				want(func(i int, _ *auditv1.Entry) bool { return i%3 == 1 })},
			{"user", &auditv1.GetChainRequest{User: "user2", Limit: 3},
				want(func(i int, _ *auditv1.Entry) bool { return i%4 == 2 })},
			{"resource", &auditv1.GetChainRequest{Resource: "res4", Limit: 2},
				want(func(i int, _ *auditv1.Entry) bool { return i%5 == 4 })},
			{"severity at least high", &auditv1.GetChainRequest{Severity: auditv1.Severity_SEVERITY_HIGH, Limit: 7},
				want(func(i int, _ *auditv1.Entry) bool { return i%4 >= 2 })},
			{"since", &auditv1.GetChainRequest{Since: mid.Format(time.RFC3339Nano), Limit: 6},
				want(func(_ int, e *auditv1.Entry) bool { return !e.GetTs().AsTime().Before(mid) })},
			{"until", &auditv1.GetChainRequest{Until: mid.Add(time.Microsecond).Format(time.RFC3339Nano), Limit: 6},
				want(func(_ int, e *auditv1.Entry) bool { return !e.GetTs().AsTime().After(mid) })},
			{"combined", &auditv1.GetChainRequest{EventType: "type0", Severity: auditv1.Severity_SEVERITY_MEDIUM, Limit: 1},
				want(func(i int, _ *auditv1.Entry) bool { return i%3 == 0 && i%4 >= 1 })},
			{"none", &auditv1.GetChainRequest{User: "nobody"}, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				if got := searchAll(t, s.c, ctx, c.req); !slices.Equal(got, c.want) {
					t.Fatalf("got %v, want %v", got, c.want)
				}
				c.req.PageToken, c.req.Order = "", "desc"
				got := searchAll(t, s.c, ctx, c.req)
				slices.Reverse(got)
				if !slices.Equal(got, c.want) {
					t.Fatalf("newest first: got reversed %v, want %v", got, c.want)
				}
			})
		}
		// Unfiltered newest first.
		got := searchAll(t, s.c, ctx, &auditv1.GetChainRequest{Order: "desc", Limit: 9})
		if len(got) != 40 || got[0] != 40 || got[39] != 1 {
			t.Fatalf("newest first: %v", got)
		}
		// The seed's paging is untouched.
		res, err := s.c.GetChain(ctx, &auditv1.GetChainRequest{Offset: 38, Limit: 5})
		if err != nil || len(res.GetEntries()) != 2 || res.GetEntries()[0].GetSeq() != 39 || res.GetTotal() != 40 {
			t.Fatalf("offset read: %v, %v", res, err)
		}

		first, err := s.c.GetChain(ctx, &auditv1.GetChainRequest{EventType: "type1", Limit: 2})
		if err != nil || first.GetNextPageToken() == "" {
			t.Fatalf("first page: %v, %v", first, err)
		}
		tok := first.GetNextPageToken()
		for _, c := range []struct {
			name   string
			req    *auditv1.GetChainRequest
			reason string
		}{
			{"severity", &auditv1.GetChainRequest{Severity: auditv1.Severity(99)}, "FILTER_INVALID"},
			{"since", &auditv1.GetChainRequest{Since: "yesterday"}, "FILTER_INVALID"},
			{"until", &auditv1.GetChainRequest{Until: "2026-13-01T00:00:00Z"}, "FILTER_INVALID"},
			{"empty range", &auditv1.GetChainRequest{Since: "2026-01-02T00:00:00Z", Until: "2026-01-01T00:00:00Z"}, "FILTER_INVALID"},
			{"order", &auditv1.GetChainRequest{Order: "sideways"}, "FILTER_INVALID"},
			{"offset with a filter", &auditv1.GetChainRequest{EventType: "type1", Offset: 3}, "FILTER_INVALID"},
			{"token of another filter", &auditv1.GetChainRequest{EventType: "type2", PageToken: tok}, "PAGE_TOKEN_INVALID"},
			{"token of another order", &auditv1.GetChainRequest{EventType: "type1", Order: "desc", PageToken: tok}, "PAGE_TOKEN_INVALID"},
			{"token of the plain read", &auditv1.GetChainRequest{PageToken: tok}, "PAGE_TOKEN_INVALID"},
			{"garbage token", &auditv1.GetChainRequest{EventType: "type1", PageToken: "!!"}, "PAGE_TOKEN_INVALID"},
		} {
			_, err := s.c.GetChain(ctx, c.req)
			wantErr(t, err, codes.InvalidArgument, c.reason)
		}
		// A token is bound to its tenant too.
		_, err = s.c.GetChain(as(t, "beta", "user"), &auditv1.GetChainRequest{EventType: "type1", PageToken: tok})
		wantErr(t, err, codes.InvalidArgument, "PAGE_TOKEN_INVALID")
	})
}

// A tampered entry on a filtered page is detected at that read, whether
// edited in place or rewritten with a recomputed hash, and then sticks.
func TestFilteredPageDetectsTamper(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		for i, c := range []struct {
			name   string
			tamper func(t *testing.T, tenant string, ctx context.Context)
		}{
			{"edit", func(t *testing.T, tenant string, _ context.Context) {
				exec(t, s, tenant, "UPDATE audit_entries SET action = 'x' WHERE tenant_id = '%s' AND seq = 26")
			}},
			{"rewrite and re-hash", func(t *testing.T, tenant string, ctx context.Context) {
				e := chain(t, s.c, ctx).GetEntries()[25]
				e.Action = "x"
				q := s.owner.Rebind("UPDATE audit_entries SET action = ?, hash = ? WHERE tenant_id = ? AND seq = ?")
				if _, err := s.owner.ExecContext(t.Context(), q, e.GetAction(), rehash(tenant, e), tenant, 26); err != nil {
					t.Fatal(err)
				}
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				tenant := fmt.Sprintf("filtered-%d", i)
				ctx := as(t, tenant, "user")
				searchLog(t, s.c, ctx, 40) // entry 26 (i = 25): type1, user1, res0, medium
				req := &auditv1.GetChainRequest{EventType: "type1", Order: "desc", Limit: 5}
				if got := searchAll(t, s.c, ctx, req); len(got) != 13 {
					t.Fatalf("before tampering: %v", got)
				}
				c.tamper(t, tenant, ctx)
				req.PageToken = ""
				res, err := s.c.GetChain(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				seqs := []uint64{}
				for _, e := range res.GetEntries() {
					seqs = append(seqs, e.GetSeq())
				}
				if v := res.GetVerification(); v.GetValid() || v.GetFirstInvalidSeq() != 26 || !slices.Contains(seqs, 26) {
					t.Fatalf("filtered page %v after tampering: %v, want invalid at 26", seqs, v)
				}
				if v := readPage(t, s.c, ctx, 0, 2, ""); v.GetValid() || v.GetFirstInvalidSeq() != 26 {
					t.Fatalf("later read: %v, want invalid at 26", v)
				}
			})
		}
	})
}

// exportOf reads ExportLog's stream for req.
func exportOf(t *testing.T, c auditv1.AuditServiceClient, ctx context.Context, req *auditv1.ExportLogRequest) ([]byte, error) {
	t.Helper()
	stream, err := c.ExportLog(ctx, req)
	if err != nil {
		return nil, err
	}
	var b []byte
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		b = append(b, msg.GetData()...)
	}
}

// A filtered export holds the selected entries, each with its inclusion
// proof under the signed checkpoint, and verifies offline; a rewritten
// entry in it fails; the unfiltered export keeps its format.
func TestFilteredExport(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		ctx := as(t, "acme", "user")
		all := searchLog(t, s.c, ctx, 30)
		cp, err := s.c.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{})
		if err != nil {
			t.Fatal(err)
		}
		vkey := cp.GetVerifierKey()
		exp, err := exportOf(t, s.c, ctx, &auditv1.ExportLogRequest{EventType: "type2", Severity: auditv1.Severity_SEVERITY_MEDIUM,
			Since: all[3].GetTs().AsTime().Format(time.RFC3339Nano)})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ledger.VerifyExport(bytes.NewReader(exp), vkey)
		// i%3 == 2, i%4 >= 1, i >= 3: 5, 11, 14, 17, 23, 26, 29 → seqs +1.
		if err != nil || !rep.Valid || rep.Filter == nil || rep.Entries != 7 || rep.Checkpoint.Size != 30 {
			t.Fatalf("filtered export: %+v, %v\n%s", rep, err, exp)
		}
		whole, err := exportOf(t, s.c, ctx, &auditv1.ExportLogRequest{})
		if rep, err := ledger.VerifyExport(bytes.NewReader(whole), vkey); err != nil || !rep.Valid || rep.Filter != nil || rep.Entries != 30 {
			t.Fatalf("whole export: %+v, %v", rep, err)
		}
		_, err = exportOf(t, s.c, ctx, &auditv1.ExportLogRequest{Severity: auditv1.Severity(99)})
		wantErr(t, err, codes.InvalidArgument, "FILTER_INVALID")

		// Entry 12 (i = 11) rewritten and re-hashed in the database.
		e := all[11]
		e.Action = "x"
		q := s.owner.Rebind("UPDATE audit_entries SET action = ?, hash = ? WHERE tenant_id = ? AND seq = ?")
		if _, err := s.owner.ExecContext(t.Context(), q, e.GetAction(), rehash("acme", e), "acme", 12); err != nil {
			t.Fatal(err)
		}
		exp, err = exportOf(t, s.c, ctx, &auditv1.ExportLogRequest{EventType: "type2"})
		if err != nil {
			t.Fatal(err)
		}
		// The tree's nodes below ledger.StoredLevel are derived from the
		// entries' hashes: the rewrite changes them for its block of 16
		// (entries 1 to 16), so the proofs of the exported entries there
		// (3, 6, 9, 12, 15) fail, and those of the rest (18 on) hold.
		rep, err = ledger.VerifyExport(bytes.NewReader(exp), vkey)
		if err != nil || rep.Valid || rep.FirstBad != 3 || len(rep.Problems) != 5 || !strings.Contains(rep.Problems[3], "entry 12: ") {
			t.Fatalf("after a rewrite: %+v, %v", rep, err)
		}
	})
}
