package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// FuzzCreateTenantBody sends arbitrary bodies to POST /api/tenants through
// the real gateway and tenancy: whatever arrives, the answer is a JSON
// envelope with a 2xx or 4xx status, never a 5xx.
func FuzzCreateTenantBody(f *testing.F) {
	f.Add([]byte(`{"tenant_id":"acme"}`))
	f.Add([]byte(`{"tenant_id":5}`))
	f.Add([]byte(`{}`))
	srv := newGatewayTB(f, "optional", true)
	auth := "Bearer " + token(f, "default", "admin")
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/tenants", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("status %d for body %q: %s", resp.StatusCode, body, raw)
		}
		var env struct {
			OK    *bool           `json:"ok"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(raw, &env); err != nil || env.OK == nil {
			t.Fatalf("not an envelope for body %q: %s", body, raw)
		}
		if !*env.OK && len(env.Error) == 0 {
			t.Fatalf("ok=false without error: %s", raw)
		}
	})
}
