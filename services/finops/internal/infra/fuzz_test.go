package infra_test

import (
	"io"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/services/finops/internal/infra"
)

// Any input is read or refused with one of the package's reasons, never a
// panic; what is read charges only valid tenants (or unallocated).
func fuzzReader(f *testing.F, read func(io.Reader, infra.Rule, *infra.Sums) error, seeds ...string) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s := infra.NewSums()
		err := read(strings.NewReader(in), rule, s)
		if err != nil {
			switch reasonOf(err) {
			case infra.ReasonFormat, infra.ReasonCost, infra.ReasonPeriod, infra.ReasonCurrency, infra.ReasonTenant, infra.ReasonTooLarge:
				return
			}
			t.Fatalf("error without a reason: %v", err)
		}
		for _, c := range s.Costs() {
			if c.TenantID != "" && !identity.ValidTenant(c.TenantID) {
				t.Fatalf("charged %q", c.TenantID)
			}
		}
	})
}

func FuzzReadFOCUS(f *testing.F) { fuzzReader(f, infra.ReadFOCUS, focusCSV) }

func FuzzReadOpenCost(f *testing.F) { fuzzReader(f, infra.ReadOpenCost, openCostJSON) }

// ParseCost never panics and rounds to within half a micro-dollar.
func FuzzParseCost(f *testing.F) {
	for _, s := range []string{"1.5", "-0.0000005", "1e-7", "9e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := infra.ParseCost(s)
		if err != nil {
			if reasonOf(err) != infra.ReasonCost {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if v > 1e15 || v < -1e15 {
			t.Fatalf("%q = %d, out of range", s, v)
		}
	})
}
