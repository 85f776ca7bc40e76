package domain

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// groupStore is a Store whose Append keeps one tenant's head in memory,
// records how many entries each call wrote and can hold a call until
// released or fail it.
type groupStore struct {
	Store // nil: only Append is used
	mu    sync.Mutex
	head  Head
	keys  map[string]bool
	calls []int // entries given to each Append
	fail  map[int]error
	gate  chan struct{} // the first Append waits for it
}

func (s *groupStore) Append(_ context.Context, tenants []string, keys map[string][]string, build BuildFunc) error {
	s.mu.Lock()
	n := len(s.calls)
	s.calls = append(s.calls, len(keys[tenants[0]]))
	s.mu.Unlock()
	if n == 0 && s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail[n]; err != nil {
		return err
	}
	// One transaction: claims and head change together, or not at all.
	claimed := map[string]bool{}
	h := s.head
	h.Duplicate = make([]bool, len(keys[tenants[0]]))
	for i, k := range keys[tenants[0]] {
		if k != "" {
			h.Duplicate[i] = s.keys[k] || claimed[k]
			claimed[k] = true
		}
	}
	h.Endpoints = func() ([]Route, error) { return nil, nil }
	b, err := build(tenants[0], h)
	if err != nil || len(b.Entries) == 0 {
		return err
	}
	for k := range claimed {
		s.keys[k] = true
	}
	last := b.Entries[len(b.Entries)-1]
	s.head = Head{Size: last.Seq, LastHash: last.Hash, LastTS: last.TS, Range: b.Range}
	return nil
}

// queued is how many calls wait in tenant's group.
func queued(svc *Service, tenant string) int {
	svc.groups.mu.Lock()
	defer svc.groups.mu.Unlock()
	if q := svc.groups.tenants[tenant]; q != nil {
		return len(*q)
	}
	return 0
}

func newGroupService(t *testing.T, st Store) *Service {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "audit.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(st, Config{Signer: signer, VerifierKey: vkey})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// appendAll starts one single-entry Append of tenant per key ("" for none)
// while the first holds the store, waits until the others are queued,
// releases it, and returns each call's entries and error.
func appendAll(t *testing.T, svc *Service, st *groupStore, keys []string, user func(i int) string) ([][]ledger.Entry, []error) {
	t.Helper()
	out, errs := make([][]ledger.Entry, len(keys)), make([]error, len(keys))
	var wg sync.WaitGroup
	call := func(i int) {
		out[i], errs[i] = svc.Append(t.Context(), Caller{Tenant: "acme"}, []NewEntry{{
			Key: keys[i], EventType: "group.test", User: user(i), Severity: "low",
		}})
	}
	wg.Go(func() { call(0) })
	for queued(svc, "acme") != 0 || func() bool { st.mu.Lock(); defer st.mu.Unlock(); return len(st.calls) == 0 }() {
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < len(keys); i++ {
		wg.Go(func() { call(i) })
	}
	for queued(svc, "acme") != len(keys)-1 {
		time.Sleep(time.Millisecond)
	}
	close(st.gate)
	wg.Wait()
	return out, errs
}

// Calls that arrive while a tenant's append is written go together in one
// store append (one head update, one checkpoint), and each gets its own
// entry back.
func TestConcurrentAppendsShareATransaction(t *testing.T) {
	st := &groupStore{keys: map[string]bool{}, gate: make(chan struct{})}
	svc := newGroupService(t, st)
	const callers = 16
	out, errs := appendAll(t, svc, st, make([]string, callers), func(i int) string { return fmt.Sprint("u", i) })
	if fmt.Sprint(st.calls) != fmt.Sprint([]int{1, callers - 1}) {
		t.Fatalf("store appends of %v entries, want [1 %d]", st.calls, callers-1)
	}
	seen := map[uint64]bool{}
	for i := range callers {
		if errs[i] != nil || len(out[i]) != 1 || out[i][0].User != fmt.Sprint("u", i) || seen[out[i][0].Seq] {
			t.Fatalf("call %d: %v, %v", i, out[i], errs[i])
		}
		seen[out[i][0].Seq] = true
	}
	if st.head.Size != callers {
		t.Fatalf("head size %d, want %d", st.head.Size, callers)
	}
}

// A key given by two calls of one group appends once: the later call gets
// no entry, as a redelivery would.
func TestIdempotencyKeysInOneGroup(t *testing.T) {
	st := &groupStore{keys: map[string]bool{}, gate: make(chan struct{})}
	svc := newGroupService(t, st)
	keys := []string{"first", "a", "b", "a", "", "b", "first"}
	out, errs := appendAll(t, svc, st, keys, func(i int) string { return fmt.Sprint("u", i) })
	// The queued calls arrive in any order: of two with one key, either
	// may be the one appended.
	got := map[string]int{}
	for i := range keys {
		if errs[i] != nil || len(out[i]) > 1 || (keys[i] == "" || i == 0) && len(out[i]) != 1 {
			t.Fatalf("call %d (key %q): %v, %v", i, keys[i], out[i], errs[i])
		}
		got[keys[i]] += len(out[i])
	}
	if fmt.Sprint(got) != fmt.Sprint(map[string]int{"": 1, "a": 1, "b": 1, "first": 1}) {
		t.Fatalf("entries appended per key: %v", got)
	}
	if st.head.Size != 4 {
		t.Fatalf("head size %d, want 4", st.head.Size)
	}
}

// A group that fails fails every call in it, and none of its entries or
// keys is kept; a retry appends.
func TestFailedGroupFailsEachCall(t *testing.T) {
	boom := errors.New("boom")
	st := &groupStore{keys: map[string]bool{}, gate: make(chan struct{}), fail: map[int]error{1: boom}}
	svc := newGroupService(t, st)
	keys := []string{"", "k1", "k2", "k3"}
	_, errs := appendAll(t, svc, st, keys, func(i int) string { return fmt.Sprint("u", i) })
	for i, err := range errs {
		if (i == 0) != (err == nil) || (i > 0 && !errors.Is(err, boom)) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	out, err := svc.Append(t.Context(), Caller{Tenant: "acme"}, []NewEntry{{Key: "k2", EventType: "retry"}})
	if err != nil || len(out) != 1 || out[0].Seq != 2 {
		t.Fatalf("retry: %v, %v", out, err)
	}
}
