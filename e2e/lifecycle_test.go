package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/identity"
)

// A customer leaves, through the gateway and the real binaries: its admin
// exports its data (a job on the platform queue that tenancy's worker
// runs), downloads the archive (every file's SHA-256 in the manifest, the
// rows made in every service inside), the platform admin offboards it
// (refused without the export), the erasure runs through every service
// until the tenant is deleted and its writes are refused, and another
// tenant is untouched.
func TestExportAndEraseThroughGateway(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "required", backend)
		admin, acmeAdmin := s.token(t, "default", "admin"), s.token(t, "acme", "admin")
		for _, id := range []string{"acme", "globex"} {
			if code, body := s.call(t, "POST", "/api/tenants", admin, nil, `{"tenant_id":"`+id+`"}`); code != http.StatusOK {
				t.Fatalf("create %s = %d %v", id, code, body)
			}
		}
		// Rows in tenancy, queue, growth and finops.
		markers := map[string]string{}
		code, body := s.call(t, "POST", "/api/tenants/acme/api-keys", acmeAdmin, nil, `{"name":"e2e-export-key"}`)
		if code != http.StatusOK {
			t.Fatalf("api key = %d %v", code, body)
		}
		markers["tenancy"] = dig(body, "api_key", "key_id").(string)
		code, body = s.call(t, "POST", "/api/queue/enqueue", acmeAdmin, nil, `{"type":"report_gen","payload":{"marker":"e2e-export-job"}}`)
		if code != http.StatusOK {
			t.Fatalf("enqueue = %d %v", code, body)
		}
		markers["queue"] = "e2e-export-job"
		code, body = s.call(t, "POST", "/api/growth/referral/create", acmeAdmin, nil, `{"referrer_id":"e2e-export-referrer"}`)
		if code != http.StatusOK {
			t.Fatalf("referral = %d %v", code, body)
		}
		markers["growth"] = "e2e-export-referrer"
		if code, body := s.call(t, "PUT", "/api/finops/budget", acmeAdmin, nil, `{"amount_micros":123456789}`); code != http.StatusOK {
			t.Fatalf("budget = %d %v", code, body)
		}
		markers["finops"] = "123456789"

		// Only admins export, only their own tenant.
		if code, body := s.call(t, "POST", "/api/tenants/acme/exports", s.token(t, "acme", "user"), nil, `{}`); code != http.StatusForbidden {
			t.Fatalf("a user's export = %d %v", code, body)
		}
		if code, body := s.call(t, "POST", "/api/tenants/acme/exports", s.token(t, "globex", "admin"), nil, `{}`); code != http.StatusForbidden {
			t.Fatalf("globex's admin exporting acme = %d %v", code, body)
		}
		code, body = s.call(t, "POST", "/api/tenants/acme/exports", acmeAdmin, nil, `{}`)
		if code != http.StatusOK || dig(body, "export", "state") != "queued" {
			t.Fatalf("export = %d %v", code, body)
		}
		id := dig(body, "export", "export_id").(string)
		exp := pollJSON(t, 60*time.Second, "the export", func() (map[string]any, bool) {
			code, body := s.call(t, "GET", "/api/tenants/acme/exports/"+id, acmeAdmin, nil, "")
			if code != http.StatusOK || dig(body, "export", "state") == "failed" {
				t.Fatalf("get export = %d %v", code, body)
			}
			return body, dig(body, "export", "state") == "succeeded"
		})

		req, _ := http.NewRequest("GET", s.GatewayURL+"/api/tenants/acme/exports/"+id+"/archive", nil)
		req.Header.Set("Authorization", "Bearer "+acmeAdmin)
		resp, err := s.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/gzip" ||
			!strings.Contains(resp.Header.Get("Content-Disposition"), "acme-"+id+".tar.gz") {
			t.Fatalf("archive = %d %v", resp.StatusCode, resp.Header)
		}
		files := untarAll(t, raw)
		if len(files) == 0 || files[0].name != "manifest.json" {
			t.Fatal("the archive does not start with manifest.json")
		}
		if sum := sha256.Sum256(files[0].data); hex.EncodeToString(sum[:]) != dig(exp, "export", "manifest_sha256") {
			t.Fatalf("manifest sha256 %x, export %v", sum, exp)
		}
		var m struct {
			Files []struct {
				Name, SHA256 string
				Size         int64
			}
		}
		if err := json.Unmarshal(files[0].data, &m); err != nil || len(m.Files) != len(files)-1 {
			t.Fatalf("manifest %s: %v", files[0].data, err)
		}
		for i, f := range m.Files {
			sum := sha256.Sum256(files[i+1].data)
			if files[i+1].name != f.Name || hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(files[i+1].data)) != f.Size {
				t.Errorf("file %s does not match the manifest's %+v", files[i+1].name, f)
			}
		}
		for svc, marker := range markers {
			found := false
			for _, f := range files {
				found = found || strings.HasPrefix(f.name, svc+"/") && bytes.Contains(f.data, []byte(marker))
			}
			if !found {
				t.Errorf("no %s file holds %q", svc, marker)
			}
		}

		// Offboarding: the platform admin's, after the export.
		if code, body := s.call(t, "POST", "/api/tenants/acme:offboard", acmeAdmin, nil, `{"reason":"leaving","export_id":"`+id+`"}`); code != http.StatusForbidden {
			t.Fatalf("acme offboarding itself = %d %v", code, body)
		}
		if code, body := s.call(t, "POST", "/api/tenants/acme:offboard", admin, nil, `{"reason":"leaving"}`); errReason(body) != "EXPORT_REQUIRED" {
			t.Fatalf("offboard without export = %d %v", code, body)
		}
		code, body = s.call(t, "POST", "/api/tenants/acme:offboard", admin, nil, `{"reason":"leaving","export_id":"`+id+`"}`)
		if code != http.StatusOK || dig(body, "tenant", "state") != "offboarding" {
			t.Fatalf("offboard = %d %v", code, body)
		}
		erasure := pollJSON(t, 60*time.Second, "the erasure", func() (map[string]any, bool) {
			code, body := s.call(t, "GET", "/api/tenants/acme/erasure", admin, nil, "")
			if code != http.StatusOK {
				t.Fatalf("erasure = %d %v", code, body)
			}
			return body, dig(body, "erasure", "state") == "done"
		})
		if svcs, _ := dig(erasure, "erasure", "services").([]any); len(svcs) != 5 {
			t.Fatalf("erasure = %v", erasure)
		}
		if code, body := s.call(t, "GET", "/api/tenants/acme", admin, nil, ""); code != http.StatusOK || dig(body, "tenant", "state") != "deleted" {
			t.Fatalf("tenant = %d %v", code, body)
		}
		pollJSON(t, identity.TenantStateCacheTTL+2*time.Second, "acme's writes refused", func() (map[string]any, bool) {
			_, body := s.call(t, "POST", "/api/queue/enqueue", acmeAdmin, nil, `{"type":"report_gen"}`)
			return body, errReason(body) == identity.ReasonTenantNotActive
		})
		if code, body := s.call(t, "POST", "/api/queue/enqueue", s.token(t, "globex", "admin"), nil, `{"type":"report_gen"}`); code != http.StatusOK {
			t.Fatalf("globex's write = %d %v", code, body)
		}
	})
}

// pollJSON polls fn every 100 ms until it says done, failing t after
// within; it returns fn's last value.
func pollJSON(t *testing.T, within time.Duration, what string, fn func() (map[string]any, bool)) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v, done := fn()
		if done {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %v: %v", what, within, v)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type tarFile struct {
	name string
	data []byte
}

func untarAll(t *testing.T, raw []byte) []tarFile {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []tarFile
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarFile{hdr.Name, data})
	}
}
