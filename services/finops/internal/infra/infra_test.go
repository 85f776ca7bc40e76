package infra_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/netguard"
	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/infra"
)

var (
	day0 = domain.DayOf(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC))
	rule = infra.Rule{Label: "tenant", NamespacePrefix: "echopilot-"}
)

const focusCSV = `BilledCost,EffectiveCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,ResourceId,ServiceName,ServiceCategory,Tags
9,1.50,USD,2026-03-10T00:00:00Z,2026-03-10T01:00:00Z,i-1,EC2,Compute,"{""tenant"":""acme""}"
9,0.25,USD,2026-03-10T05:00:00Z,2026-03-10T06:00:00Z,db-1,RDS,Databases,"{""tenant"":""acme""}"
9,2.000001,USD,2026-03-10T00:00:00Z,2026-03-11T00:00:00Z,i-2,EC2,Compute,"{""namespace"":""echopilot-globex""}"
9,0.7,USD,2026-03-10T00:00:00Z,2026-03-10T01:00:00Z,i-3,EC2,Compute,"{""namespace"":""kube-system""}"
9,-0.10,USD,2026-03-10T00:00:00Z,2026-03-10T01:00:00Z,credit,EC2,Compute,
9,3,USD,2026-03-10T12:00:00Z,2026-03-11T12:00:00Z,i-4,EC2,Compute,"{""tenant"":""acme""}"
`

func costsOf(t *testing.T, read func(io.Reader, infra.Rule, *infra.Sums) error, in string) []domain.InfraCost {
	t.Helper()
	s := infra.NewSums()
	if err := read(strings.NewReader(in), rule, s); err != nil {
		t.Fatalf("read: %v", err)
	}
	return s.Costs()
}

func TestReadFOCUS(t *testing.T) {
	got := costsOf(t, infra.ReadFOCUS, focusCSV)
	want := []domain.InfraCost{
		{Day: day0, TenantID: "", ComputeMicros: 600_000},                                // kube-system 0.70 less the credit
		{Day: day0, TenantID: "acme", ComputeMicros: 3_000_000, DatabaseMicros: 250_000}, // 1.50 + half of 3
		{Day: day0, TenantID: "globex", ComputeMicros: 2_000_001},
		{Day: day0 + 1, TenantID: "acme", ComputeMicros: 1_500_000},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("costs\n got %+v\nwant %+v", got, want)
	}
}

func TestReadFOCUSBilledCostWithoutEffective(t *testing.T) {
	got := costsOf(t, infra.ReadFOCUS, "ChargePeriodStart,ChargePeriodEnd,BilledCost,Tags\n"+
		"2026-03-10T00:00:00Z,2026-03-10T01:00:00Z,1.25,\"{\"\"tenant\"\":\"\"acme\"\"}\"\n")
	want := []domain.InfraCost{{Day: day0, TenantID: "acme", ComputeMicros: 1_250_000}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// A period over several days is split in proportion, the parts summing to
// the whole.
func TestSplitOverDays(t *testing.T) {
	s := infra.NewSums()
	start := domain.DayStart(day0).Add(18 * time.Hour)
	if err := s.Add("acme", infra.Compute, start, start.Add(48*time.Hour), 1_000_001); err != nil {
		t.Fatal(err)
	}
	var sum int64
	var parts []int64
	for _, c := range s.Costs() {
		sum += c.ComputeMicros
		parts = append(parts, c.ComputeMicros)
	}
	if sum != 1_000_001 || !slices.Equal(parts, []int64{125_000, 500_000, 375_001}) {
		t.Fatalf("parts %v (sum %d)", parts, sum)
	}
}

func TestReadFOCUSRefuses(t *testing.T) {
	const head = "ChargePeriodStart,ChargePeriodEnd,EffectiveCost,BillingCurrency,Tags\n"
	for name, tc := range map[string]struct{ in, reason string }{
		"empty":      {"", infra.ReasonFormat},
		"no cost":    {"ChargePeriodStart,ChargePeriodEnd\n", infra.ReasonFormat},
		"no period":  {"EffectiveCost\n1\n", infra.ReasonFormat},
		"bad cost":   {head + "2026-03-10T00:00:00Z,2026-03-10T01:00:00Z,1.2.3,USD,\n", infra.ReasonCost},
		"huge cost":  {head + "2026-03-10T00:00:00Z,2026-03-10T01:00:00Z,1e40,USD,\n", infra.ReasonCost},
		"nan":        {head + "2026-03-10T00:00:00Z,2026-03-10T01:00:00Z,NaN,USD,\n", infra.ReasonCost},
		"euro":       {head + "2026-03-10T00:00:00Z,2026-03-10T01:00:00Z,1,EUR,\n", infra.ReasonCurrency},
		"reversed":   {head + "2026-03-10T01:00:00Z,2026-03-10T00:00:00Z,1,USD,\n", infra.ReasonPeriod},
		"too long":   {head + "2026-01-01T00:00:00Z,2026-03-10T00:00:00Z,1,USD,\n", infra.ReasonPeriod},
		"bad time":   {head + "yesterday,2026-03-10T00:00:00Z,1,USD,\n", infra.ReasonPeriod},
		"bad tags":   {head + "2026-03-10T00:00:00Z,2026-03-10T01:00:00Z,1,USD,[1]\n", infra.ReasonFormat},
		"bad tenant": {head + "2026-03-10T00:00:00Z,2026-03-10T01:00:00Z,1,USD,\"{\"\"tenant\"\":\"\"a b\"\"}\"\n", infra.ReasonTenant},
		"short row":  {head + "2026-03-10T00:00:00Z,1\n", infra.ReasonFormat},
		"bare quote": {head + "2026-03-10T00:00:00Z,2026-03-10T01:00:00Z,1,US\"D,\n", infra.ReasonFormat},
	} {
		t.Run(name, func(t *testing.T) {
			err := infra.ReadFOCUS(strings.NewReader(tc.in), rule, infra.NewSums())
			if got := reasonOf(err); got != tc.reason {
				t.Fatalf("error %v: reason %q, want %q", err, got, tc.reason)
			}
		})
	}
}

func reasonOf(err error) string {
	if e, ok := apierr.As(err); ok {
		return e.Reason
	}
	return ""
}

const openCostJSON = `{"code":200,"status":"success","data":[{
 "echopilot-acme/pod-a":{"name":"echopilot-acme/pod-a","properties":{"namespace":"echopilot-acme","labels":{"app":"web"}},
   "window":{"start":"2026-03-10T00:00:00Z","end":"2026-03-11T00:00:00Z"},"cpuCost":1.2,"pvCost":0.5,"totalCost":2.5},
 "batch":{"name":"batch","properties":{"namespace":"jobs","labels":{"tenant":"globex"}},
   "window":{"start":"2026-03-10T00:00:00Z","end":"2026-03-11T00:00:00Z"},"totalCost":1.5e-1},
 "__idle__":{"name":"__idle__","properties":{},
   "window":{"start":"2026-03-10T00:00:00Z","end":"2026-03-11T00:00:00Z"},"totalCost":4}
}]}`

func TestReadOpenCost(t *testing.T) {
	got := costsOf(t, infra.ReadOpenCost, openCostJSON)
	want := []domain.InfraCost{
		{Day: day0, TenantID: "", ComputeMicros: 4_000_000},
		{Day: day0, TenantID: "acme", ComputeMicros: 2_000_000, DatabaseMicros: 500_000},
		{Day: day0, TenantID: "globex", ComputeMicros: 150_000},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("costs\n got %+v\nwant %+v", got, want)
	}
}

func TestReadOpenCostRefuses(t *testing.T) {
	const win = `"window":{"start":"2026-03-10T00:00:00Z","end":"2026-03-11T00:00:00Z"}`
	for name, tc := range map[string]struct{ in, reason string }{
		"not json":    {`hello`, infra.ReasonFormat},
		"array":       {`[]`, infra.ReasonFormat},
		"no data":     {`{"code":200}`, infra.ReasonFormat},
		"error code":  {`{"code":500,"data":[]}`, infra.ReasonFormat},
		"data object": {`{"data":{}}`, infra.ReasonFormat},
		"truncated":   {`{"data":[{"a":{` + win, infra.ReasonFormat},
		"trailing":    {`{"data":[]} {}`, infra.ReasonFormat},
		"bad cost":    {`{"data":[{"a":{` + win + `,"totalCost":"x"}}]}`, infra.ReasonFormat},
		"neg exp":     {`{"data":[{"a":{` + win + `,"totalCost":1e999}}]}`, infra.ReasonCost},
		"no window":   {`{"data":[{"a":{"totalCost":1}}]}`, infra.ReasonPeriod},
		"bad tenant":  {`{"data":[{"a":{"properties":{"namespace":"echopilot-A!"},` + win + `,"totalCost":1}}]}`, infra.ReasonTenant},
	} {
		t.Run(name, func(t *testing.T) {
			err := infra.ReadOpenCost(strings.NewReader(tc.in), rule, infra.NewSums())
			if got := reasonOf(err); got != tc.reason {
				t.Fatalf("error %v: reason %q, want %q", err, got, tc.reason)
			}
		})
	}
}

func TestParseCost(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1_000_000, "0.0000005": 1, "0.0000004": 0, "-0.0000005": -1, "+2.5": 2_500_000,
		"1.5e-1": 150_000, "12E2": 1_200_000_000, ".5": 500_000, "5.": 5_000_000, "1000000000": 1_000_000_000_000_000,
	} {
		if got, err := infra.ParseCost(in); err != nil || got != want {
			t.Errorf("ParseCost(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".", "-", "1,5", "0x10", "1e", "1e999", "1000000000.01", "Inf", " 1", "1e+-2"} {
		if _, err := infra.ParseCost(in); reasonOf(err) != infra.ReasonCost {
			t.Errorf("ParseCost(%q): %v, want %s", in, err, infra.ReasonCost)
		}
	}
}

func TestTooManyEntries(t *testing.T) {
	s := infra.NewSums()
	start := domain.DayStart(day0)
	var err error
	for i := 0; err == nil && i <= infra.MaxEntries; i++ {
		err = s.Add(fmt.Sprintf("t%d", i), infra.Compute, start, start.Add(time.Hour), 1)
	}
	if reasonOf(err) != infra.ReasonTooLarge {
		t.Fatalf("error %v, want %s", err, infra.ReasonTooLarge)
	}
}

// The URL form goes through the outbound guard: a loopback server is
// refused unless the allow-list admits it.
func TestOpenURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/allocation" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, openCostJSON)
	}))
	defer srv.Close()
	ctx := context.Background()
	if _, err := infra.Open(ctx, srv.URL+"/allocation", &netguard.Guard{}, time.Second); !errors.Is(err, infra.ErrSourceRefused) {
		t.Fatalf("without allow-list: %v, want refused", err)
	}
	allow, err := netguard.ParseAllowList("127.0.0.1/32")
	if err != nil {
		t.Fatal(err)
	}
	g := &netguard.Guard{Allow: allow}
	rc, err := infra.Open(ctx, srv.URL+"/allocation?window=1d", g, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	s := infra.NewSums()
	if err := infra.ReadOpenCost(rc, rule, s); err != nil || len(s.Costs()) != 3 {
		t.Fatalf("read: %v, %d costs", err, len(s.Costs()))
	}
	if _, err := infra.Open(ctx, srv.URL+"/missing", g, time.Second); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}
	path := filepath.Join(t.TempDir(), "focus.csv")
	if err := os.WriteFile(path, []byte(focusCSV), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := infra.Open(ctx, path, g, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}
