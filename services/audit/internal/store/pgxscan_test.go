package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/store"
)

// A snapshot's Scan (on PostgreSQL pgx's raw values, decoded by hand)
// reads every entry exactly as database/sql's Entries does, whatever is
// stored: text of any length and alphabet, empty text, times before 2000
// and after, with microseconds; and only the tenant's. On PostgreSQL also
// through the simple protocol (default_query_exec_mode=simple_protocol, as
// behind PgBouncer), whose text results Scan reads with pgx's own scan.
func TestScanReadsWhatIsStored(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			owner, st, appURL := openStore(t, b)
			f := fixture{st: st, t0: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
			f.append(t, st, "acme", 9)
			f.append(t, st, "globex", 5)
			// Stored values a hash check would refuse, but Scan must hand
			// over as they are.
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{"UPDATE audit_entries SET user_name = ?, action = '', ts = ? WHERE tenant_id = 'acme' AND seq = 2",
					[]any{"ünïcødé ✓ 用户 'quoted' \\ back", time.Date(1999, 12, 31, 23, 59, 59, 123456000, time.UTC)}},
				{"UPDATE audit_entries SET details = ?, ts = ? WHERE tenant_id = 'acme' AND seq = 5",
					[]any{`{"k":"` + strings.Repeat("x", 70000) + `"}`, time.Date(2091, 3, 4, 5, 6, 7, 999999000, time.UTC)}},
				{"UPDATE audit_entries SET resource = '', severity = 'critical', ts = ? WHERE tenant_id = 'acme' AND seq = 7",
					[]any{time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC)}},
			} {
				if _, err := owner.ExecContext(t.Context(), owner.Rebind(q.sql), q.args...); err != nil {
					t.Fatalf("%s: %v", q.sql, err)
				}
			}
			want, err := st.Entries(t.Context(), "acme", 0, 100)
			if err != nil || len(want) != 9 {
				t.Fatalf("entries: %d, %v", len(want), err)
			}
			readers := map[string]*store.Store{"default": st}
			if b.Name == "postgres" {
				sep := "?"
				if strings.Contains(appURL, "?") {
					sep = "&"
				}
				readers["simple protocol"] = store.New(storetest.Open(t, appURL+sep+"default_query_exec_mode=simple_protocol"))
			}
			for name, st := range readers {
				for _, after := range []uint64{0, 4} {
					scanMatches(t, name, st, after, want)
				}
			}
		})
	}
}

// scanMatches checks that st's snapshot Scan after `after` hands over
// want's entries from there on.
func scanMatches(t *testing.T, reader string, st *store.Store, after uint64, want []ledger.Entry) {
	t.Helper()
	var got []ledger.Entry
	err := st.ReadSnapshot(t.Context(), "acme", func(r domain.LogSnapshot) error {
		return r.Scan(after, func(e ledger.Entry) error { got = append(got, e); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want)-int(after) {
		t.Fatalf("%s, after %d: scanned %d entries, want %d", reader, after, len(got), len(want)-int(after))
	}
	for i, e := range got {
		w := want[int(after)+i]
		et, wt := e.TS, w.TS
		e.TS, w.TS = time.Time{}, time.Time{}
		if e != w || !et.Equal(wt) || et.Location() != time.UTC {
			t.Errorf("%s, after %d: entry %d scanned as\n%+v at %v\nwant\n%+v at %v", reader, after, e.Seq, e, et, w, wt)
		}
	}
}
