package e2e

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/identity"
)

// A tenant admin creates an API key through the gateway; the key reads and
// writes through the gateway (tenancy and queue check it with tenancy's
// LookupAPIKey); once revoked it is refused within the identity layer's
// cache time.
func TestAPIKeysThroughGateway(t *testing.T) {
	s := startSuite(t, "required")
	admin := s.token(t, "acme", "admin")

	code, body := s.call(t, "POST", "/api/tenants/acme/api-keys", s.token(t, "acme", "user"), nil, `{"name":"ci"}`)
	if code != http.StatusForbidden || dig(body, "error", "reason") != "ROLE_REQUIRED" {
		t.Fatalf("user creating a key = %d %v, want 403 ROLE_REQUIRED", code, body)
	}
	code, body = s.call(t, "POST", "/api/tenants/acme/api-keys", admin, nil, `{"name":"ci","ttl":"720h"}`)
	key, _ := body["secret"].(string)
	id, _ := dig(body, "api_key", "key_id").(string)
	if code != http.StatusOK || body["ok"] != true || id == "" || dig(body, "api_key", "expire_time") == nil ||
		!regexp.MustCompile(`^ep_live_[0-9A-HJKMNP-TV-Z]{26}_[A-Za-z0-9_-]{43}$`).MatchString(key) {
		t.Fatalf("create = %d %v", code, body)
	}

	if code, body := s.call(t, "POST", "/api/queue/enqueue", key, nil, `{"type":"report_gen","payload":{}}`); code != http.StatusOK {
		t.Fatalf("write with the key = %d %v", code, body)
	}
	code, body = s.call(t, "GET", "/api/queue/status", "", map[string]string{"X-API-Key": key}, "")
	if code != http.StatusOK || body["total_jobs"] != 1.0 {
		t.Fatalf("read with X-API-Key = %d %v", code, body)
	}
	if code, body := s.call(t, "GET", "/api/tenant/info", key, nil, ""); code != http.StatusOK || body["tenant_id"] != "acme" || body["tenant_verified"] != true {
		t.Fatalf("tenant info with the key = %d %v", code, body)
	}
	if code, body := s.call(t, "GET", "/api/queue/status", key, map[string]string{"X-Tenant-ID": "globex"}, ""); code != http.StatusForbidden ||
		dig(body, "error", "reason") != "CROSS_TENANT_DENIED" {
		t.Fatalf("acme's key for globex = %d %v", code, body)
	}

	code, body = s.call(t, "GET", "/api/tenants/acme/api-keys", admin, nil, "")
	list, _ := body["api_keys"].([]any)
	if code != http.StatusOK || len(list) != 1 || strings.Contains(mustJSON(t, body), key[35:]) {
		t.Fatalf("list = %d %v", code, body)
	}
	if code, body := s.call(t, "DELETE", "/api/tenants/acme/api-keys/"+id, admin, nil, ""); code != http.StatusOK || dig(body, "api_key", "revoke_time") == nil {
		t.Fatalf("revoke = %d %v", code, body)
	}
	start := time.Now()
	for {
		code, body := s.call(t, "POST", "/api/queue/enqueue", key, nil, `{"type":"report_gen","payload":{}}`)
		if code == http.StatusUnauthorized && dig(body, "error", "reason") == "TOKEN_INVALID" {
			break
		}
		if code != http.StatusOK || time.Since(start) > identity.APIKeyCacheTTL+2*time.Second {
			t.Fatalf("write after revocation (%v) = %d %v", time.Since(start), code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := s.call(t, "GET", "/api/queue/status", key, nil, ""); code != http.StatusUnauthorized {
		t.Fatalf("read after revocation = %d %v", code, body)
	}
}
