package pricing_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/pricing"
)

// A price file is read again only when it changed, and a file that no
// longer parses keeps the table last read whole.
func TestFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prices.json")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	cost := func(f *pricing.File) (bool, int64) {
		r := domain.UsageRecord{Model: "m", InputTokens: 1_000_000, CompletedAt: at}
		f.Price(&r)
		return r.Priced, r.CostMicros
	}
	write(`{"prices": []}`)
	f, err := pricing.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if priced, _ := cost(f); priced {
		t.Fatal("priced by an empty table")
	}
	if changed, err := f.Reload(); changed || err != nil {
		t.Fatalf("reload of an unchanged file: %v, %v", changed, err)
	}
	write(`{"prices": [{"model": "m", "effective_from": "2026-01-01", "input_per_mtok": "0.15", "output_per_mtok": "0"}]}`)
	if changed, err := f.Reload(); !changed || err != nil {
		t.Fatalf("reload of a changed file: %v, %v", changed, err)
	}
	if priced, c := cost(f); !priced || c != 150_000 {
		t.Fatalf("after the change: %v, %d", priced, c)
	}
	write(`{"prices": [{"model": "m"`)
	if changed, err := f.Reload(); changed || err == nil {
		t.Fatalf("reload of a broken file: %v, %v", changed, err)
	}
	if priced, c := cost(f); !priced || c != 150_000 || f.Table().Len() != 1 {
		t.Fatalf("a broken file replaced the table: %v, %d", priced, c)
	}
	if _, err := pricing.LoadFile(path); err == nil {
		t.Fatal("LoadFile of a broken file succeeded")
	}
}
