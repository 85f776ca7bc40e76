package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/outbox"
	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/intake"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/listing"
	"github.com/echopilot/echopilot/services/audit/internal/outbound"
	"github.com/echopilot/echopilot/services/audit/internal/store"
)

// TestContract runs the domain.Store contract, as the domain relies on it,
// on every backend: each case on a fresh database migrated by its owner and
// opened (twice, as two replicas) as the service's role, so row-level
// security applies on PostgreSQL.
func TestContract(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, f fixture)
	}{
		{"append writes entries, nodes, checkpoint and head", testAppendHead},
		{"append of two tenants and their keys", testAppendTenants},
		{"append whose build fails writes nothing", testAppendBuildError},
		{"concurrent appends extend one chain", testAppendConcurrent},
		{"entries, scan, size", testEntriesScanSize},
		{"read tree and fetch", testReadTreeFetch},
		{"checkpoints", testCheckpoints},
		{"append once and claims", testAppendOnce},
		{"snapshot ignores later commits", testSnapshot},
		{"update verified", testUpdateVerified},
		{"concurrent verified updates serialize", testUpdateVerifiedConcurrent},
		{"retention setting", testRetentionSetting},
		{"apply cut", testApplyCut},
		{"stale cut does nothing", testStaleCut},
		{"secret and endpoint caps", testCaps},
		{"endpoint repair: change, failing streak", testEndpointRepair},
	}
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					st, st2 := replicas(t, b)
					c.run(t, fixture{st: st, st2: st2, t0: time.Now().UTC().Add(-10 * 24 * time.Hour).Truncate(time.Second)})
				})
			}
		})
	}
}

// fixture is a fresh database seen by two stores, each with its own pool
// (two replicas), and the time of entry 0 (entry seq is at t0 + seq
// minutes, ten days ago: old enough for any retention cut).
type fixture struct {
	st, st2 *store.Store
	t0      time.Time
}

// ts is the timestamp of entry seq.
func (f fixture) ts(seq uint64) time.Time { return f.t0.Add(time.Duration(seq) * time.Minute) }

// note is the checkpoint an append ending at size stores.
func note(tenant string, size uint64) string { return fmt.Sprintf("cp %s %d", tenant, size) }

// batch is the batch of n entries after h: entry contents depend only on
// tenant and seq, so a log's entries and nodes are the same however it was
// batched (see wantLog).
func (f fixture) batch(tenant string, h domain.Head, n int) (domain.Batch, error) {
	var b domain.Batch
	var prev *ledger.Entry
	if h.Size > 0 {
		prev = &ledger.Entry{TenantID: tenant, Seq: h.Size, Hash: h.LastHash, TS: h.LastTS}
	}
	var leaves [][]byte
	for i := range uint64(n) {
		seq := h.Size + 1 + i
		e, err := ledger.Link(prev, ledger.Entry{TenantID: tenant, Seq: seq, TS: f.ts(seq), EventType: "x",
			User: "u", Action: fmt.Sprint("a", seq), Resource: "r", Details: "{}", Severity: "low"})
		if err != nil {
			return b, err
		}
		leaf, err := ledger.DecodeHash(e.Hash)
		if err != nil {
			return b, err
		}
		b.Entries, leaves, prev = append(b.Entries, e), append(leaves, leaf), &e
	}
	nodes, _, next, err := ledger.Append(h.Size, h.Range, leaves)
	b.Nodes, b.Range = nodes, next
	b.Checkpoint = []byte(note(tenant, h.Size+uint64(n)))
	return b, err
}

// build is a BuildFunc appending n entries to each tenant.
func (f fixture) build(n int) domain.BuildFunc {
	return func(tenant string, h domain.Head) (domain.Batch, error) { return f.batch(tenant, h, n) }
}

// append appends n entries to tenant's log in one batch, on st.
func (f fixture) append(t *testing.T, st *store.Store, tenant string, n int) {
	t.Helper()
	if err := st.Append(t.Context(), []string{tenant}, nil, f.build(n)); err != nil {
		t.Fatalf("append %d to %s: %v", n, tenant, err)
	}
}

// head is the head an append of tenant builds on (the build writes nothing).
func (f fixture) head(t *testing.T, tenant string) domain.Head {
	t.Helper()
	var got domain.Head
	err := f.st.Append(t.Context(), []string{tenant}, nil, func(_ string, h domain.Head) (domain.Batch, error) {
		got = h
		return domain.Batch{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got.Endpoints = nil
	return got
}

// logOf is what a log of some size holds.
type logOf struct {
	entries []ledger.Entry
	nodes   map[ledger.NodeID][]byte
	ids     []ledger.NodeID // the nodes' ids, in creation order
	rng     [][]byte        // the hashes of ledger.RangeIDs(size)
	root    []byte
}

// wantLog is tenant's log after size entries, appended one at a time.
func (f fixture) wantLog(t *testing.T, tenant string, size uint64) logOf {
	t.Helper()
	l := logOf{nodes: map[ledger.NodeID][]byte{}, root: ledger.EmptyRoot()}
	h := domain.Head{LastHash: ledger.Genesis}
	for h.Size < size {
		b, err := f.batch(tenant, h, 1)
		if err != nil {
			t.Fatal(err)
		}
		l.entries = append(l.entries, b.Entries...)
		for _, n := range b.Nodes {
			l.nodes[n.ID] = n.Hash
			l.ids = append(l.ids, n.ID)
		}
		leaf, _ := ledger.DecodeHash(b.Entries[0].Hash)
		_, root, _, err := ledger.Append(h.Size, h.Range, [][]byte{leaf})
		if err != nil {
			t.Fatal(err)
		}
		l.root, l.rng = root, b.Range
		h = domain.Head{Size: h.Size + 1, LastHash: b.Entries[0].Hash, LastTS: b.Entries[0].TS, Range: b.Range}
	}
	return l
}

// show prints values for exact comparison.
func show(v any) string { return fmt.Sprintf("%+v", v) }

func entriesOf(t *testing.T, st *store.Store, tenant string) []ledger.Entry {
	t.Helper()
	es, err := st.Entries(t.Context(), tenant, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func sizeOf(t *testing.T, st *store.Store, tenant string) uint64 {
	t.Helper()
	n, err := st.Size(t.Context(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func checkpointsOf(t *testing.T, st *store.Store, tenant string) []domain.IssuedCheckpoint {
	t.Helper()
	cs, err := st.IssuedCheckpoints(t.Context(), tenant, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// issued is the checkpoint an append ending at size stored.
func (f fixture) issued(tenant string, size uint64) domain.IssuedCheckpoint {
	return domain.IssuedCheckpoint{StoredCheckpoint: domain.StoredCheckpoint{Size: size, Note: note(tenant, size)}, Issued: f.ts(size)}
}

// fetchIn fetches ids of tenant's tree through ReadTree.
func fetchIn(t *testing.T, st *store.Store, tenant string, ids []ledger.NodeID) ([][]byte, error) {
	t.Helper()
	var got [][]byte
	err := st.ReadTree(t.Context(), tenant, func(_ uint64, fetch ledger.Fetch) (err error) {
		got, err = fetch(ids)
		return err
	})
	return got, err
}

func testAppendHead(t *testing.T, f fixture) {
	if h := f.head(t, "acme"); show(h) != show(domain.Head{LastHash: ledger.Genesis, LastTS: time.Unix(0, 0).UTC()}) {
		t.Errorf("empty log's head = %+v, want size 0, genesis", h)
	}
	f.append(t, f.st, "acme", 3)
	f.append(t, f.st, "acme", 2)
	want := f.wantLog(t, "acme", 5)
	if got := entriesOf(t, f.st, "acme"); show(got) != show(want.entries) {
		t.Errorf("entries\n got %+v\nwant %+v", got, want.entries)
	}
	wantHead := domain.Head{Size: 5, LastHash: want.entries[4].Hash, LastTS: f.ts(5), Range: want.rng}
	if h := f.head(t, "acme"); show(h) != show(wantHead) {
		t.Errorf("head\n got %+v\nwant %+v", h, wantHead)
	}
	if got := sizeOf(t, f.st, "acme"); got != 5 {
		t.Errorf("size %d, want 5", got)
	}
	if cs := checkpointsOf(t, f.st, "acme"); show(cs) != show([]domain.IssuedCheckpoint{f.issued("acme", 3), f.issued("acme", 5)}) {
		t.Errorf("checkpoints %+v, want at 3 and 5", cs)
	}
	var ids []ledger.NodeID
	var hashes [][]byte
	for _, id := range want.ids {
		ids, hashes = append(ids, id), append(hashes, want.nodes[id])
	}
	if got, err := fetchIn(t, f.st, "acme", ids); err != nil || !slices.EqualFunc(got, hashes, bytes.Equal) {
		t.Errorf("nodes: %x (%v), want %x", got, err, hashes)
	}
	if got, err := f.st.LogTenants(t.Context(), "", 10); err != nil || show(got) != "[acme]" {
		t.Errorf("log tenants %v (%v), want [acme]", got, err)
	}
}

func testAppendTenants(t *testing.T, f fixture) {
	ctx := t.Context()
	var dups []string
	var mu sync.Mutex
	build := func(tenant string, h domain.Head) (domain.Batch, error) {
		mu.Lock()
		dups = append(dups, fmt.Sprint(tenant, h.Duplicate))
		mu.Unlock()
		return f.batch(tenant, h, len(h.Duplicate)+1)
	}
	// Tenants in any order, each with its keys ("" for none).
	keys := map[string][]string{"acme": {"k1", "", "k2"}, "globex": {"k1"}}
	if err := f.st.Append(ctx, []string{"globex", "acme"}, keys, build); err != nil {
		t.Fatal(err)
	}
	// Keys taken before are reported per tenant, in order; a key repeated
	// within a call is taken by its first use.
	keys = map[string][]string{"acme": {"k3", "k2", "k3"}, "globex": {"k2", "k1"}}
	if err := f.st2.Append(ctx, []string{"acme", "globex"}, keys, build); err != nil {
		t.Fatal(err)
	}
	if want := "[acme[false false false] globex[false] acme[false true true] globex[false true]]"; show(dups) != want {
		t.Errorf("builds saw %v, want %s", dups, want)
	}
	for tenant, size := range map[string]uint64{"acme": 8, "globex": 5} {
		want := f.wantLog(t, tenant, size)
		if got := entriesOf(t, f.st, tenant); show(got) != show(want.entries) {
			t.Errorf("%s's entries\n got %+v\nwant %+v", tenant, got, want.entries)
		}
		first := map[string]uint64{"acme": 4, "globex": 2}[tenant] // the first call's batch
		if cs := checkpointsOf(t, f.st, tenant); show(cs) != show([]domain.IssuedCheckpoint{f.issued(tenant, first), f.issued(tenant, size)}) {
			t.Errorf("%s's checkpoints %+v", tenant, cs)
		}
	}
	if got, err := f.st.LogTenants(ctx, "", 10); err != nil || show(got) != "[acme globex]" {
		t.Errorf("log tenants %v (%v)", got, err)
	}
	if got, err := f.st.LogTenants(ctx, "acme", 10); err != nil || show(got) != "[globex]" {
		t.Errorf("log tenants after acme %v (%v)", got, err)
	}
	if got, err := f.st.LogTenants(ctx, "", 1); err != nil || show(got) != "[acme]" {
		t.Errorf("first log tenant %v (%v)", got, err)
	}
}

func testAppendBuildError(t *testing.T, f fixture) {
	ctx := t.Context()
	f.append(t, f.st, "acme", 2)
	boom := errors.New("boom")
	// acme's batch is built (and written in the transaction) first; globex's
	// fails, and takes acme's with it, keys and all.
	err := f.st.Append(ctx, []string{"globex", "acme"}, map[string][]string{"acme": {"k"}}, func(tenant string, h domain.Head) (domain.Batch, error) {
		if tenant == "globex" {
			return domain.Batch{}, boom
		}
		return f.batch(tenant, h, 1)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("append = %v, want the build's error", err)
	}
	want := f.wantLog(t, "acme", 2)
	if got := entriesOf(t, f.st, "acme"); show(got) != show(want.entries) {
		t.Errorf("entries after a failed append\n got %+v\nwant %+v", got, want.entries)
	}
	if h := f.head(t, "acme"); h.Size != 2 || h.LastHash != want.entries[1].Hash {
		t.Errorf("head after a failed append: %+v", h)
	}
	if cs := checkpointsOf(t, f.st, "acme"); show(cs) != show([]domain.IssuedCheckpoint{f.issued("acme", 2)}) {
		t.Errorf("checkpoints after a failed append: %+v", cs)
	}
	if _, err := fetchIn(t, f.st, "acme", []ledger.NodeID{{Level: 0, Index: 2}}); !errors.Is(err, domain.ErrNodeMissing) {
		t.Errorf("node of the failed batch: %v, want ErrNodeMissing", err)
	}
	if got, err := f.st.LogTenants(ctx, "", 10); err != nil || show(got) != "[acme]" {
		t.Errorf("log tenants %v (%v), want [acme] (no head for globex)", got, err)
	}
	var dup []bool
	err = f.st.Append(ctx, []string{"acme"}, map[string][]string{"acme": {"k"}}, func(tenant string, h domain.Head) (domain.Batch, error) {
		dup = h.Duplicate
		return f.batch(tenant, h, 1)
	})
	if err != nil || show(dup) != "[false]" {
		t.Errorf("key of the failed append: duplicate %v (%v), want [false]", dup, err)
	}
}

func testAppendConcurrent(t *testing.T, f fixture) {
	const appenders, rounds = 12, 3
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range appenders {
		wg.Go(func() {
			<-start
			st := []*store.Store{f.st, f.st2}[i%2]
			for range rounds {
				if err := st.Append(t.Context(), []string{"acme"}, nil, f.build(1+i%2)); err != nil {
					t.Errorf("appender %d: %v", i, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	const size = rounds * (appenders/2*1 + appenders/2*2)
	want := f.wantLog(t, "acme", size)
	if got := entriesOf(t, f.st, "acme"); show(got) != show(want.entries) {
		t.Fatalf("%d entries after concurrent appends, want the dense chain of %d", len(got), size)
	}
	c := ledger.NewChainChecker()
	for _, e := range entriesOf(t, f.st, "acme") {
		if err := c.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if h := f.head(t, "acme"); show(h) != show(domain.Head{Size: size, LastHash: want.entries[size-1].Hash, LastTS: f.ts(size), Range: want.rng}) {
		t.Errorf("head %+v", h)
	}
	cs := checkpointsOf(t, f.st, "acme")
	if len(cs) != appenders*rounds || cs[len(cs)-1].Size != size {
		t.Errorf("%d checkpoints up to %+v, want %d up to %d", len(cs), cs[len(cs)-1], appenders*rounds, size)
	}
	err := f.st.ReadTree(t.Context(), "acme", func(n uint64, fetch ledger.Fetch) error {
		root, err := ledger.Root(n, fetch)
		if err == nil && (n != size || !bytes.Equal(root, want.root)) {
			err = fmt.Errorf("tree of %d with root %x, want %d, %x", n, root, size, want.root)
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
}

func testEntriesScanSize(t *testing.T, f fixture) {
	ctx := t.Context()
	f.append(t, f.st, "acme", 4)
	f.append(t, f.st, "globex", 2)
	f.append(t, f.st, "acme", 3)
	want := f.wantLog(t, "acme", 7).entries
	for _, c := range []struct {
		after uint64
		limit int
		want  []ledger.Entry
	}{
		{0, 3, want[:3]}, {3, 3, want[3:6]}, {6, 10, want[6:]}, {7, 10, nil}, {100, 10, nil}, {2, 1, want[2:3]},
	} {
		got, err := f.st.Entries(ctx, "acme", c.after, c.limit)
		if err != nil || show(got) != show(c.want) {
			t.Errorf("Entries(after %d, limit %d) = %+v (%v)\nwant %+v", c.after, c.limit, got, err, c.want)
		}
	}
	if got := entriesOf(t, f.st, "globex"); show(got) != show(f.wantLog(t, "globex", 2).entries) {
		t.Errorf("globex's entries %+v", got)
	}
	var scanned []ledger.Entry
	if err := f.st.Scan(ctx, "acme", func(e ledger.Entry) error { scanned = append(scanned, e); return nil }); err != nil ||
		show(scanned) != show(want) {
		t.Errorf("Scan = %+v (%v)", scanned, err)
	}
	stop := errors.New("stop")
	var seen []uint64
	err := f.st.Scan(ctx, "acme", func(e ledger.Entry) error {
		seen = append(seen, e.Seq)
		if e.Seq == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || show(seen) != "[1 2 3]" {
		t.Errorf("Scan stopped at 3: saw %v, %v", seen, err)
	}
	for tenant, want := range map[string]uint64{"acme": 7, "globex": 2, "initech": 0} {
		if got := sizeOf(t, f.st, tenant); got != want {
			t.Errorf("Size(%s) = %d, want %d", tenant, got, want)
		}
	}
}

func testReadTreeFetch(t *testing.T, f fixture) {
	f.append(t, f.st, "acme", 5)
	f.append(t, f.st, "acme", 2)
	f.append(t, f.st, "globex", 3)
	want := f.wantLog(t, "acme", 7)
	// Every node, in an order of our choosing (reversed). (An id asked
	// twice in one fetch is reported missing: not pinned here, no caller
	// asks twice.)
	ids := slices.Clone(want.ids)
	slices.Reverse(ids)
	var wantHashes [][]byte
	for _, id := range ids {
		wantHashes = append(wantHashes, want.nodes[id])
	}
	err := f.st.ReadTree(t.Context(), "acme", func(size uint64, fetch ledger.Fetch) error {
		if size != 7 {
			t.Errorf("ReadTree size %d, want 7", size)
		}
		got, err := fetch(ids)
		if err != nil || !slices.EqualFunc(got, wantHashes, bytes.Equal) {
			t.Errorf("fetch = %x (%v)\nwant %x", got, err, wantHashes)
		}
		if got, err := fetch(nil); err != nil || len(got) != 0 {
			t.Errorf("fetch of none = %x, %v", got, err)
		}
		root, err := ledger.Root(size, fetch)
		if err != nil || !bytes.Equal(root, want.root) {
			t.Errorf("root %x (%v), want %x", root, err, want.root)
		}
		// A node the tree of 7 has not (leaf 7), among present ones.
		if _, err := fetch([]ledger.NodeID{want.ids[0], {Level: 0, Index: 7}}); !errors.Is(err, domain.ErrNodeMissing) {
			t.Errorf("fetch of a missing node = %v, want ErrNodeMissing", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// globex's tree of 3 has no leaf 4, however acme's has.
	if _, err := fetchIn(t, f.st, "globex", []ledger.NodeID{{Level: 0, Index: 4}}); !errors.Is(err, domain.ErrNodeMissing) {
		t.Errorf("globex fetching acme's node = %v, want ErrNodeMissing", err)
	}
	err = f.st.ReadTree(t.Context(), "initech", func(size uint64, fetch ledger.Fetch) error {
		if size != 0 {
			t.Errorf("empty tree of size %d", size)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func testCheckpoints(t *testing.T, f fixture) {
	ctx := t.Context()
	if c, ok, err := f.st.LatestCheckpoint(ctx, "acme"); ok || err != nil {
		t.Errorf("LatestCheckpoint of an empty log = %+v, %v, %v", c, ok, err)
	}
	for _, n := range []int{2, 1, 3} {
		f.append(t, f.st, "acme", n)
	}
	f.append(t, f.st, "globex", 9)
	c, ok, err := f.st.LatestCheckpoint(ctx, "acme")
	if want := (domain.StoredCheckpoint{Size: 6, Note: note("acme", 6)}); err != nil || !ok || c != want {
		t.Errorf("LatestCheckpoint = %+v, %v, %v; want %+v", c, ok, err, want)
	}
	all := []domain.IssuedCheckpoint{f.issued("acme", 2), f.issued("acme", 3), f.issued("acme", 6)}
	for _, q := range []struct {
		from  uint64
		limit int
		want  []domain.IssuedCheckpoint
	}{
		{0, 10, all}, {2, 10, all}, {3, 10, all[1:]}, {4, 10, all[2:]}, {4, 1, all[2:]}, {0, 2, all[:2]}, {7, 10, nil}, {1 << 63, 10, nil},
	} {
		got, err := f.st.IssuedCheckpoints(ctx, "acme", q.from, q.limit)
		if err != nil || show(got) != show(q.want) {
			t.Errorf("IssuedCheckpoints(from %d, limit %d) = %+v (%v)\nwant %+v", q.from, q.limit, got, err, q.want)
		}
	}
}

func testAppendOnce(t *testing.T, f fixture) {
	ctx := t.Context()
	until := time.Now().Add(time.Hour)
	if dup, err := f.st.AppendOnce(ctx, "acme", []domain.Claim{{Key: "a", Until: until}}, f.build(2)); dup || err != nil {
		t.Fatalf("first AppendOnce: dup %v, %v", dup, err)
	}
	built := false
	dup, err := f.st2.AppendOnce(ctx, "acme", []domain.Claim{{Key: "b", Until: until}, {Key: "a", Until: until}},
		func(tenant string, h domain.Head) (domain.Batch, error) { built = true; return f.batch(tenant, h, 1) })
	if !dup || err != nil || built {
		t.Fatalf("duplicate AppendOnce: dup %v, %v, built %v; want dup, not built", dup, err, built)
	}
	want := f.wantLog(t, "acme", 2)
	if got := entriesOf(t, f.st, "acme"); show(got) != show(want.entries) {
		t.Errorf("entries after a duplicate: %+v", got)
	}
	if cs := checkpointsOf(t, f.st, "acme"); show(cs) != show([]domain.IssuedCheckpoint{f.issued("acme", 2)}) {
		t.Errorf("checkpoints after a duplicate: %+v", cs)
	}
	// A failed build leaves no claim: the retry goes through.
	boom := errors.New("boom")
	if _, err := f.st.AppendOnce(ctx, "acme", []domain.Claim{{Key: "c", Until: until}},
		func(string, domain.Head) (domain.Batch, error) { return domain.Batch{}, boom }); !errors.Is(err, boom) {
		t.Fatalf("failing AppendOnce = %v, want the build's error", err)
	}
	// b was not claimed by the duplicate; c not by the failure.
	if dup, err := f.st.AppendOnce(ctx, "acme", []domain.Claim{{Key: "b", Until: until}, {Key: "c", Until: until}}, f.build(1)); dup || err != nil {
		t.Fatalf("keys of a duplicate and a failure: dup %v, %v", dup, err)
	}
	// An expired claim is pruned by the next AppendOnce: claimable again.
	if dup, err := f.st.AppendOnce(ctx, "acme", []domain.Claim{{Key: "old", Until: time.Now().Add(-time.Minute)}}, f.build(1)); dup || err != nil {
		t.Fatal(dup, err)
	}
	if dup, err := f.st.AppendOnce(ctx, "acme", []domain.Claim{{Key: "old", Until: until}}, f.build(1)); dup || err != nil {
		t.Fatalf("expired claim taken again: dup %v, %v", dup, err)
	}
	if dup, err := f.st.AppendOnce(ctx, "acme", []domain.Claim{{Key: "old", Until: until}}, f.build(1)); !dup || err != nil {
		t.Fatalf("unexpired claim: dup %v, %v; want dup", dup, err)
	}
	// Another tenant's claims are its own.
	if dup, err := f.st.AppendOnce(ctx, "globex", []domain.Claim{{Key: "a", Until: until}}, f.build(1)); dup || err != nil {
		t.Fatalf("globex's a: dup %v, %v", dup, err)
	}
	if got := entriesOf(t, f.st, "acme"); show(got) != show(f.wantLog(t, "acme", 5).entries) {
		t.Errorf("acme's entries %+v, want 5", got)
	}
}

func testSnapshot(t *testing.T, f fixture) {
	ctx := t.Context()
	f.append(t, f.st, "acme", 2)
	f.append(t, f.st, "acme", 1)
	want := f.wantLog(t, "acme", 3)
	if err := f.st.SetRetention(ctx, "acme", 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	verifiedAt := f.t0.Add(time.Hour)
	state := domain.VerifiedState{Size: 3, Root: want.root, LastHash: want.entries[2].Hash, LastTS: f.ts(3), Range: want.rng, At: verifiedAt}
	if err := f.st.UpdateVerified(ctx, "acme", func(domain.VerifiedState, bool) (domain.VerifiedState, bool) { return state, true }); err != nil {
		t.Fatal(err)
	}
	err := f.st.ReadSnapshot(ctx, "acme", func(r domain.LogSnapshot) error {
		if n, err := r.Size(); err != nil || n != 3 {
			t.Fatalf("snapshot size %d (%v), want 3", n, err)
		}
		// Another replica appends, resets retention and the verified state,
		// and commits, while the snapshot is open.
		done := make(chan error, 1)
		go func() {
			err := f.st2.Append(ctx, []string{"acme"}, nil, f.build(2))
			if err == nil {
				err = f.st2.SetRetention(ctx, "acme", 0)
			}
			if err == nil {
				err = f.st2.UpdateVerified(ctx, "acme", func(domain.VerifiedState, bool) (domain.VerifiedState, bool) {
					return domain.VerifiedState{Root: ledger.EmptyRoot(), LastHash: ledger.Genesis, FailedSeq: 9}, true
				})
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("writes during the snapshot: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("writes blocked by an open snapshot")
		}
		if n, err := r.Size(); err != nil || n != 3 {
			t.Errorf("snapshot size after a commit: %d (%v), want 3", n, err)
		}
		if got, err := r.Entries(0, 10); err != nil || show(got) != show(want.entries) {
			t.Errorf("snapshot Entries = %+v (%v)", got, err)
		}
		if got, err := r.Entries(1, 1); err != nil || show(got) != show(want.entries[1:2]) {
			t.Errorf("snapshot Entries(1, 1) = %+v (%v)", got, err)
		}
		var scanned []ledger.Entry
		if err := r.Scan(1, func(e ledger.Entry) error { scanned = append(scanned, e); return nil }); err != nil || show(scanned) != show(want.entries[1:]) {
			t.Errorf("snapshot Scan(1) = %+v (%v)", scanned, err)
		}
		wantCPs := []domain.StoredCheckpoint{{Size: 2, Note: note("acme", 2)}, {Size: 3, Note: note("acme", 3)}}
		if got, err := r.Checkpoints(0); err != nil || show(got) != show(wantCPs) {
			t.Errorf("snapshot Checkpoints(0) = %+v (%v)", got, err)
		}
		if got, err := r.Checkpoints(2); err != nil || show(got) != show(wantCPs[1:]) {
			t.Errorf("snapshot Checkpoints(2) = %+v (%v)", got, err)
		}
		if got, ok, err := r.Verified(); err != nil || !ok || show(got) != show(state) {
			t.Errorf("snapshot Verified = %+v, %v (%v)\nwant %+v", got, ok, err, state)
		}
		if got, err := r.Retention(); err != nil || show(got) != show(domain.Retention{MaxAge: 48 * time.Hour}) {
			t.Errorf("snapshot Retention = %+v (%v)", got, err)
		}
		for at, wantSeq := range map[time.Time]uint64{f.ts(1): 0, f.ts(2): 1, f.ts(3): 2, f.ts(3).Add(time.Microsecond): 3, f.ts(100): 3} {
			if got, err := r.LastBefore(at); err != nil || got != wantSeq {
				t.Errorf("snapshot LastBefore(ts %v) = %d (%v), want %d", at.Sub(f.t0), got, err, wantSeq)
			}
		}
		if got, err := r.Fetch(want.ids); err != nil || len(got) != len(want.ids) || !bytes.Equal(got[0], want.nodes[want.ids[0]]) {
			t.Errorf("snapshot Fetch = %x (%v)", got, err)
		}
		if _, err := r.Fetch([]ledger.NodeID{{Level: 0, Index: 3}}); !errors.Is(err, domain.ErrNodeMissing) {
			t.Errorf("snapshot Fetch of a node committed after it = %v, want ErrNodeMissing", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sizeOf(t, f.st, "acme"); got != 5 {
		t.Errorf("size after the snapshot %d, want 5", got)
	}
	err = f.st.ReadSnapshot(ctx, "acme", func(r domain.LogSnapshot) error {
		st, ok, err := r.Verified()
		if err != nil || !ok || st.FailedSeq != 9 || st.Size != 0 {
			t.Errorf("new snapshot Verified = %+v, %v, %v", st, ok, err)
		}
		if ret, err := r.Retention(); err != nil || ret.MaxAge != 0 {
			t.Errorf("new snapshot Retention = %+v, %v", ret, err)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// verified reads tenant's stored state through a snapshot.
func verified(t *testing.T, st *store.Store, tenant string) (domain.VerifiedState, bool) {
	t.Helper()
	var got domain.VerifiedState
	var ok bool
	err := st.ReadSnapshot(t.Context(), tenant, func(r domain.LogSnapshot) (err error) {
		got, ok, err = r.Verified()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, ok
}

func testUpdateVerified(t *testing.T, f fixture) {
	ctx := t.Context()
	f.append(t, f.st, "acme", 3)
	want := f.wantLog(t, "acme", 3)
	// A new tenant's fn sees no state: false, and a never-verified state
	// (At zero) to build on.
	var sawOK bool
	var saw domain.VerifiedState
	decline := func(cur domain.VerifiedState, ok bool) (domain.VerifiedState, bool) {
		saw, sawOK = cur, ok
		return domain.VerifiedState{Size: 3, Root: want.root, Range: want.rng, At: f.t0}, false
	}
	if err := f.st.UpdateVerified(ctx, "acme", decline); err != nil {
		t.Fatal(err)
	}
	if sawOK || !saw.At.IsZero() || saw.Size != 0 || saw.FailedSeq != 0 {
		t.Errorf("fn of a new tenant saw %+v, %v; want false, never verified", saw, sawOK)
	}
	// fn declined: what it returned is not stored. (The store may keep an
	// empty, never-verified row, which the domain reads as none: At zero.)
	if got, ok := verified(t, f.st, "acme"); ok && (!got.At.IsZero() || got.Size != 0 || got.FailedSeq != 0 || got.LastHash != ledger.Genesis) {
		t.Errorf("fn returned false, yet its state is stored: %+v", got)
	}
	// Create, then update: every stored field round-trips.
	state := domain.VerifiedState{Size: 3, Root: want.root, LastHash: want.entries[2].Hash, LastTS: f.ts(3), Range: want.rng,
		At: f.t0.Add(time.Hour), Keys: []string{"k1", "k2"}, FailedSeq: 2, FailedReason: "broken link", FailedAt: f.t0.Add(2 * time.Hour),
		FullAt: f.t0.Add(3 * time.Hour), FullValid: false, FullFirstBad: 2, FullReason: "bad"}
	if err := f.st.UpdateVerified(ctx, "acme", func(cur domain.VerifiedState, ok bool) (domain.VerifiedState, bool) {
		saw, sawOK = cur, ok
		return state, true
	}); err != nil {
		t.Fatal(err)
	}
	if !saw.At.IsZero() || saw.Size != 0 {
		t.Errorf("creating fn saw a verified state %+v, %v", saw, sawOK)
	}
	if got, ok := verified(t, f.st, "acme"); !ok || show(got) != show(state) {
		t.Errorf("stored\n got %+v, %v\nwant %+v", got, ok, state)
	}
	next := domain.VerifiedState{Size: 1, Root: []byte("r1"), LastHash: want.entries[0].Hash, LastTS: f.ts(1),
		Range: want.rng[1:], At: f.t0.Add(4 * time.Hour), FullAt: f.t0.Add(4 * time.Hour), FullValid: true}
	if err := f.st2.UpdateVerified(ctx, "acme", func(cur domain.VerifiedState, ok bool) (domain.VerifiedState, bool) {
		saw, sawOK = cur, ok
		return next, true
	}); err != nil {
		t.Fatal(err)
	}
	if !sawOK || show(saw) != show(state) {
		t.Errorf("updating fn saw %+v, %v\nwant %+v", saw, sawOK, state)
	}
	if got, ok := verified(t, f.st, "acme"); !ok || show(got) != show(next) {
		t.Errorf("updated\n got %+v\nwant %+v", got, next)
	}
	if err := f.st.UpdateVerified(ctx, "acme", decline); err != nil {
		t.Fatal(err)
	}
	if got, ok := verified(t, f.st, "acme"); !ok || show(got) != show(next) {
		t.Errorf("after a declined update\n got %+v\nwant %+v", got, next)
	}
	if got, ok := verified(t, f.st, "globex"); ok {
		t.Errorf("globex has acme's state %+v", got)
	}
}

func testUpdateVerifiedConcurrent(t *testing.T, f fixture) {
	const updaters = 16
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range updaters {
		wg.Go(func() {
			<-start
			st := []*store.Store{f.st, f.st2}[i%2]
			err := st.UpdateVerified(t.Context(), "acme", func(cur domain.VerifiedState, ok bool) (domain.VerifiedState, bool) {
				if !ok {
					cur = domain.VerifiedState{Root: ledger.EmptyRoot(), LastHash: ledger.Genesis}
				}
				cur.FailedSeq++
				cur.FailedReason += "x"
				return cur, true
			})
			if err != nil {
				t.Errorf("updater %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got, ok := verified(t, f.st, "acme"); !ok || got.FailedSeq != updaters || len(got.FailedReason) != updaters {
		t.Errorf("after %d concurrent increments: %+v, %v", updaters, got, ok)
	}
}

func testRetentionSetting(t *testing.T, f fixture) {
	ctx := t.Context()
	get := func(tenant string) domain.Retention {
		t.Helper()
		r, err := f.st.Retention(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := get("acme"); show(r) != show(domain.Retention{}) {
		t.Errorf("retention of a new tenant %+v", r)
	}
	for _, age := range []time.Duration{48 * time.Hour, 30 * 24 * time.Hour, 0} {
		if err := f.st.SetRetention(ctx, "acme", age); err != nil {
			t.Fatal(err)
		}
		if r := get("acme"); show(r) != show(domain.Retention{MaxAge: age}) {
			t.Errorf("after setting %v: %+v", age, r)
		}
	}
	if r := get("globex"); show(r) != show(domain.Retention{}) {
		t.Errorf("globex has acme's retention %+v", r)
	}
}

// cutAt is the cut of tenant's log (want) at size.
func (f fixture) cutAt(t *testing.T, tenant string, size uint64, checkpoint string) domain.Cut {
	t.Helper()
	l := f.wantLog(t, tenant, size)
	return domain.Cut{Size: size, LastHash: l.entries[size-1].Hash, LastTS: f.ts(size), Range: l.rng, Checkpoint: checkpoint,
		At: time.Now().UTC().Truncate(time.Microsecond)}
}

// checkNodes checks that tenant keeps exactly the nodes of want that a cut
// at size does not delete: those outside the prefix, and the frontier.
func checkNodes(t *testing.T, st *store.Store, tenant string, want logOf, size uint64) {
	t.Helper()
	frontier := ledger.RangeIDs(size)
	for _, id := range want.ids {
		kept := (id.Index+1)<<id.Level > size || slices.Contains(frontier, id)
		got, err := fetchIn(t, st, tenant, []ledger.NodeID{id})
		switch {
		case kept && (err != nil || !bytes.Equal(got[0], want.nodes[id])):
			t.Errorf("cut at %d: node %d/%d = %x (%v), want kept", size, id.Level, id.Index, got, err)
		case !kept && !errors.Is(err, domain.ErrNodeMissing):
			t.Errorf("cut at %d: node %d/%d = %x (%v), want deleted", size, id.Level, id.Index, got, err)
		}
	}
}

func testApplyCut(t *testing.T, f fixture) {
	ctx := t.Context()
	for _, n := range []int{3, 1, 4} { // checkpoints at 3, 4, 8
		f.append(t, f.st, "acme", n)
	}
	f.append(t, f.st, "globex", 8)
	want := f.wantLog(t, "acme", 8)
	if err := f.st.SetRetention(ctx, "acme", 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	// A cut at 4, where an append's checkpoint is: that one is kept (and
	// named by the cut), the one at 3 goes.
	cut := f.cutAt(t, "acme", 4, "cut note 4")
	if ok, err := f.st.ApplyCut(ctx, "acme", 0, cut); !ok || err != nil {
		t.Fatalf("ApplyCut(0 → 4) = %v, %v", ok, err)
	}
	wantCut := cut
	wantCut.Checkpoint = note("acme", 4)
	if r, err := f.st.Retention(ctx, "acme"); err != nil || show(r) != show(domain.Retention{MaxAge: 48 * time.Hour, Cut: wantCut}) {
		t.Errorf("retention after the cut\n got %+v (%v)\nwant %+v", r, err, domain.Retention{MaxAge: 48 * time.Hour, Cut: wantCut})
	}
	if got := entriesOf(t, f.st, "acme"); show(got) != show(want.entries[4:]) {
		t.Errorf("entries after a cut at 4: %+v", got)
	}
	if got := sizeOf(t, f.st, "acme"); got != 8 {
		t.Errorf("size after a cut %d, want 8", got)
	}
	// The checkpoint at the cut is issued when its entry was (the entry
	// is gone: the store gives the cut's time).
	wantCP := []domain.IssuedCheckpoint{{StoredCheckpoint: domain.StoredCheckpoint{Size: 4, Note: note("acme", 4)}, Issued: cut.At}, f.issued("acme", 8)}
	if cs := checkpointsOf(t, f.st, "acme"); show(cs) != show(wantCP) {
		t.Errorf("checkpoints after a cut at 4\n got %+v\nwant %+v", cs, wantCP)
	}
	checkNodes(t, f.st, "acme", want, 4)
	// The tree of 8 is whole: its root and the proofs into the retained
	// entries need only the frontier.
	err := f.st.ReadTree(ctx, "acme", func(size uint64, fetch ledger.Fetch) error {
		root, err := ledger.Root(size, fetch)
		if err != nil || !bytes.Equal(root, want.root) {
			return fmt.Errorf("root after the cut %x (%v), want %x", root, err, want.root)
		}
		_, err = ledger.InclusionProof(4, 8, fetch)
		return err
	})
	if err != nil {
		t.Error(err)
	}
	if got := entriesOf(t, f.st, "globex"); len(got) != 8 {
		t.Errorf("globex lost entries to acme's cut: %d left", len(got))
	}

	// A second cut at 6, where no checkpoint is: the cut's is stored, and
	// the one at 4 goes.
	cut6 := f.cutAt(t, "acme", 6, "cut note 6")
	if ok, err := f.st2.ApplyCut(ctx, "acme", 4, cut6); !ok || err != nil {
		t.Fatalf("ApplyCut(4 → 6) = %v, %v", ok, err)
	}
	wantCP = []domain.IssuedCheckpoint{{StoredCheckpoint: domain.StoredCheckpoint{Size: 6, Note: "cut note 6"}, Issued: cut6.At}, f.issued("acme", 8)}
	if cs := checkpointsOf(t, f.st, "acme"); show(cs) != show(wantCP) {
		t.Errorf("checkpoints after a cut at 6\n got %+v\nwant %+v", cs, wantCP)
	}
	if r, err := f.st.Retention(ctx, "acme"); err != nil || show(r.Cut) != show(cut6) {
		t.Errorf("cut at 6\n got %+v (%v)\nwant %+v", r.Cut, err, cut6)
	}
	if got := entriesOf(t, f.st, "acme"); show(got) != show(want.entries[6:]) {
		t.Errorf("entries after a cut at 6: %+v", got)
	}
	checkNodes(t, f.st, "acme", want, 6)
	err = f.st.ReadSnapshot(ctx, "acme", func(r domain.LogSnapshot) error {
		if got, err := r.Checkpoints(0); err != nil || show(got) != show([]domain.StoredCheckpoint{{Size: 6, Note: "cut note 6"}, {Size: 8, Note: note("acme", 8)}}) {
			t.Errorf("snapshot checkpoints after the cuts: %+v (%v)", got, err)
		}
		if got, err := r.LastBefore(f.ts(100)); err != nil || got != 8 {
			t.Errorf("LastBefore after the cuts: %d (%v)", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A cut planned from a stale cut size (another replica cut first) does
// nothing at all and reports false.
func testStaleCut(t *testing.T, f fixture) {
	ctx := t.Context()
	f.append(t, f.st, "acme", 3)
	f.append(t, f.st, "acme", 5)
	want := f.wantLog(t, "acme", 8)
	if err := f.st.SetRetention(ctx, "acme", 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	// No retention row for globex: nothing to cut from.
	f.append(t, f.st, "globex", 8)
	if ok, err := f.st.ApplyCut(ctx, "globex", 0, f.cutAt(t, "globex", 4, "g4")); ok || err != nil {
		t.Errorf("ApplyCut without a retention setting = %v, %v; want false", ok, err)
	}
	if cs := checkpointsOf(t, f.st, "globex"); show(cs) != show([]domain.IssuedCheckpoint{f.issued("globex", 8)}) {
		t.Errorf("ApplyCut that reported false left globex's checkpoints %+v, want only the one at 8", cs)
	}

	cut := f.cutAt(t, "acme", 6, "cut note 6")
	if ok, err := f.st.ApplyCut(ctx, "acme", 0, cut); !ok || err != nil {
		t.Fatalf("ApplyCut(0 → 6) = %v, %v", ok, err)
	}
	// Another replica planned a cut at 4 (and one at 6) from 0.
	for _, stale := range []domain.Cut{f.cutAt(t, "acme", 4, "stale 4"), f.cutAt(t, "acme", 6, "stale 6")} {
		if ok, err := f.st2.ApplyCut(ctx, "acme", 0, stale); ok || err != nil {
			t.Errorf("stale ApplyCut(0 → %d) = %v, %v; want false", stale.Size, ok, err)
		}
	}
	if r, err := f.st.Retention(ctx, "acme"); err != nil || show(r.Cut) != show(cut) {
		t.Errorf("cut after stale ones\n got %+v (%v)\nwant %+v", r.Cut, err, cut)
	}
	wantCP := []domain.IssuedCheckpoint{{StoredCheckpoint: domain.StoredCheckpoint{Size: 6, Note: "cut note 6"}, Issued: cut.At}, f.issued("acme", 8)}
	if cs := checkpointsOf(t, f.st, "acme"); show(cs) != show(wantCP) {
		t.Errorf("checkpoints after stale cuts\n got %+v\nwant %+v", cs, wantCP)
	}
	if got := entriesOf(t, f.st, "acme"); show(got) != show(want.entries[6:]) {
		t.Errorf("entries after stale cuts: %+v", got)
	}
	checkNodes(t, f.st, "acme", want, 6)
}

func testCaps(t *testing.T, f fixture) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i, want := range []bool{true, true, false} {
		ok, err := f.st.AddSecret(ctx, "acme", intake.Secret{ID: fmt.Sprint("s", i), Value: "v", Created: now}, 2)
		if err != nil || ok != want {
			t.Errorf("secret %d under a cap of 2: %v, %v; want %v", i, ok, err, want)
		}
		ok, err = f.st.AddEndpoint(ctx, "acme", outbound.Endpoint{ID: fmt.Sprint("e", i), URL: "https://93.184.215.14/", Secret: "s", Created: now}, 2)
		if err != nil || ok != want {
			t.Errorf("endpoint %d under a cap of 2: %v, %v; want %v", i, ok, err, want)
		}
	}
	if got, err := f.st.ActiveSecrets(ctx, "acme", 10); err != nil || len(got) != 2 || got[0].ID != "s1" || got[1].ID != "s0" {
		t.Errorf("active secrets %+v (%v), want s1, s0", got, err)
	}
	if got, err := f.st.Endpoints(ctx, "acme", listing.Cursor{}, 10); err != nil || len(got) != 2 || got[0].ID != "e0" || got[1].ID != "e1" {
		t.Errorf("endpoints %+v (%v), want e0, e1", got, err)
	}
	if _, ok, err := f.st.Endpoint(ctx, "acme", "e2"); ok || err != nil {
		t.Errorf("refused endpoint stored: %v, %v", ok, err)
	}
	// The cap is per tenant, and holds under racers on two replicas.
	stores := [2]*store.Store{f.st, f.st2}
	if got := race(t, 10, stores, func(st *store.Store, i int) (bool, error) {
		return st.AddSecret(ctx, "globex", intake.Secret{ID: ulid.Make().String(), Value: "v", Created: now}, 3)
	}); got != 3 {
		t.Errorf("%d of 10 racing secrets let in, cap 3", got)
	}
	if got := race(t, 10, stores, func(st *store.Store, i int) (bool, error) {
		return st.AddEndpoint(ctx, "globex", outbound.Endpoint{ID: ulid.Make().String(), URL: "https://93.184.215.14/", Secret: "s", Created: now}, 3)
	}); got != 3 {
		t.Errorf("%d of 10 racing endpoints let in, cap 3", got)
	}
	if got, err := f.st.ActiveSecrets(ctx, "globex", 10); err != nil || len(got) != 3 {
		t.Errorf("globex's active secrets: %d (%v), want 3", len(got), err)
	}
}

// An endpoint's filter, disable and rotated secret round-trip; changes and
// failing streaks are the tenant's own; a deleted endpoint cannot change.
func testEndpointRepair(t *testing.T, f fixture) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, id := range []string{"e1", "e2"} {
		ep := outbound.Endpoint{ID: id, URL: "https://93.184.215.14/", Secret: "s0", Created: now,
			EventTypes: []string{"user.login", "user.logout"}, MinSeverity: "critical"}
		if ok, err := f.st.AddEndpoint(ctx, "acme", ep, 10); !ok || err != nil {
			t.Fatalf("add %s: %v, %v", id, ok, err)
		}
	}
	got, ok, err := f.st.Endpoint(ctx, "acme", "e1")
	if err != nil || !ok || strings.Join(got.EventTypes, ",") != "user.login,user.logout" || got.MinSeverity != "critical" ||
		!got.Disabled.IsZero() || got.PrevSecret != "" {
		t.Fatalf("endpoint = %+v, %v, %v", got, ok, err)
	}
	touched := false
	if _, ok, err := f.st.ChangeEndpoint(ctx, "globex", "e1", func(*outbound.Endpoint) bool { touched = true; return true }); ok || err != nil || touched {
		t.Fatalf("globex changed acme's endpoint: %v, %v (change ran: %v)", ok, err, touched)
	}
	changed, ok, err := f.st.ChangeEndpoint(ctx, "acme", "e1", func(e *outbound.Endpoint) bool {
		e.Disabled, e.DisabledReason = now, "maintenance"
		e.PrevSecret, e.PrevUntil, e.Secret = e.Secret, now.Add(time.Hour), "s1"
		e.EventTypes, e.MinSeverity = nil, ""
		return true
	})
	if err != nil || !ok || changed.Secret != "s1" {
		t.Fatalf("change = %+v, %v, %v", changed, ok, err)
	}
	got, _, _ = f.st2.Endpoint(ctx, "acme", "e1")
	if !got.Disabled.Equal(now) || got.DisabledReason != "maintenance" || got.Secret != "s1" || got.PrevSecret != "s0" ||
		!got.PrevUntil.Equal(now.Add(time.Hour)) || got.EventTypes != nil || got.MinSeverity != "" {
		t.Fatalf("changed endpoint read back = %+v", got)
	}
	if list, err := f.st.Endpoints(ctx, "acme", listing.Cursor{}, 10); err != nil || len(list) != 2 || list[0].Disabled.IsZero() {
		t.Fatalf("a disabled endpoint is still listed, as disabled: %+v, %v", list, err)
	}
	if _, err := f.st.DeleteEndpoint(ctx, "acme", "e2", now); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := f.st.ChangeEndpoint(ctx, "acme", "e2", func(*outbound.Endpoint) bool { return true }); ok || err != nil {
		t.Fatalf("deleted endpoint changed: %v, %v", ok, err)
	}

	// The failing streak: the first attempt after the last delivered one.
	if _, failing, err := f.st.FailingSince(ctx, "acme", "e1"); failing || err != nil {
		t.Fatalf("no attempts: failing %v, %v", failing, err)
	}
	record := func(endpoint, delivery string, at time.Time, outcome string) {
		t.Helper()
		if _, err := f.st.RecordAttempt(ctx, "acme", outbound.Attempt{DeliveryID: delivery, EndpointID: endpoint, Seq: 1, At: at,
			Outcome: outcome}, 100); err != nil {
			t.Fatal(err)
		}
	}
	t1 := now.Add(-4 * time.Hour)
	record("e1", "d1", t1, outbound.OutcomeFailed)
	record("e1", "d1", t1.Add(time.Hour), outbound.OutcomeDelivered)
	if _, failing, err := f.st.FailingSince(ctx, "acme", "e1"); failing || err != nil {
		t.Fatalf("last attempt delivered: failing %v, %v", failing, err)
	}
	record("e1", "d2", t1.Add(2*time.Hour), outbound.OutcomeFailed)
	record("e1", "d2", t1.Add(3*time.Hour), outbound.OutcomeDead)
	record("e2", "d3", t1.Add(3*time.Hour), outbound.OutcomeDelivered) // another endpoint's
	if since, failing, err := f.st.FailingSince(ctx, "acme", "e1"); !failing || err != nil || !since.Equal(t1.Add(2*time.Hour)) {
		t.Fatalf("failing since %v (%v, %v), want %v", since, failing, err, t1.Add(2*time.Hour))
	}
	if _, failing, err := f.st.FailingSince(ctx, "globex", "e1"); failing || err != nil {
		t.Fatalf("globex sees acme's attempts: %v, %v", failing, err)
	}
	if _, err := f.st.RequeueDeliveries(ctx, outbox.RequeueRequest{All: true}, now); err == nil {
		t.Fatal("a requeue of deliveries without a tenant ran")
	}
}

// openStore migrates a fresh database of b and returns its owner's handle
// (for tampering), the store on the service's role and that role's URL.
func openStore(t *testing.T, b storetest.Backend) (*pstore.DB, *store.Store, string) {
	t.Helper()
	migrateURL, appURL := b.NewDB(t)
	owner := storetest.Open(t, migrateURL)
	if err := owner.Migrate(t.Context(), store.Migrations); err != nil {
		t.Fatal(err)
	}
	return owner, store.New(storetest.Open(t, appURL)), appURL
}
