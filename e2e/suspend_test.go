package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/identity"
)

// A customer stops paying, through the gateway and the real binaries: a
// tenant admin cannot suspend (itself or another tenant), an unknown tenant
// is 404, the platform admin's suspension refuses the tenant's writes within
// the identity layer's cache time (TENANT_SUSPENDED) while its reads work,
// both transitions land in the tenant's audit log, and resuming restores
// its writes.
func TestSuspendThroughGateway(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "required", backend)
		admin, acmeAdmin, acme := s.token(t, "default", "admin"), s.token(t, "acme", "admin"), s.token(t, "acme", "user")
		for _, id := range []string{"acme", "globex"} {
			if code, body := s.call(t, "POST", "/api/tenants", admin, nil, `{"tenant_id":"`+id+`"}`); code != http.StatusOK {
				t.Fatalf("create %s = %d %v", id, code, body)
			}
		}
		enqueue := func(token string) (int, map[string]any) {
			return s.call(t, "POST", "/api/queue/enqueue", token, nil, `{"type":"report_gen","payload":{}}`)
		}
		if code, body := enqueue(acme); code != http.StatusOK {
			t.Fatalf("write while active = %d %v", code, body)
		}

		for _, tc := range []struct {
			who, token, path string
			code             int
			reason           string
		}{
			{"acme's admin suspending acme", acmeAdmin, "/api/tenants/acme:suspend", http.StatusForbidden, "TENANT_NOT_ALLOWED"},
			{"globex's admin suspending acme", s.token(t, "globex", "admin"), "/api/tenants/acme:suspend", http.StatusForbidden, "TENANT_NOT_ALLOWED"},
			{"acme's admin resuming acme", acmeAdmin, "/api/tenants/acme:resume", http.StatusForbidden, "TENANT_NOT_ALLOWED"},
			{"an unknown tenant", admin, "/api/tenants/nosuch:suspend", http.StatusNotFound, "TENANT_NOT_FOUND"},
		} {
			if code, body := s.call(t, "POST", tc.path, tc.token, nil, `{"reason":"unpaid"}`); code != tc.code || errReason(body) != tc.reason {
				t.Fatalf("%s = %d %v, want %d %s", tc.who, code, body, tc.code, tc.reason)
			}
		}

		code, body := s.call(t, "POST", "/api/tenants/acme:suspend", admin, nil, `{"reason":"invoice 42 unpaid"}`)
		if code != http.StatusOK || body["changed"] != true || dig(body, "tenant", "state") != "suspended" ||
			dig(body, "tenant", "state_reason") != "invoice 42 unpaid" {
			t.Fatalf("suspend = %d %v", code, body)
		}
		start := time.Now()
		for {
			code, body := enqueue(acme)
			if code >= 400 && code < 500 && errReason(body) == identity.ReasonTenantSuspended {
				t.Logf("suspension refused writes through the gateway after %v with %d", time.Since(start), code)
				break
			}
			if code != http.StatusOK || time.Since(start) > identity.TenantStateCacheTTL+2*time.Second {
				t.Fatalf("write after suspension (%v) = %d %v", time.Since(start), code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if code, body := s.call(t, "GET", "/api/queue/status", acme, nil, ""); code != http.StatusOK || body["total_jobs"] == 0.0 {
			t.Fatalf("read while suspended = %d %v", code, body)
		}
		if code, body := enqueue(s.token(t, "globex", "user")); code != http.StatusOK {
			t.Fatalf("another tenant's write = %d %v", code, body)
		}

		if code, body := s.call(t, "POST", "/api/tenants/acme:resume", admin, nil, `{"reason":"paid"}`); code != http.StatusOK ||
			dig(body, "tenant", "state") != "active" {
			t.Fatalf("resume = %d %v", code, body)
		}
		start = time.Now()
		for {
			code, body := enqueue(acme)
			if code == http.StatusOK {
				break
			}
			if time.Since(start) > identity.TenantStateCacheTTL+2*time.Second {
				t.Fatalf("write after resumption (%v) = %d %v", time.Since(start), code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}

		// Both transitions in acme's audit log, read by acme.
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, chain := s.call(t, "GET", "/api/audit/chain?limit=100", acme, nil, "")
			var types []string
			entries, _ := chain["entries"].([]any)
			for _, e := range entries {
				if typ, _ := e.(map[string]any)["event_type"].(string); typ == "tenant.suspended" || typ == "tenant.resumed" {
					types = append(types, typ)
				}
			}
			if len(types) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("acme's audit log holds state entries %v, want both transitions: %v", types, chain)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}
