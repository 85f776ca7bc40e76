package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/store"
)

var day0 = domain.DayOf(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC))

const focusCSV = `ChargePeriodStart,ChargePeriodEnd,EffectiveCost,BilledCost,ServiceCategory,ResourceId,Tags
2026-03-10T00:00:00Z,2026-03-11T00:00:00Z,1.50,2,Compute,i-1,"{""tenant"":""acme""}"
2026-03-10T00:00:00Z,2026-03-11T00:00:00Z,0.40,0.4,Databases,db-1,"{""namespace"":""echopilot-globex""}"
2026-03-10T00:00:00Z,2026-03-11T00:00:00Z,0.25,0.25,Compute,lb-1,
`

const openCost = `{"code":200,"data":[{"acme":{"name":"acme","properties":{"namespace":"echopilot-acme"},
 "window":{"start":"2026-03-11T00:00:00Z","end":"2026-03-12T00:00:00Z"},"totalCost":3,"pvCost":1}}]}`

// database is a migrated finops database of b; it returns the service's URL.
func database(t *testing.T, b storetest.Backend) (string, *store.Store) {
	t.Helper()
	migrateURL, appURL := b.NewDB(t)
	owner := storetest.Open(t, migrateURL)
	if err := owner.Migrate(t.Context(), store.Migrations); err != nil {
		t.Fatal(err)
	}
	return appURL, store.New(storetest.Open(t, appURL))
}

func runImport(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImport(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			url, st := database(t, b)
			file := writeFile(t, "focus.csv", focusCSV)
			args := []string{"--database-url", url, "--format", "focus", "--tenant-label", "tenant", "--namespace-prefix", "echopilot-", file}
			for range 2 { // idempotent
				code, out, errOut := runImport(t, args...)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				var rep Report
				if err := json.Unmarshal([]byte(out), &rep); err != nil {
					t.Fatal(err)
				}
				if rep.Tenants != 2 || rep.AllocatedMicros != 1_900_000 || rep.UnallocatedMicros != 250_000 || len(rep.Days) != 1 || rep.Days[0] != "2026-03-10" {
					t.Fatalf("report %+v", rep)
				}
			}
			days, err := st.InfraDays(t.Context(), domain.Days{From: day0 - 5, To: day0 + 5})
			if err != nil {
				t.Fatal(err)
			}
			if len(days) != 1 || days[0].ComputeMicros != 1_750_000 || days[0].DatabaseMicros != 400_000 {
				t.Fatalf("infra days %+v", days)
			}
			got, err := st.Totals(t.Context(), domain.Scope{Tenant: "globex"}, domain.Days{From: day0, To: day0}, domain.RateCard{ComputeMicrosPerDay: 1, DatabaseMicrosPerDay: 1})
			if err != nil || got.AllocDatabaseMicros != 400_000 || got.AllocComputeMicros != 0 {
				t.Fatalf("globex %+v %v", got, err)
			}

			// Refused input writes nothing and says why.
			bad := writeFile(t, "bad.csv", focusCSV+"2026-03-12T00:00:00Z,2026-03-12T01:00:00Z,abc,1,Compute,x,\n")
			code, _, errOut := runImport(t, "--database-url", url, "--format", "focus", "--tenant-label", "tenant", bad)
			if code != 1 || !strings.Contains(errOut, "INFRA_COST_INVALID") || !strings.Contains(errOut, "line 5") {
				t.Fatalf("bad input: exit %d: %s", code, errOut)
			}
			if days, _ := st.InfraDays(t.Context(), domain.Days{From: day0 + 2, To: day0 + 2}); len(days) != 0 {
				t.Fatalf("a refused import wrote %+v", days)
			}

			// The URL form, through the outbound guard.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, openCost) }))
			defer srv.Close()
			api := []string{"--database-url", url, "--format", "opencost", "--namespace-prefix", "echopilot-", srv.URL + "/allocation?window=1d"}
			if code, _, errOut := runImport(t, api...); code != 2 || !strings.Contains(errOut, "refused by the outbound guard") {
				t.Fatalf("loopback without allow-list: exit %d: %s", code, errOut)
			}
			if code, _, errOut := runImport(t, append([]string{"--outbound-allow", "127.0.0.1/32"}, api...)...); code != 0 {
				t.Fatalf("allowed: exit %d: %s", code, errOut)
			}
			days, err = st.InfraDays(t.Context(), domain.Days{From: day0 + 1, To: day0 + 1})
			if err != nil || len(days) != 1 || days[0].ComputeMicros != 2_000_000 || days[0].DatabaseMicros != 1_000_000 {
				t.Fatalf("opencost day %+v %v", days, err)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--format", "xml", "--tenant-label", "t", "f"},
		{"--format", "focus", "f"},
		{"--format", "focus", "--tenant-label", "t", "--database-url", "", "f"},
		{"--format", "focus", "--tenant-label", "t", "--dry-run", "--outbound-allow", "not a cidr!", "f"},
	} {
		if code, _, _ := runImport(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	// --dry-run needs no database.
	code, out, errOut := runImport(t, "--dry-run", "--format", "focus", "--tenant-label", "tenant", writeFile(t, "f.csv", focusCSV))
	if code != 0 || !strings.Contains(out, `"dry_run": true`) {
		t.Fatalf("dry run: exit %d %s %s", code, out, errOut)
	}
}
