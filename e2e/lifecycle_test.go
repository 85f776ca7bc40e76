package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/devstack"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/platform/tenantdata/tenantdatatest"
)

// A customer leaves, through the gateway and the real binaries: its admin
// exports its data (every service's rows, the audit log with its
// checkpoint, the CSVs, a manifest of SHA-256s), the platform admin
// offboards it (refused without the export), the erasure job empties every
// service, and afterwards no text column of any table of any service holds
// the tenant's id except the kinds the erasure reports it keeps. Another
// tenant is untouched throughout.
func TestTenantLeaves(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		s := startOn(t, "required", backend)
		admin := s.token(t, "default", "admin")
		const leaver, stayer = "leaver-7q", "stayer-3k"
		fixtures, secrets := map[string]map[string]string{}, map[string]string{}
		for _, id := range []string{leaver, stayer} {
			if code, body := s.call(t, "POST", "/api/tenants", admin, nil, `{"tenant_id":"`+id+`"}`); code != http.StatusOK {
				t.Fatalf("create %s = %d %v", id, code, body)
			}
			fixtures[id], secrets[id] = s.lifecycleFixture(t, id)
		}
		leaverAdmin := s.token(t, leaver, "admin")

		// Only the tenant's admins (and platform admins) export it.
		for who, tok := range map[string]string{
			"a user of the tenant":   s.token(t, leaver, "user"),
			"another tenant's admin": s.token(t, stayer, "admin"),
		} {
			if code, body := s.call(t, "POST", "/api/tenants/"+leaver+"/exports", tok, nil, `{}`); code != http.StatusForbidden {
				t.Fatalf("export by %s = %d %v, want 403", who, code, body)
			}
		}

		exportID := s.finishedExport(t, leaverAdmin, leaver)
		files := s.downloadExport(t, leaverAdmin, leaver, exportID)
		for kind, want := range fixtures[leaver] {
			if !strings.Contains(string(files[kind]), want) {
				t.Errorf("archive file %s lacks %q (files: %v)", kind, want, keys(files))
			}
		}
		for name, f := range files {
			if bytes.Contains(f, []byte(secrets[leaver])) {
				t.Fatalf("archive file %s holds the API key's secret", name)
			}
			for _, other := range fixtures[stayer] {
				if strings.Contains(string(f), other) {
					t.Fatalf("the archive of %s holds %s's %q", leaver, stayer, other)
				}
			}
		}

		// Offboarding needs the export, or the explicit override.
		code, body := s.call(t, "POST", "/api/tenants/"+leaver+":offboard", admin, nil, `{"reason":"contract ended"}`)
		if code != http.StatusPreconditionFailed && code != http.StatusBadRequest || errReason(body) != "EXPORT_REQUIRED" {
			t.Fatalf("offboard without export = %d %v, want EXPORT_REQUIRED", code, body)
		}
		if code, body := s.call(t, "POST", "/api/tenants/"+leaver+":offboard", leaverAdmin, nil,
			`{"reason":"bye","export_id":"`+exportID+`"}`); code != http.StatusForbidden {
			t.Fatalf("offboard by the tenant's own admin = %d %v, want 403", code, body)
		}
		code, body = s.call(t, "POST", "/api/tenants/"+leaver+":offboard", admin, nil,
			`{"reason":"contract ended","export_id":"`+exportID+`"}`)
		if code != http.StatusOK || dig(body, "tenant", "state") != "offboarding" {
			t.Fatalf("offboard = %d %v", code, body)
		}
		erasure := s.waitErasure(t, admin, leaver)
		if code, body := s.call(t, "GET", "/api/tenants/"+leaver, admin, nil, ""); code != http.StatusOK || dig(body, "tenant", "state") != "deleted" {
			t.Fatalf("tenant after erasure = %d %v", code, body)
		}
		// Refused within the state cache's time (the queue may still hold
		// the state it read at the fixture's enqueue).
		for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
			code, body := s.call(t, "POST", "/api/queue/enqueue", s.token(t, leaver, "user"), nil, `{"type":"report_gen","payload":{}}`)
			if code >= 400 && code < 500 && errReason(body) == identity.ReasonTenantNotActive {
				break
			}
			if code != http.StatusOK || time.Since(start) > identity.TenantStateCacheTTL+2*time.Second {
				t.Fatalf("a deleted tenant's write = %d %v, want %s", code, body, identity.ReasonTenantNotActive)
			}
		}

		// The tenant's log is reduced to its tombstone, and still verifies.
		code, body = s.call(t, "GET", "/api/audit/chain?limit=10", admin, map[string]string{"X-Tenant-ID": leaver}, "")
		if code != http.StatusOK || dig(body, "verification", "valid") != true || !strings.Contains(fmt.Sprint(body["entries"]), "tenant.erased") {
			t.Fatalf("erased tenant's log = %d %v", code, body)
		}

		kept := map[string]bool{}
		for _, svc := range erasure["services"].([]any) {
			sm := svc.(map[string]any)
			if sm["done"] != true {
				t.Fatalf("service %v not done: %v", sm["service"], sm)
			}
			kinds, _ := sm["kinds"].([]any)
			for _, k := range kinds {
				km := k.(map[string]any)
				if km["rule"] == "keep" {
					kept[fmt.Sprint(sm["service"], ".", km["kind"])] = true
				}
			}
		}
		// Access decisions are an access log, written after every call that
		// names the tenant (the erasure's own, reported by the other services
		// in batches, and the refused write above): the erasure deletes them,
		// later ones age out with --decision-retention (docs/operations.md).
		kept["tenancy.decisions"], kept["tenancy.decision_counts"] = true, true
		left := 0
		for _, svc := range devstack.Services() {
			for table, rows := range tenantdatatest.Residue(t, storetest.Open(t, s.ownerURL[svc.Name]), leaver) {
				if kept[svc.Name+"."+table] {
					continue
				}
				left++
				t.Errorf("after erasure %s.%s still holds %q in %d rows", svc.Name, table, leaver, rows)
			}
		}
		if left == 0 {
			t.Logf("no table outside the kept kinds %v holds %q", keys(kept), leaver)
		}
		// Pseudonymised financial records are there, under the pseudonym.
		pseudonym, _ := erasure["pseudonym"].(string)
		if !strings.HasPrefix(pseudonym, "erased-") || tenantdatatest.Residue(t, storetest.Open(t, s.ownerURL["finops"]), pseudonym)["payments"] == 0 {
			t.Fatalf("pseudonym %q: finops keeps no payment under it", pseudonym)
		}

		// The other tenant is untouched: its export still has everything.
		stayerAdmin := s.token(t, stayer, "admin")
		files = s.downloadExport(t, stayerAdmin, stayer, s.finishedExport(t, stayerAdmin, stayer))
		for kind, want := range fixtures[stayer] {
			if !strings.Contains(string(files[kind]), want) {
				t.Errorf("after %s left, %s's archive file %s lacks %q", leaver, stayer, kind, want)
			}
		}
	})
}

// lifecycleFixture creates data of tenant in every service through the
// gateway and returns, by archive file, a value that must appear in it,
// and the secret of the API key it made (which no export may show).
func (s *suite) lifecycleFixture(t *testing.T, tenant string) (map[string]string, string) {
	t.Helper()
	user, admin := s.token(t, tenant, "user"), s.token(t, tenant, "admin")
	want := map[string]string{}
	must := func(what string) func(int, map[string]any) map[string]any {
		return func(code int, body map[string]any) map[string]any {
			t.Helper()
			if code != http.StatusOK {
				t.Fatalf("%s for %s = %d %v", what, tenant, code, body)
			}
			return body
		}
	}
	job := must("enqueue")(s.call(t, "POST", "/api/queue/enqueue", user, nil, `{"type":"report_gen","payload":{"fixture":"job-`+tenant+`"}}`))
	want["queue/jobs.jsonl"] = fmt.Sprint(job["job_id"])
	key := must("api key")(s.call(t, "POST", "/api/tenants/"+tenant+"/api-keys", admin, nil, `{"name":"ci-`+tenant+`","roles":["admin"]}`))
	want["tenancy/api_keys.jsonl"] = "ci-" + tenant
	// ep_live_<26-character key id>_<secret>: the id is exported, the
	// secret never.
	whole, _ := key["secret"].(string)
	if len(whole) < len("ep_live_")+27+40 {
		t.Fatalf("api key answer %v: no secret", key)
	}
	secret := whole[len("ep_live_")+27:]
	must("audit")(s.call(t, "POST", "/api/audit/entries", user, nil,
		`{"entries":[{"event_type":"fixture.made","user":"u-`+tenant+`","action":"make","resource":"doc/`+tenant+`","severity":"low"}]}`))
	want["audit/log.jsonl"] = "doc/" + tenant
	ref := must("referral")(s.call(t, "POST", "/api/growth/referral/create", user, nil, `{"referrer_id":"ref-`+tenant+`","campaign":"leave"}`))
	code, _ := dig(ref, "referral_code").(string)
	want["growth/referrals.jsonl"] = code
	must("conversion")(s.call(t, "POST", "/api/growth/referral/events", user, nil,
		`{"referral_code":"`+code+`","type":"conversion","event_id":"conv-`+tenant+`","customer_id":"cust-`+tenant+`","revenue":100}`))
	want["growth/referral_events.jsonl"] = "conv-" + tenant
	paid := stripeCharge("evt_"+strings.ReplaceAll(tenant, "-", "_"), "charge.succeeded", 4200, 0, tenant)
	must("stripe")(s.post(t, "/api/finops/stripe/webhook", paid, map[string]string{"Stripe-Signature": stripeSign(paid, time.Now())}))
	// The payment row is keyed by the charge (the same in both fixtures),
	// the event by its id.
	want["finops/stripe_events.jsonl"] = "evt_" + strings.ReplaceAll(tenant, "-", "_")
	return want, secret
}

// finishedExport starts an export of tenant and waits until it succeeds.
func (s *suite) finishedExport(t *testing.T, token, tenant string) string {
	t.Helper()
	code, body := s.call(t, "POST", "/api/tenants/"+tenant+"/exports", token, nil, `{}`)
	id, _ := dig(body, "export", "export_id").(string)
	if code != http.StatusOK || id == "" {
		t.Fatalf("export %s = %d %v", tenant, code, body)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body = s.call(t, "GET", "/api/tenants/"+tenant+"/exports/"+id, token, nil, "")
		switch state := dig(body, "export", "state"); {
		case code != http.StatusOK || state == "EXPORT_STATE_FAILED" || state == "failed":
			t.Fatalf("export %s = %d %v", id, code, body)
		case state == "EXPORT_STATE_SUCCEEDED" || state == "succeeded":
			return id
		case time.Now().After(deadline):
			t.Fatalf("export %s not done after 60s: %v", id, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// downloadExport fetches an export's archive, checks every file against
// the manifest's size and SHA-256, and returns the files by name.
func (s *suite) downloadExport(t *testing.T, token, tenant, id string) map[string][]byte {
	t.Helper()
	req, _ := http.NewRequest("GET", s.GatewayURL+"/api/tenants/"+tenant+"/exports/"+id+"/archive", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/gzip" {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("archive = %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	var order []string
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("archive: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], order = b, append(order, h.Name)
	}
	if len(order) == 0 || order[0] != "manifest.json" {
		t.Fatalf("archive files %v: want manifest.json first", order)
	}
	var manifest struct {
		TenantID string `json:"tenant_id"`
		ExportID string `json:"export_id"`
		Files    []struct {
			Name   string `json:"name"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || manifest.TenantID != tenant || manifest.ExportID != id {
		t.Fatalf("manifest %s: %v", files["manifest.json"], err)
	}
	if len(manifest.Files) != len(files)-1 {
		t.Fatalf("manifest names %d files, the archive has %d", len(manifest.Files), len(files)-1)
	}
	for _, f := range manifest.Files {
		sum := sha256.Sum256(files[f.Name])
		if int64(len(files[f.Name])) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Fatalf("%s: %d bytes, sha256 %x; the manifest says %d, %s", f.Name, len(files[f.Name]), sum, f.Size, f.SHA256)
		}
	}
	if dir := os.Getenv("ECHOPILOT_E2E_KEEP_EXPORT"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, tenant+"-"+id+".json"), files["manifest.json"], 0o644)
	}
	return files
}

// waitErasure waits until tenant's erasure is done and returns it.
func (s *suite) waitErasure(t *testing.T, token, tenant string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, body := s.call(t, "GET", "/api/tenants/"+tenant+"/erasure", token, nil, "")
		e, _ := body["erasure"].(map[string]any)
		switch state := fmt.Sprint(e["state"]); {
		case code != http.StatusOK:
			t.Fatalf("erasure = %d %v", code, body)
		case state == "ERASURE_STATE_DONE" || state == "done":
			return e
		case time.Now().After(deadline):
			t.Fatalf("erasure not done after 90s: %v", body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
