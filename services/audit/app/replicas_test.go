package app_test

import (
	"fmt"
	"sync"
	"testing"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/audit/app"
)

// Two replicas on one PostgreSQL, each with its own connection pool and
// in-memory state, append to the same tenant at once: the log stays one
// chain (no fork, no gap, no sequence twice) and verifies from either.
func TestReplicasAppendToOneTenantWithoutForking(t *testing.T) {
	migrateURL, appURL := storetest.Postgres(t)
	key, _ := newKey(t)
	replica := func() auditv1.AuditServiceClient {
		conn := servicetest.Start(t, app.Spec(), servicetest.Options{
			AuthMode: "required", DatabaseURL: appURL, MigrateURL: migrateURL, Args: []string{"--signing-key=" + key},
		})
		return auditv1.NewAuditServiceClient(conn)
	}
	replicas := []auditv1.AuditServiceClient{replica(), replica()}
	ctx := as(t, "acme", "user")

	const writers, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := replicas[w%len(replicas)]
			for i := range each {
				_, err := c.AppendEntries(ctx, &auditv1.AppendEntriesRequest{Entries: []*auditv1.NewEntry{{
					EventType: "replica.write", User: fmt.Sprintf("writer%d", w), Action: fmt.Sprint(i), Resource: "r", Severity: auditv1.Severity_SEVERITY_LOW,
				}}})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("append: %v", err)
	}

	for i, c := range replicas {
		res, err := c.GetChain(ctx, &auditv1.GetChainRequest{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if v := res.GetVerification(); !v.GetValid() || res.GetTotal() != writers*each {
			t.Fatalf("replica %d: total %d, verification %v; want %d entries, valid", i, res.GetTotal(), v, writers*each)
		}
		seen := map[uint64]bool{}
		prev := "genesis"
		for _, e := range res.GetEntries() {
			if seen[e.GetSeq()] || e.GetPrevHash() != prev {
				t.Fatalf("replica %d: entry %d repeats a seq or does not chain to the one before", i, e.GetSeq())
			}
			seen[e.GetSeq()], prev = true, e.GetHash()
		}
	}
}
