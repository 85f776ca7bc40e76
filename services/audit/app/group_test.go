package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/service/servicetest"
)

// groupCall is one single-entry append of a group test and what came back.
type groupCall struct {
	req *auditv1.AppendEntriesRequest
	res *auditv1.AppendEntriesResponse
	err error
}

// appendConcurrently runs calls at once, from as many goroutines, as ctx.
func appendConcurrently(s stack, ctx context.Context, calls []*groupCall) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, c := range calls {
		wg.Go(func() {
			<-start
			c.res, c.err = s.c.AppendEntries(ctx, c.req)
		})
	}
	close(start)
	wg.Wait()
}

// checkLog checks tenant's log verifies, holds want entries with seq 1 to
// want, and holds each of got (the entries calls got back) at its seq.
func checkLog(t *testing.T, s stack, tenant string, want int, got []*auditv1.Entry) {
	t.Helper()
	res := chain(t, s.c, as(t, tenant, "user"))
	if res.GetTotal() != uint64(want) || !res.GetVerification().GetValid() {
		t.Fatalf("%s: total %d, %v; want %d entries, valid", tenant, res.GetTotal(), res.GetVerification(), want)
	}
	for i, e := range res.GetEntries() {
		if e.GetSeq() != uint64(i+1) {
			t.Fatalf("%s: entry %d has seq %d", tenant, i, e.GetSeq())
		}
	}
	seen := map[uint64]bool{}
	for _, e := range got {
		stored := res.GetEntries()[e.GetSeq()-1]
		if seen[e.GetSeq()] || stored.GetHash() != e.GetHash() || stored.GetUser() != e.GetUser() {
			t.Fatalf("%s: entry returned %v, stored %v (or returned twice)", tenant, e, stored)
		}
		seen[e.GetSeq()] = true
	}
}

// Single-entry appenders to one tenant, 16 at once, each several times:
// one valid chain, no seq twice, every call got its own entry back.
func TestGroupedAppendsToOneTenant(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		ctx := as(t, "acme", "user")
		const appenders, rounds = 16, 5
		var got []*auditv1.Entry
		for r := range rounds {
			calls := make([]*groupCall, appenders)
			for a := range calls {
				calls[a] = &groupCall{req: &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{
					EventType: "group", User: fmt.Sprintf("a%d-r%d", a, r), Severity: auditv1.Severity_SEVERITY_HIGH,
				}}}}
			}
			appendConcurrently(s, ctx, calls)
			for a, c := range calls {
				if c.err != nil || len(c.res.GetEntries()) != 1 || c.res.GetEntries()[0].GetUser() != fmt.Sprintf("a%d-r%d", a, r) {
					t.Fatalf("call %d of round %d: %v, %v", a, r, c.res, c.err)
				}
				got = append(got, c.res.GetEntries()...)
			}
		}
		checkLog(t, s, "acme", appenders*rounds, got)
	})
}

// Calls of one tenant, of other tenants and of several tenants at once
// (a service's), all concurrent: every log is one valid chain holding what
// its calls got back.
func TestGroupedAppendsMixedTenants(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		svc := servicetest.AsService(t, "tenancy", "")
		tenants := []string{"acme", "globex", "initech"}
		var calls []*groupCall
		for i := range 24 {
			var req auditv1.AppendEntriesRequest
			if i%3 == 0 {
				for _, tenant := range tenants {
					req.Entries = append(req.Entries, &auditv1.NewEntry{TenantId: tenant, EventType: "mixed", User: fmt.Sprint("svc", i)})
				}
			} else {
				req.Entries = []*auditv1.NewEntry{{TenantId: tenants[i%2], EventType: "mixed", User: fmt.Sprint("one", i)}}
			}
			calls = append(calls, &groupCall{req: &req})
		}
		appendConcurrently(s, svc, calls)
		got := map[string][]*auditv1.Entry{}
		for i, c := range calls {
			if c.err != nil || len(c.res.GetEntries()) != len(c.req.GetEntries()) {
				t.Fatalf("call %d: %v, %v", i, c.res, c.err)
			}
			for j, e := range c.res.GetEntries() {
				want := c.req.GetEntries()[j]
				if e.GetUser() != want.GetUser() || e.GetEventType() != want.GetEventType() {
					t.Fatalf("call %d entry %d: %v, want %v", i, j, e, want)
				}
				got[want.GetTenantId()] = append(got[want.GetTenantId()], e)
			}
		}
		// 8 calls for all three; of the 16 others, 8 each for acme and
		// globex.
		for tenant, want := range map[string]int{"acme": 16, "globex": 16, "initech": 8} {
			checkLog(t, s, tenant, want, got[tenant])
		}
	})
}

// Concurrent calls giving the same idempotency keys (each key by two
// calls, likely in one group): each key's entry is appended once, the
// other call gets it as a duplicate.
func TestGroupedAppendsIdempotencyKeys(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		ctx := as(t, "acme", "user")
		const keys = 8
		calls := make([]*groupCall, 2*keys)
		for i := range calls {
			calls[i] = &groupCall{req: &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{
				EventType: "keyed", User: fmt.Sprint("caller", i), IdempotencyKey: fmt.Sprint("key", i%keys),
			}}}}
		}
		appendConcurrently(s, ctx, calls)
		perKey := map[string]int{}
		var got []*auditv1.Entry
		for i, c := range calls {
			n := len(c.res.GetEntries())
			if c.err != nil || int(c.res.GetDuplicates()) != 1-n {
				t.Fatalf("call %d: %v, %v", i, c.res, c.err)
			}
			perKey[c.req.GetEntries()[0].GetIdempotencyKey()] += n
			got = append(got, c.res.GetEntries()...)
		}
		for k := range keys {
			if perKey[fmt.Sprint("key", k)] != 1 {
				t.Fatalf("entries per key: %v", perKey)
			}
		}
		checkLog(t, s, "acme", keys, got)
		// A redelivery afterwards is a duplicate too.
		res, err := s.c.AppendEntries(ctx, calls[0].req)
		if err != nil || len(res.GetEntries()) != 0 || res.GetDuplicates() != 1 {
			t.Fatalf("redelivery: %v, %v", res, err)
		}
	})
}

// Invalid calls among concurrent valid ones fail alone: every valid call
// is appended and gets its entry, every invalid one gets its error.
func TestGroupedAppendsWithInvalidCalls(t *testing.T) {
	backends(t, func(t *testing.T, s stack) {
		ctx := as(t, "acme", "user")
		calls := make([]*groupCall, 16)
		for i := range calls {
			e := &auditv1.NewEntry{EventType: "valid", User: fmt.Sprint("caller", i)}
			switch i % 4 {
			case 1:
				e.Severity = auditv1.Severity(99)
			case 3:
				e.TenantId = "globex" // another tenant's log: not a user's to write
			}
			calls[i] = &groupCall{req: &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{e}}}
		}
		appendConcurrently(s, ctx, calls)
		var got []*auditv1.Entry
		for i, c := range calls {
			switch i % 4 {
			case 1:
				wantErr(t, c.err, codes.InvalidArgument, "ENTRY_INVALID")
			case 3:
				if apierr.Reason(c.err) != "TENANT_NOT_ALLOWED" {
					t.Fatalf("call %d: %v", i, c.err)
				}
			default:
				if c.err != nil || len(c.res.GetEntries()) != 1 {
					t.Fatalf("call %d: %v, %v", i, c.res, c.err)
				}
				got = append(got, c.res.GetEntries()...)
			}
		}
		checkLog(t, s, "acme", 8, got)
	})
}
