package pricing_test

import (
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/pricing"
)

// testTable has entries out of order, to show Parse sorts them.
const testTable = `{"prices": [
  {"model": "gpt-4o", "effective_from": "2024-08-06", "input_per_mtok": "2.50", "output_per_mtok": "10.00"},
  {"model": "gpt-4o-mini", "effective_from": "2024-07-18", "input_per_mtok": "0.15", "output_per_mtok": "0.60"},
  {"model": "gpt-4o", "effective_from": "2024-05-13", "input_per_mtok": "5.00", "output_per_mtok": "15.00"},
  {"model": "snap-2025-01-01", "effective_from": "2025-01-01T12:00:00+02:00", "input_per_mtok": "7", "output_per_mtok": "8"},
  {"model": "snap", "effective_from": "2024-01-01", "input_per_mtok": "1", "output_per_mtok": "1"}
]}`

func mustParse(t *testing.T, s string) *pricing.Table {
	t.Helper()
	tab, err := pricing.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestLookup(t *testing.T) {
	tab := mustParse(t, testTable)
	if tab.Len() != 5 {
		t.Errorf("Len = %d, want 5", tab.Len())
	}
	const (
		none   = 0
		first  = 5_000_000 // gpt-4o input before 2024-08-06
		second = 2_500_000 // gpt-4o input from 2024-08-06
		snap   = 1_000_000 // "snap"
		dated  = 7_000_000 // "snap-2025-01-01" itself
		mini   = 150_000   // gpt-4o-mini
	)
	for _, tc := range []struct {
		model, at string
		want      int64 // input µ$/Mtok, none for not ok
		wantModel string
	}{
		{"gpt-4o", "2024-05-12T23:59:59.999999999Z", none, ""},
		{"gpt-4o", "2024-05-13T00:00:00Z", first, "gpt-4o"},
		{"gpt-4o", "2024-05-13T01:00:00+02:00", none, ""}, // 2024-05-12T23:00Z
		{"gpt-4o", "2024-06-30T12:00:00Z", first, "gpt-4o"},
		{"gpt-4o", "2024-08-05T23:59:59.999999999Z", first, "gpt-4o"},
		{"gpt-4o", "2024-08-06T00:00:00Z", second, "gpt-4o"},
		{"gpt-4o", "2030-01-01T00:00:00Z", second, "gpt-4o"},
		{"gpt-4o-mini", "2024-07-18T00:00:00Z", mini, "gpt-4o-mini"},
		// Dated variants fall back to the base name, with its dates.
		{"gpt-4o-2024-08-06", "2024-09-01T00:00:00Z", second, "gpt-4o"},
		{"gpt-4o-2024-05-13", "2024-06-01T00:00:00Z", first, "gpt-4o"},
		{"gpt-4o-mini-2024-07-18", "2024-07-17T00:00:00Z", none, ""},
		{"gpt-4o-mini-2024-07-18", "2025-01-01T00:00:00Z", mini, "gpt-4o-mini"},
		// Not a -YYYY-MM-DD suffix.
		{"gpt-4o-2024-8-6", "2025-01-01T00:00:00Z", none, ""},
		{"gpt-4o-20240806", "2025-01-01T00:00:00Z", none, ""},
		{"gpt-4o-2024-08-0x", "2025-01-01T00:00:00Z", none, ""},
		{"gpt-4o2024-08-06", "2025-01-01T00:00:00Z", none, ""},
		{"-2024-08-06", "2025-01-01T00:00:00Z", none, ""},
		// An exact entry wins, and is never replaced by the base name's.
		{"snap-2025-01-01", "2025-01-01T10:00:00Z", dated, "snap-2025-01-01"},
		{"snap-2025-01-01", "2025-01-01T09:59:59Z", none, ""},
		{"snap-2025-02-01", "2025-03-01T00:00:00Z", snap, "snap"},
		// Exact, case-sensitive, untrimmed names.
		{"GPT-4o", "2025-01-01T00:00:00Z", none, ""},
		{" gpt-4o", "2025-01-01T00:00:00Z", none, ""},
		{"claude", "2025-01-01T00:00:00Z", none, ""},
		{"", "2025-01-01T00:00:00Z", none, ""},
	} {
		p, ok := tab.Lookup(tc.model, date(tc.at))
		switch {
		case tc.want == none && ok:
			t.Errorf("Lookup(%q, %s) = %+v, want not ok", tc.model, tc.at, p)
		case tc.want != none && !ok:
			t.Errorf("Lookup(%q, %s) not ok, want input %d", tc.model, tc.at, tc.want)
		case tc.want != none && (p.InputMicrosPerMTok != tc.want || p.Model != tc.wantModel):
			t.Errorf("Lookup(%q, %s) = %s input %d, want %s input %d", tc.model, tc.at, p.Model, p.InputMicrosPerMTok, tc.wantModel, tc.want)
		}
	}

	p, _ := tab.Lookup("gpt-4o", date("2024-09-01T00:00:00Z"))
	want := pricing.Price{Model: "gpt-4o", EffectiveFrom: date("2024-08-06T00:00:00Z"), InputMicrosPerMTok: 2_500_000, OutputMicrosPerMTok: 10_000_000}
	if p != want || p.EffectiveFrom.Location() != time.UTC {
		t.Errorf("Lookup = %+v, want %+v in UTC", p, want)
	}
	p, _ = tab.Lookup("snap-2025-01-01", date("2026-01-01T00:00:00Z"))
	if !p.EffectiveFrom.Equal(date("2025-01-01T10:00:00Z")) || p.EffectiveFrom.Location() != time.UTC {
		t.Errorf("RFC 3339 effective_from = %v, want 2025-01-01T10:00:00Z in UTC", p.EffectiveFrom)
	}

	var nilTable *pricing.Table
	if _, ok := nilTable.Lookup("gpt-4o", time.Now()); ok || nilTable.Len() != 0 {
		t.Error("nil table has prices")
	}
}

func TestCost(t *testing.T) {
	one := pricing.Price{InputMicrosPerMTok: 1, OutputMicrosPerMTok: 1}
	mini := pricing.Price{InputMicrosPerMTok: 150_000, OutputMicrosPerMTok: 600_000}
	for _, tc := range []struct {
		p       pricing.Price
		in, out int64
		want    int64
	}{
		{one, 500_000, 0, 1}, // 0.5 rounds up
		{one, 499_999, 0, 0},
		{one, 0, 500_000, 1},
		{one, 250_000, 250_000, 1}, // halves of both sides add before rounding
		{one, 1_499_999, 0, 1},
		{one, 1_500_000, 0, 2},
		{one, 0, 0, 0},
		{mini, 1000, 500, 450}, // 1000×0.15 + 500×0.60 µ$
		{mini, 1, 1, 1},        // 0.75 µ$
		{mini, -5, 1000, 600},  // negative tokens count as 0
		{pricing.Price{InputMicrosPerMTok: -1, OutputMicrosPerMTok: 2}, 1_000_000, 1_000_000, 2},
	} {
		if got := tc.p.Cost(tc.in, tc.out); got != tc.want {
			t.Errorf("%+v.Cost(%d, %d) = %d, want %d", tc.p, tc.in, tc.out, got, tc.want)
		}
	}
}

// bigCost is Cost computed with math/big, saturated at MaxInt64.
func bigCost(p pricing.Price, in, out int64) int64 {
	s := new(big.Int).Mul(big.NewInt(in), big.NewInt(p.InputMicrosPerMTok))
	s.Add(s, new(big.Int).Mul(big.NewInt(out), big.NewInt(p.OutputMicrosPerMTok)))
	s.Add(s, big.NewInt(500_000))
	s.Quo(s, big.NewInt(1_000_000))
	if !s.IsInt64() {
		return math.MaxInt64
	}
	return s.Int64()
}

func TestCostLarge(t *testing.T) {
	const maxTok, maxPrice = 1e15, 1e12
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		p       pricing.Price
		in, out int64
	}{
		{pricing.Price{InputMicrosPerMTok: maxPrice, OutputMicrosPerMTok: maxPrice}, maxTok, maxTok}, // 2e21: saturates
		{pricing.Price{InputMicrosPerMTok: 9e9, OutputMicrosPerMTok: 0}, maxTok, maxTok},             // 9e18: fits
		{pricing.Price{InputMicrosPerMTok: 1e11, OutputMicrosPerMTok: 1e11}, 1e13, 1e13},             // products overflow int64
		{pricing.Price{InputMicrosPerMTok: math.MaxInt64, OutputMicrosPerMTok: math.MaxInt64}, math.MaxInt64, math.MaxInt64},
		{pricing.Price{InputMicrosPerMTok: 4_611_686_018_427, OutputMicrosPerMTok: 0}, 2_000_000_000_000_000, 0},
		// Sum exactly 1e6 × 2^64: the quotient's first value past 64 bits.
		{pricing.Price{InputMicrosPerMTok: 1_000_000 << 20}, 1 << 44, 0},
	}
	// Log-uniform sizes, so results both fit and saturate.
	size := func(maxBits int) int64 { return r.Int64N(1 << (1 + r.IntN(maxBits))) }
	for range 10_000 {
		cases = append(cases, struct {
			p       pricing.Price
			in, out int64
		}{
			pricing.Price{InputMicrosPerMTok: size(40), OutputMicrosPerMTok: size(40)}, // up to 1.1e12
			size(50), size(50), // up to 1.1e15
		})
	}
	for _, tc := range cases {
		want := bigCost(tc.p, tc.in, tc.out)
		if got := tc.p.Cost(tc.in, tc.out); got != want {
			t.Fatalf("%+v.Cost(%d, %d) = %d, want %d", tc.p, tc.in, tc.out, got, want)
		}
	}
}

func TestPrice(t *testing.T) {
	tab := mustParse(t, testTable)
	at := date("2024-09-01T00:00:00Z")
	for _, tc := range []struct {
		name       string
		model      string
		in, out    int64
		at         time.Time
		wantPriced bool
		wantCost   int64
	}{
		{"no tokens, unknown model", "claude", 0, 0, at, true, 0},
		{"no tokens, no model", "", 0, 0, at, true, 0},
		{"no tokens, before the first price", "gpt-4o", 0, 0, date("2020-01-01T00:00:00Z"), true, 0},
		{"unknown model", "claude", 100, 10, at, false, 0},
		{"no model", "", 100, 0, at, false, 0},
		{"before the first price", "gpt-4o", 100, 10, date("2024-05-01T00:00:00Z"), false, 0},
		{"priced", "gpt-4o", 1000, 100, at, true, 3500},                                              // 1000×2.50 + 100×10.00
		{"priced at the older price", "gpt-4o", 1000, 100, date("2024-06-01T00:00:00Z"), true, 6500}, // 1000×5 + 100×15
		{"dated variant", "gpt-4o-mini-2024-07-18", 1_000_000, 0, at, true, 150_000},
		{"output only", "gpt-4o-mini", 0, 1_000_000, at, true, 600_000},
	} {
		// Start from a stale priced state: Price must overwrite it.
		r := domain.UsageRecord{Model: tc.model, InputTokens: tc.in, OutputTokens: tc.out, CompletedAt: tc.at, Priced: !tc.wantPriced, CostMicros: 99}
		tab.Price(&r)
		if r.Priced != tc.wantPriced || r.CostMicros != tc.wantCost {
			t.Errorf("%s: Priced=%v CostMicros=%d, want %v %d", tc.name, r.Priced, r.CostMicros, tc.wantPriced, tc.wantCost)
		}
	}
}

func TestParseErrors(t *testing.T) {
	const ok = `{"model": "m", "effective_from": "2024-01-01", "input_per_mtok": "1", "output_per_mtok": "2"}`
	for _, tc := range []struct {
		name, json string
		want       []string // substrings of the error
	}{
		{"unknown entry field", `{"prices": [` + ok + `, {"model": "m", "effective_from": "2024-02-01", "input_per_mtok": "1", "output_per_mtok": "2", "cached_per_mtok": "1"}]}`,
			[]string{"prices[1]", `"cached_per_mtok"`}},
		{"unknown top-level field", `{"prices": [], "currency": "usd"}`, []string{`"currency"`}},
		{"duplicate", `{"prices": [` + ok + `, {"model": "other", "effective_from": "2024-01-01", "input_per_mtok": "1", "output_per_mtok": "2"},
			{"model": "m", "effective_from": "2024-01-01T00:00:00Z", "input_per_mtok": "3", "output_per_mtok": "4"}]}`,
			[]string{"prices[2]", "prices[0]", `"m"`}},
		{"duplicate in another zone", `{"prices": [` + ok + `, {"model": "m", "effective_from": "2024-01-01T01:00:00+01:00", "input_per_mtok": "3", "output_per_mtok": "4"}]}`,
			[]string{"prices[1]", "prices[0]"}},
		{"impossible date", `{"prices": [` + ok + `, {"model": "m", "effective_from": "2024-02-30", "input_per_mtok": "1", "output_per_mtok": "2"}]}`,
			[]string{"prices[1].effective_from", "2024-02-30"}},
		{"slashed date", `{"prices": [{"model": "m", "effective_from": "2024/01/01", "input_per_mtok": "1", "output_per_mtok": "2"}]}`,
			[]string{"prices[0].effective_from"}},
		{"timestamp without zone", `{"prices": [{"model": "m", "effective_from": "2024-01-01T00:00:00", "input_per_mtok": "1", "output_per_mtok": "2"}]}`,
			[]string{"prices[0].effective_from"}},
		{"missing date", `{"prices": [{"model": "m", "input_per_mtok": "1", "output_per_mtok": "2"}]}`,
			[]string{"prices[0].effective_from", "empty"}},
		{"empty model", `{"prices": [` + ok + `, {"model": "", "effective_from": "2024-01-01", "input_per_mtok": "1", "output_per_mtok": "2"}]}`,
			[]string{"prices[1].model", "empty"}},
		{"padded model", `{"prices": [{"model": "gpt-4o ", "effective_from": "2024-01-01", "input_per_mtok": "1", "output_per_mtok": "2"}]}`,
			[]string{"prices[0].model", "white space"}},
		{"number amount", `{"prices": [{"model": "m", "effective_from": "2024-01-01", "input_per_mtok": 0.15, "output_per_mtok": "2"}]}`,
			[]string{"prices[0].input_per_mtok", "string"}},
		{"negative amount", `{"prices": [{"model": "m", "effective_from": "2024-01-01", "input_per_mtok": "1", "output_per_mtok": "-2"}]}`,
			[]string{"prices[0].output_per_mtok", `"-2"`}},
		{"too precise", `{"prices": [{"model": "m", "effective_from": "2024-01-01", "input_per_mtok": "0.0000001", "output_per_mtok": "2"}]}`,
			[]string{"prices[0].input_per_mtok", "fraction digits"}},
		{"missing amount", `{"prices": [{"model": "m", "effective_from": "2024-01-01", "input_per_mtok": "1"}]}`,
			[]string{"prices[0].output_per_mtok", "empty"}},
		{"null entry", `{"prices": [null]}`, []string{"prices[0].model"}},
		{"no prices key", `{}`, []string{`"prices"`}},
		{"null prices", `{"prices": null}`, []string{`"prices"`}},
		{"prices not a list", `{"prices": {}}`, []string{"prices"}},
		{"trailing data", `{"prices": []} {"prices": []}`, []string{"after"}},
		{"not JSON", `model,price`, []string{"price table"}},
		{"empty input", ``, []string{"price table"}},
	} {
		_, err := pricing.Parse(strings.NewReader(tc.json))
		if err == nil {
			t.Errorf("%s: Parse succeeded, want an error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
}

func TestParseEmptyTable(t *testing.T) {
	tab := mustParse(t, `{"prices": []}`)
	if tab.Len() != 0 {
		t.Errorf("Len = %d", tab.Len())
	}
	r := domain.UsageRecord{Model: "gpt-4o", InputTokens: 1, CompletedAt: date("2025-01-01T00:00:00Z")}
	if tab.Price(&r); r.Priced {
		t.Error("empty table priced a record with tokens")
	}
}

func TestLoad(t *testing.T) {
	tab, err := pricing.Load(filepath.Join("testdata", "prices.json"))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := tab.Lookup("gpt-4o", date("2024-08-06T00:00:00Z")); !ok || p.OutputMicrosPerMTok != 10_000_000 {
		t.Errorf("Lookup(gpt-4o) = %+v, %v", p, ok)
	}
	if p, ok := tab.Lookup("local-llama", date("2024-08-06T00:00:00Z")); !ok || p.Cost(1e6, 1e6) != 0 {
		t.Errorf("free model: %+v, %v", p, ok)
	}

	if _, err := pricing.Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"prices": [{"model": ""}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pricing.Load(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "prices[0].model") {
		t.Errorf("Load(bad) error = %v, want the path and the entry", err)
	}
}

func TestDefault(t *testing.T) {
	tab := pricing.Default()
	if tab != pricing.Default() {
		t.Error("Default parses twice")
	}
	at := date("2025-06-01T00:00:00Z")
	for _, m := range []string{"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini", "gpt-4o-mini-2024-07-18"} {
		if p, ok := tab.Lookup(m, at); !ok || p.InputMicrosPerMTok <= 0 || p.OutputMicrosPerMTok < p.InputMicrosPerMTok {
			t.Errorf("Default().Lookup(%q) = %+v, %v", m, p, ok)
		}
	}
	// The end-to-end tests rely on these exact numbers.
	want := pricing.Price{Model: "echopilot-test", EffectiveFrom: date("2020-01-01T00:00:00Z"), InputMicrosPerMTok: 1_000_000, OutputMicrosPerMTok: 2_000_000}
	if p, ok := tab.Lookup("echopilot-test", date("2020-01-01T00:00:00Z")); !ok || p != want {
		t.Errorf("echopilot-test = %+v, %v; want %+v", p, ok, want)
	}
	// A dated snapshot that kept its launch price is not priced as its alias.
	if p, _ := tab.Lookup("gpt-4o-2024-05-13", at); p.InputMicrosPerMTok != 5_000_000 {
		t.Errorf("gpt-4o-2024-05-13 input = %d, want 5000000", p.InputMicrosPerMTok)
	}
}
