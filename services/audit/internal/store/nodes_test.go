package store_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// Nodes hands over exactly the stored nodes of the ranges asked: read a
// range at a time when every node is there and a hash, and node by node
// when one is missing or of another length, even when the lengths still
// add up (a node cut short and the next one lengthened by the same byte).
func TestNodes(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			owner, st, _ := openStore(t, b)
			f := fixture{st: st, t0: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
			f.append(t, st, "acme", 13)
			f.append(t, st, "acme", 7)
			f.append(t, st, "globex", 20)
			want := f.wantLog(t, "acme", 20)
			ranges := []domain.NodeRange{{Level: 0, From: 0, To: 15}, {Level: 1, From: 2, To: 9}, {Level: 2, From: 0, To: 4},
				{Level: 4, From: 0, To: 0}, {Level: 0, From: 16, To: 40}, {Level: 3, From: 5, To: 9}}
			check := func(what string, stored map[ledger.NodeID][]byte) {
				t.Helper()
				got := map[ledger.NodeID][]byte{}
				err := st.ReadSnapshot(t.Context(), "acme", func(r domain.LogSnapshot) error {
					return r.Nodes(ranges, func(id ledger.NodeID, hash []byte) {
						if _, ok := got[id]; ok {
							t.Errorf("%s: node %v twice", what, id)
						}
						got[id] = bytes.Clone(hash)
					})
				})
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, r := range ranges {
					for i := r.From; i <= r.To; i++ {
						id := ledger.NodeID{Level: r.Level, Index: i}
						h, ok := stored[id]
						if ok {
							n++
						}
						if g, gok := got[id]; gok != ok || !bytes.Equal(g, h) {
							t.Errorf("%s: node %v = %x (%v), want %x (%v)", what, id, g, gok, h, ok)
						}
					}
				}
				if len(got) != n {
					t.Errorf("%s: %d nodes handed over, want %d", what, len(got), n)
				}
			}
			check("intact", want.nodes)

			// Node (0, 5) deleted; (1, 3) a byte short and (1, 4) a byte
			// longer, which together still make 64 bytes.
			stored := map[ledger.NodeID][]byte{}
			for id, h := range want.nodes {
				stored[id] = h
			}
			delete(stored, ledger.NodeID{Level: 0, Index: 5})
			a, c := want.nodes[ledger.NodeID{Level: 1, Index: 3}], want.nodes[ledger.NodeID{Level: 1, Index: 4}]
			stored[ledger.NodeID{Level: 1, Index: 3}] = a[:31]
			stored[ledger.NodeID{Level: 1, Index: 4}] = append([]byte{a[31]}, c...)
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{"DELETE FROM audit_nodes WHERE tenant_id = 'acme' AND level = 0 AND idx = 5", nil},
				{"UPDATE audit_nodes SET hash = ? WHERE tenant_id = 'acme' AND level = 1 AND idx = 3", []any{a[:31]}},
				{"UPDATE audit_nodes SET hash = ? WHERE tenant_id = 'acme' AND level = 1 AND idx = 4", []any{stored[ledger.NodeID{Level: 1, Index: 4}]}},
			} {
				if _, err := owner.ExecContext(t.Context(), owner.Rebind(q.sql), q.args...); err != nil {
					t.Fatalf("%s: %v", q.sql, err)
				}
			}
			check("tampered", stored)
		})
	}
}
