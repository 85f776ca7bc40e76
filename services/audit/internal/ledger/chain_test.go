package ledger_test

import (
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

func TestChainValid(t *testing.T) {
	es := genChain(t, "acme", 100)
	c, err := check(es)
	if err != nil {
		t.Fatal(err)
	}
	if c.Checked() != 100 || c.Err() != nil {
		t.Fatalf("Checked = %d, Err = %v", c.Checked(), c.Err())
	}
	// LastSum is the raw hash of the entry just added.
	c = ledger.NewChainChecker()
	for _, e := range es[:10] {
		if err := c.Add(e); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(c.LastSum()[:]); got != e.Hash {
			t.Fatalf("LastSum of %d = %s, hash %s", e.Seq, got, e.Hash)
		}
	}
	// The chain checker needs no allocation per entry.
	allocs := testing.AllocsPerRun(5, func() { check(es) })
	if allocs > 5 {
		t.Errorf("%v allocations for 100 entries", allocs)
	}
}

func TestChainTamper(t *testing.T) {
	cases := []struct {
		name   string
		tamper func([]ledger.Entry) []ledger.Entry
		seq    uint64
		reason string
	}{
		{"edit a field of 50", func(es []ledger.Entry) []ledger.Entry {
			es[49].User = "mallory"
			return es
		}, 50, "hash mismatch: entry altered"},
		{"edit the hash of 50", func(es []ledger.Entry) []ledger.Entry {
			es[49].Hash = strings.Repeat("0", 64)
			return es
		}, 50, "hash mismatch: entry altered"},
		{"upper-case hash of 50", func(es []ledger.Entry) []ledger.Entry {
			es[49].Hash = strings.ToUpper(es[49].Hash)
			return es
		}, 50, "hash mismatch: entry altered"},
		{"short hash of 50", func(es []ledger.Entry) []ledger.Entry {
			es[49].Hash = es[49].Hash[:63]
			return es
		}, 50, "hash mismatch: entry altered"},
		{"edit and re-hash 50 alone", func(es []ledger.Entry) []ledger.Entry {
			es[49].User = "mallory"
			es[49].Hash = ledger.ComputeHash(es[49])
			return es
		}, 51, "broken link"},
		{"delete 50", func(es []ledger.Entry) []ledger.Entry {
			return slices.Delete(es, 49, 50)
		}, 50, "missing entry"},
		{"delete 1", func(es []ledger.Entry) []ledger.Entry {
			return es[1:]
		}, 1, "missing entry"},
		{"swap 40 and 41", func(es []ledger.Entry) []ledger.Entry {
			es[39], es[40] = es[40], es[39]
			return es
		}, 40, "missing entry"},
		{"repeat 30", func(es []ledger.Entry) []ledger.Entry {
			return slices.Insert(es, 30, es[29])
		}, 31, "out of order"},
		{"delete 50 and renumber the rest", func(es []ledger.Entry) []ledger.Entry {
			es = slices.Delete(es, 49, 50)
			for i := 49; i < len(es); i++ {
				es[i].Seq--
			}
			return es
		}, 50, "hash mismatch"},
		{"timestamp decreased at 70 (re-hashed)", func(es []ledger.Entry) []ledger.Entry {
			es[69].TS = es[68].TS.Add(-time.Microsecond)
			relink(es, 69)
			return es
		}, 70, "timestamp decreased"},
		{"first entry not genesis (re-hashed)", func(es []ledger.Entry) []ledger.Entry {
			es[0].PrevHash = strings.Repeat("0", 64)
			es[0].Hash = ledger.ComputeHash(es[0])
			relink(es, 1)
			return es
		}, 1, "broken link"},
		{"entry of another tenant (re-hashed)", func(es []ledger.Entry) []ledger.Entry {
			es[20].TenantID = "other"
			relink(es, 20)
			return es
		}, 21, "tenant mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			es := c.tamper(genChain(t, "acme", 100))
			cc, err := check(es)
			var brk *ledger.Break
			if !errors.As(err, &brk) {
				t.Fatalf("got %v, want a *Break", err)
			}
			if brk.Seq != c.seq || !strings.HasPrefix(brk.Reason, c.reason) {
				t.Fatalf("got %v, want entry %d: %s...", brk, c.seq, c.reason)
			}
			if cc.Checked() != c.seq-1 {
				t.Errorf("Checked = %d, want %d", cc.Checked(), c.seq-1)
			}
			// The first break sticks, whatever comes next.
			if again := cc.Add(es[0]); again != err || cc.Err() != brk {
				t.Errorf("after the break Add returned %v", again)
			}
			if !strings.HasPrefix(err.Error(), "entry ") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}

	// A suffix rewritten and re-hashed from 60 on is a valid chain: only the
	// Merkle root against an earlier checkpoint shows it (TestExportTamper).
	es := genChain(t, "acme", 100)
	for i := 59; i < 100; i++ {
		es[i].Details = `{"rewritten":true}`
	}
	relink(es, 59)
	if _, err := check(es); err != nil {
		t.Fatalf("rewritten suffix: %v", err)
	}
	// So is a truncated one.
	if _, err := check(genChain(t, "acme", 100)[:80]); err != nil {
		t.Fatalf("truncated: %v", err)
	}
}

func TestLink(t *testing.T) {
	first := ledger.Entry{TenantID: "acme", Seq: 1, TS: t0.Add(1500 * time.Nanosecond).In(time.FixedZone("X", 3600)),
		EventType: "e", Severity: "low", Details: ` {"b":1, "a":2} `}
	e1, err := ledger.Link(nil, first)
	if err != nil {
		t.Fatal(err)
	}
	if e1.PrevHash != ledger.Genesis || e1.Hash != ledger.ComputeHash(e1) || e1.Details != `{"a":2,"b":1}` {
		t.Errorf("first entry: %+v", e1)
	}
	if !e1.TS.Equal(t0.Add(time.Microsecond)) || e1.TS.Location() != time.UTC {
		t.Errorf("TS not normalised: %v", e1.TS)
	}
	e2, err := ledger.Link(&e1, ledger.Entry{TenantID: "acme", Seq: 2, TS: e1.TS, Severity: "high"})
	if err != nil {
		t.Fatal(err)
	}
	if e2.PrevHash != e1.Hash || e2.Details != "{}" {
		t.Errorf("second entry: %+v", e2)
	}

	ok := ledger.Entry{TenantID: "acme", Seq: 2, TS: e1.TS.Add(time.Second), Severity: "low"}
	bad := map[string]struct {
		prev *ledger.Entry
		edit func(*ledger.Entry)
	}{
		"first with seq 2":  {nil, func(e *ledger.Entry) {}},
		"seq gap":           {&e1, func(e *ledger.Entry) { e.Seq = 3 }},
		"seq repeat":        {&e1, func(e *ledger.Entry) { e.Seq = 1 }},
		"ts before prev":    {&e1, func(e *ledger.Entry) { e.TS = e1.TS.Add(-time.Microsecond) }},
		"zero ts":           {&e1, func(e *ledger.Entry) { e.TS = time.Time{} }},
		"other tenant":      {&e1, func(e *ledger.Entry) { e.TenantID = "other" }},
		"empty tenant":      {&e1, func(e *ledger.Entry) { e.TenantID = "" }},
		"tenant newline":    {&e1, func(e *ledger.Entry) { e.TenantID = "a\nb" }},
		"tenant space":      {&e1, func(e *ledger.Entry) { e.TenantID = "a b" }},
		"bad severity":      {&e1, func(e *ledger.Entry) { e.Severity = "LOW" }},
		"no severity":       {&e1, func(e *ledger.Entry) { e.Severity = "" }},
		"invalid UTF-8":     {&e1, func(e *ledger.Entry) { e.User = "\xff" }},
		"details not JSON":  {&e1, func(e *ledger.Entry) { e.Details = "{" }},
		"details not obj":   {&e1, func(e *ledger.Entry) { e.Details = "[]" }},
		"prev without hash": {&ledger.Entry{TenantID: "acme", Seq: 1, TS: t0}, func(e *ledger.Entry) {}},
	}
	if _, err := ledger.Link(&e1, ok); err != nil {
		t.Fatalf("control case: %v", err)
	}
	for name, c := range bad {
		e := ok
		c.edit(&e)
		if got, err := ledger.Link(c.prev, e); err == nil {
			t.Errorf("%s: accepted: %+v", name, got)
		}
	}
	for _, s := range severities {
		if !ledger.ValidSeverity(s) {
			t.Errorf("ValidSeverity(%q) = false", s)
		}
	}
}
