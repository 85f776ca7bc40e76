package pricing_test

import (
	"strings"
	"testing"

	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/pricing"
)

func TestParseRateCard(t *testing.T) {
	rc, err := pricing.ParseRateCard("0.50", "0.10")
	if err != nil {
		t.Fatal(err)
	}
	if want := (domain.RateCard{ComputeMicrosPerDay: 500_000, DatabaseMicrosPerDay: 100_000}); rc != want {
		t.Errorf("ParseRateCard = %+v, want %+v", rc, want)
	}
	if rc != pricing.DefaultRateCard() {
		t.Errorf("DefaultRateCard = %+v, want %+v", pricing.DefaultRateCard(), rc)
	}
	if _, err := pricing.ParseRateCard("0.5.0", "0.10"); err == nil || !strings.Contains(err.Error(), "compute") {
		t.Errorf("bad compute: error %v, want it to name compute", err)
	}
	if _, err := pricing.ParseRateCard("0.50", "-0.10"); err == nil || !strings.Contains(err.Error(), "database") {
		t.Errorf("bad database: error %v, want it to name database", err)
	}
}
