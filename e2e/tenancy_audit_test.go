package e2e

import (
	"net/http"
	"testing"
	"time"
)

// DESIGN.md section 2, rule 5: denials land in the denied caller's tenant
// audit log. A denial tenancy makes itself (test-access) and one finops
// reports to tenancy both travel tenancy's outbox to audit, where the
// caller's tenant reads them in a chain that verifies.
func TestTenancyAuditDenials(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		acme := s.token(t, "acme", "user")

		code, body := s.call(t, "GET", "/api/tenant/test-access?target_tenant_id=globex", acme, nil, "")
		if code != http.StatusOK || body["allowed"] != false || body["reason"] != "CROSS_TENANT_DENIED" {
			t.Fatalf("test-access = %d %v, want a denial", code, body)
		}
		code, body = s.call(t, "GET", "/api/finops/summary", acme, map[string]string{"X-Tenant-ID": "globex"}, "")
		if code != http.StatusForbidden || errReason(body) != "CROSS_TENANT_DENIED" {
			t.Fatalf("finops summary of globex with an acme token = %d %v, want 403", code, body)
		}

		// finops reports its decisions in batches (every few seconds), then
		// tenancy's relay delivers.
		var chain map[string]any
		byService := map[string]map[string]any{}
		waitFor(t, 15*time.Second, "both denials in acme's audit log", func() bool {
			_, chain = s.call(t, "GET", "/api/audit/chain?limit=100", acme, nil, "")
			entries, _ := chain["entries"].([]any)
			for _, raw := range entries {
				e, _ := raw.(map[string]any)
				if e["event_type"] == "access.denied" {
					svc, _ := dig(e, "details", "service").(string)
					byService[svc] = e
				}
			}
			return byService["tenancy"] != nil && byService["finops"] != nil
		})
		if dig(chain, "verification", "valid") != true {
			t.Fatalf("acme chain verification = %v", chain["verification"])
		}
		for svc, e := range byService {
			if dig(e, "details", "reason") != "CROSS_TENANT_DENIED" || dig(e, "details", "target_tenant_id") != "globex" ||
				dig(e, "details", "verified") != true || e["user"] != "e2e-acme" || e["resource"] != "tenant/globex" ||
				e["severity"] != "high" {
				t.Errorf("%s denial entry = %v", svc, e)
			}
			if id, _ := dig(e, "details", "event_id").(string); id == "" {
				t.Errorf("%s denial entry has no event_id: %v", svc, e)
			}
		}

		// globex, whose data was asked for, does not get acme's entries.
		_, other := s.call(t, "GET", "/api/audit/chain?limit=100", s.token(t, "globex", "user"), nil, "")
		if entries, _ := other["entries"].([]any); len(entries) != 0 {
			t.Errorf("globex log = %v, want empty", entries)
		}
	})
}
