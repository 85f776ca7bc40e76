package e2e

import (
	"net/http"
	"testing"

	"github.com/echopilot/echopilot/platform/store/storetest"
)

// The seed's PHASE 118 gate: three events appended come back chained with
// verification.valid true; after a direct database edit the chain is
// reported invalid, naming the entry.
func TestAuditGate(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "optional", backend)
		user := s.token(t, "acme", "user")
		for _, ev := range []string{
			`{"entries":[{"event_type":"user.login","user":"alice@acme.test","action":"login","resource":"console","severity":"low"}]}`,
			`{"entries":[{"event_type":"data.export","user":"alice@acme.test","action":"export","resource":"reports/q3","details":{"rows":1200},"severity":"high"}]}`,
			`{"entries":[{"event_type":"policy.change","user":"bob@acme.test","action":"update","resource":"retention","severity":"critical"}]}`,
		} {
			if code, body := s.call(t, "POST", "/api/audit/entries", user, nil, ev); code != http.StatusOK {
				t.Fatalf("append = %d %v", code, body)
			}
		}
		code, body := s.call(t, "GET", "/api/audit/chain?limit=10&offset=0", user, nil, "")
		entries, _ := body["entries"].([]any)
		if code != http.StatusOK || body["ok"] != true || body["total"] != 3.0 || len(entries) != 3 ||
			dig(body, "verification", "valid") != true || dig(body, "verification", "entries") != 3.0 {
			t.Fatalf("chain = %d %v", code, body)
		}
		first, second := entries[0].(map[string]any), entries[1].(map[string]any)
		if first["prev_hash"] != "genesis" || second["prev_hash"] != first["hash"] || first["seq"] != 1.0 ||
			dig(second, "details", "rows") != 1200.0 {
			t.Fatalf("entries are not chained: %v", entries)
		}

		owner := storetest.Open(t, s.ownerURL["audit"])
		if _, err := owner.ExecContext(t.Context(), "UPDATE audit_entries SET resource = 'reports/q4' WHERE tenant_id = 'acme' AND seq = 2"); err != nil {
			t.Fatal(err)
		}
		_, body = s.call(t, "GET", "/api/audit/chain", user, nil, "")
		if dig(body, "verification", "valid") != false || dig(body, "verification", "first_invalid_seq") != 2.0 {
			t.Fatalf("after the edit: %v", body["verification"])
		}
	})
}
