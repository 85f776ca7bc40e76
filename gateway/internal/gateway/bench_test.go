package gateway

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkTenantInfo is GET /api/tenant/info through the gateway handler
// (over a real loopback HTTP connection) to the in-process tenancy service.
func BenchmarkTenantInfo(b *testing.B) {
	srv := newGatewayTB(b, "required", true)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/tenant/info", nil)
	req.Header.Set("Authorization", "Bearer "+token(b, "acme", "user"))
	client := srv.Client()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
