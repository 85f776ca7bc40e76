package app_test

import (
	"testing"

	tenancyv1 "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
	"github.com/echopilot/echopilot/platform/service/servicetest"
	"github.com/echopilot/echopilot/services/tenancy/app"
)

// BenchmarkGetTenantInfo is the whole server path of GET /api/tenant/info
// without the gateway: interceptor chain with HS256 verification, decision
// recording and the stats read, on SQLite, over bufconn.
func BenchmarkGetTenantInfo(b *testing.B) {
	conn := servicetest.Start(b, app.Spec(), servicetest.Options{AuthMode: "required", Quiet: true})
	c := tenancyv1.NewTenancyServiceClient(conn)
	ctx := as(b, "acme", "user")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetTenantInfo(ctx, &tenancyv1.GetTenantInfoRequest{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
