package app_test

import (
	"fmt"
	"testing"

	auditv1 "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	"github.com/echopilot/echopilot/platform/loadtest"
	"github.com/echopilot/echopilot/platform/service/servicetest"
)

// chainPageSizes are the log sizes BenchmarkChainPage reads a page of.
var chainPageSizes = []int{1_000, 200_000}

// BenchmarkChainPage is GetChain with limit 10 (the console's page) on a
// log of 1,000 entries and on a large one, on SQLite, after one warm-up
// read: what a read costs as the log grows. One op is one GetChain call;
// reported: ms/read.
//
//	go test -run '^$' -bench ChainPage -benchtime 20x ./services/audit/app/
func BenchmarkChainPage(b *testing.B) {
	for _, n := range chainPageSizes {
		b.Run(fmt.Sprintf("sqlite/entries=%d", n), func(b *testing.B) {
			c, _ := startBench(b, "sqlite")
			tenant := fmt.Sprintf("page%d", n)
			svc := servicetest.AsService(b, "tenancy", "")
			batch := min(n, largeLogBatch)
			loadtest.Parallel(b, largeLogClients, n/batch, func(i int) error {
				req := &auditv1.AppendEntriesRequest{Entries: make([]*auditv1.NewEntry, batch)}
				for j := range req.Entries {
					req.Entries[j] = benchEntry(tenant, int64(i*batch+j))
				}
				_, err := c.AppendEntries(svc, req)
				return err
			})
			ctx := as(b, tenant, "user")
			read := func() {
				res, err := c.GetChain(ctx, &auditv1.GetChainRequest{Limit: 10, Offset: int64(n / 2)})
				if v := res.GetVerification(); err != nil || !v.GetValid() || v.GetEntries() != uint64(n) ||
					res.GetTotal() != uint64(n) || len(res.GetEntries()) != 10 {
					b.Fatalf("chain: %v, %v", v, err)
				}
			}
			read() // warm-up: the first read of a log may verify all of it
			for b.Loop() {
				read()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/read")
		})
	}
}
