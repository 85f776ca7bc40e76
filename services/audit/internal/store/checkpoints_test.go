package store_test

import (
	"fmt"
	"testing"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/store"
)

// Every append's checkpoint is kept and listed by size from a size on,
// with its batch's time, and never another tenant's.
func TestIssuedCheckpoints(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			st := store.New(b.Open(t, store.Migrations))
			ctx := t.Context()
			for _, tenant := range []string{"acme", "acme", "globex", "acme", "acme"} {
				if err := st.Append(ctx, []string{tenant}, nil, appendOne); err != nil {
					t.Fatal(err)
				}
			}
			got, err := st.IssuedCheckpoints(ctx, "acme", 2, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].Size != 2 || got[1].Size != 3 || got[0].Note != "note" || got[0].Issued.IsZero() ||
				got[1].Issued.Before(got[0].Issued) {
				t.Fatalf("from 2, two: %+v", got)
			}
			all, err := st.IssuedCheckpoints(ctx, "acme", 0, 100)
			if err != nil || fmt.Sprint(sizes(all)) != "[1 2 3 4]" {
				t.Fatalf("acme's: %v (%v)", sizes(all), err)
			}
			g, err := st.IssuedCheckpoints(ctx, "globex", 0, 100)
			if err != nil || fmt.Sprint(sizes(g)) != "[1]" {
				t.Fatalf("globex's: %v (%v)", sizes(g), err)
			}
			if none, err := st.IssuedCheckpoints(ctx, "acme", 1<<63+5, 100); err != nil || len(none) != 0 {
				t.Fatalf("beyond: %v (%v)", none, err)
			}
		})
	}
}

func sizes(cs []domain.IssuedCheckpoint) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.Size
	}
	return out
}
