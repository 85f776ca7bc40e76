package store_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/echopilot/echopilot/platform/store"
)

func TestStrings(t *testing.T) {
	db, err := store.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := store.Strings(db.QueryContext(t.Context(), "SELECT 'b' UNION ALL SELECT 'a' ORDER BY 1"))
	if err != nil || !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Strings = %v, %v", got, err)
	}
	boom := errors.New("boom")
	if _, err := store.Strings(nil, boom); !errors.Is(err, boom) {
		t.Fatalf("the query's error was not passed on: %v", err)
	}
	if _, err := store.Strings(db.QueryContext(t.Context(), "SELECT 1, 2")); err == nil {
		t.Fatal("two columns were read as one")
	}
}
