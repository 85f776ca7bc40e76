package store_test

import (
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/echopilot/echopilot/platform/store/storetest"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
	"github.com/echopilot/echopilot/services/audit/internal/intake"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/listing"
	"github.com/echopilot/echopilot/services/audit/internal/outbound"
	"github.com/echopilot/echopilot/services/audit/internal/store"
)

// replicas returns two stores on one fresh database, each with its own
// connection pool, as two replicas of the service have (on SQLite, two
// processes' worth of writers: each pool has its own write queue).
func replicas(t *testing.T, b storetest.Backend) (*store.Store, *store.Store) {
	t.Helper()
	migrateURL, appURL := b.NewDB(t)
	if err := storetest.Open(t, migrateURL).Migrate(t.Context(), store.Migrations); err != nil {
		t.Fatal(err)
	}
	return store.New(storetest.Open(t, appURL)), store.New(storetest.Open(t, appURL))
}

// race runs n creators at once, alternating between the two stores, and
// returns how many were let in.
func race(t *testing.T, n int, stores [2]*store.Store, create func(st *store.Store, i int) (bool, error)) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	added := 0
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			ok, err := create(stores[i%2], i)
			if err != nil {
				t.Errorf("creator %d: %v", i, err)
				return
			}
			if ok {
				mu.Lock()
				added++
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	return added
}

// Caps hold under 16 concurrent creators spread over two replicas, per
// tenant, and a slot freed (revoked, deleted) is usable again.
func TestCapsUnderConcurrency(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			a, c := replicas(t, b)
			stores := [2]*store.Store{a, c}
			ctx := t.Context()
			now := time.Now().UTC().Truncate(time.Microsecond)
			const secrets, endpoints, creators = 5, 7, 16
			for _, tenant := range []string{"acme", "globex"} {
				got := race(t, creators, stores, func(st *store.Store, i int) (bool, error) {
					return st.AddSecret(ctx, tenant, intake.Secret{ID: ulid.Make().String(), Value: fmt.Sprint("v", i), Created: now}, secrets)
				})
				if got != secrets {
					t.Fatalf("%s: %d of %d concurrent secret creators let in, cap %d", tenant, got, creators, secrets)
				}
				if active, err := a.ActiveSecrets(ctx, tenant, 100); err != nil || len(active) != secrets {
					t.Fatalf("%s: %d active secrets (%v), want %d", tenant, len(active), err, secrets)
				}
				got = race(t, creators, stores, func(st *store.Store, i int) (bool, error) {
					return st.AddEndpoint(ctx, tenant, outbound.Endpoint{ID: ulid.Make().String(), URL: fmt.Sprint("https://93.184.215.14/", i),
						Secret: "s", Created: now}, endpoints)
				})
				if got != endpoints {
					t.Fatalf("%s: %d of %d concurrent endpoint creators let in, cap %d", tenant, got, creators, endpoints)
				}
			}

			// Revoking a secret and deleting an endpoint free one slot each.
			active, err := a.ActiveSecrets(ctx, "acme", 100)
			if err != nil {
				t.Fatal(err)
			}
			sec, ok, err := c.RevokeSecret(ctx, "acme", active[0].ID, now)
			if err != nil || !ok || sec.ID != active[0].ID || !sec.Revoked.Equal(now) || sec.Value != active[0].Value {
				t.Fatalf("revoke = %+v, %v, %v", sec, ok, err)
			}
			if _, ok, err := c.RevokeSecret(ctx, "acme", active[0].ID, now); ok || err != nil {
				t.Fatalf("second revoke = %v, %v", ok, err)
			}
			if _, ok, err := c.RevokeSecret(ctx, "globex", active[1].ID, now); ok || err != nil {
				t.Fatalf("globex revoked acme's secret: %v, %v", ok, err)
			}
			eps, err := a.Endpoints(ctx, "acme", listing.Cursor{}, 100)
			if err != nil || len(eps) != endpoints {
				t.Fatalf("endpoints = %d, %v", len(eps), err)
			}
			if ok, err := a.DeleteEndpoint(ctx, "acme", eps[0].ID, now); !ok || err != nil {
				t.Fatalf("delete endpoint = %v, %v", ok, err)
			}
			if got := race(t, creators, stores, func(st *store.Store, i int) (bool, error) {
				return st.AddSecret(ctx, "acme", intake.Secret{ID: ulid.Make().String(), Value: "w", Created: now}, secrets)
			}); got != 1 {
				t.Fatalf("%d secrets let in after one was revoked, want 1", got)
			}
			if got := race(t, creators, stores, func(st *store.Store, i int) (bool, error) {
				return st.AddEndpoint(ctx, "acme", outbound.Endpoint{ID: ulid.Make().String(), URL: "https://93.184.215.14/", Secret: "s", Created: now}, endpoints)
			}); got != 1 {
				t.Fatalf("%d endpoints let in after one was deleted, want 1", got)
			}
		})
	}
}

// Lists come a page at a time in (created, id) order, rows created in the
// same microsecond included, and never another tenant's.
func TestListPages(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			st := store.New(b.Open(t, store.Migrations))
			ctx := t.Context()
			base := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
			var wantSecrets, wantEndpoints []string
			for i := range 7 {
				created := base.Add(time.Duration(i/3) * time.Microsecond) // three share each instant
				id := fmt.Sprintf("ID%02d", 9-i)                           // ids against creation order
				if ok, err := st.AddSecret(ctx, "acme", intake.Secret{ID: id, Value: "v", Created: created}, 100); !ok || err != nil {
					t.Fatal(ok, err)
				}
				if ok, err := st.AddEndpoint(ctx, "acme", outbound.Endpoint{ID: id, URL: "u", Secret: "s", Created: created}, 100); !ok || err != nil {
					t.Fatal(ok, err)
				}
				wantSecrets, wantEndpoints = append(wantSecrets, id), append(wantEndpoints, id)
			}
			if ok, err := st.AddSecret(ctx, "globex", intake.Secret{ID: "G", Value: "v", Created: base}, 100); !ok || err != nil {
				t.Fatal(ok, err)
			}
			// Revoked secrets are listed; deleted endpoints are not.
			if _, ok, err := st.RevokeSecret(ctx, "acme", wantSecrets[1], base); !ok || err != nil {
				t.Fatal(ok, err)
			}
			if ok, err := st.DeleteEndpoint(ctx, "acme", wantEndpoints[1], base); !ok || err != nil {
				t.Fatal(ok, err)
			}
			wantEndpoints = slices.Delete(wantEndpoints, 1, 2)
			slices.Sort(wantSecrets[:3]) // within an instant, by id
			slices.Sort(wantSecrets[3:6])
			for _, ids := range [][]string{wantEndpoints[:2], wantEndpoints[2:5]} {
				slices.Sort(ids)
			}

			gotSecrets := walk(t, func(after listing.Cursor) ([]intake.Secret, error) { return st.Secrets(ctx, "acme", after, 2) },
				func(s intake.Secret) listing.Cursor { return listing.Cursor{Created: s.Created, ID: s.ID} })
			gotEndpoints := walk(t, func(after listing.Cursor) ([]outbound.Endpoint, error) { return st.Endpoints(ctx, "acme", after, 2) },
				func(e outbound.Endpoint) listing.Cursor { return listing.Cursor{Created: e.Created, ID: e.ID} })
			if !slices.Equal(gotSecrets, wantSecrets) || !slices.Equal(gotEndpoints, wantEndpoints) {
				t.Fatalf("pages: secrets %v, want %v; endpoints %v, want %v", gotSecrets, wantSecrets, gotEndpoints, wantEndpoints)
			}
		})
	}
}

// walk reads a whole list a page of two at a time and returns its ids.
func walk[T any](t *testing.T, list func(after listing.Cursor) ([]T, error), at func(T) listing.Cursor) []string {
	t.Helper()
	var ids []string
	for after := (listing.Cursor{}); ; {
		page, err := list(after)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range page {
			ids = append(ids, at(row).ID)
		}
		if len(page) < 2 {
			return ids
		}
		after = at(page[1])
	}
}

// appendOne is a BuildFunc adding one low entry to the tenant's log.
func appendOne(tenant string, h domain.Head) (domain.Batch, error) {
	var prev *ledger.Entry
	if h.Size > 0 {
		prev = &ledger.Entry{TenantID: tenant, Seq: h.Size, Hash: h.LastHash, TS: h.LastTS}
	}
	e, err := ledger.Link(prev, ledger.Entry{TenantID: tenant, Seq: h.Size + 1, TS: time.Now(), EventType: "x", Severity: "low", Details: "{}"})
	if err != nil {
		return domain.Batch{}, err
	}
	leaf, _ := ledger.DecodeHash(e.Hash)
	nodes, _, next, err := ledger.Append(h.Size, h.Range, [][]byte{leaf})
	return domain.Batch{Entries: []ledger.Entry{e}, Nodes: nodes, Range: next, Checkpoint: []byte("note")}, err
}

// AppendOnce appends when none of its keys was claimed by the tenant, and
// a duplicate claims nothing: its other keys stay free.
func TestAppendOnceClaims(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := b.Open(t, store.Migrations)
			st := store.New(db)
			ctx := t.Context()
			until := time.Now().Add(time.Hour)
			claims := func(keys ...string) []domain.Claim {
				var out []domain.Claim
				for _, k := range keys {
					out = append(out, domain.Claim{Key: k, Until: until})
				}
				return out
			}
			for i, step := range []struct {
				tenant string
				keys   []string
				dup    bool
			}{
				{"acme", []string{"eps:1", "evt:X"}, false},
				{"acme", []string{"eps:2", "evt:X"}, true}, // re-signed: new replay key, same sender id
				{"acme", []string{"eps:2"}, false},         // so eps:2 was not claimed
				{"globex", []string{"eps:1", "evt:X"}, false},
				{"acme", []string{"eps:3", "evt:Y"}, false},
				{"acme", []string{"eps:1"}, true},
			} {
				dup, err := st.AppendOnce(ctx, step.tenant, claims(step.keys...), appendOne)
				if err != nil || dup != step.dup {
					t.Fatalf("step %d %s %v: dup %v, %v; want dup %v", i, step.tenant, step.keys, dup, err, step.dup)
				}
			}
			for tenant, want := range map[string]uint64{"acme": 3, "globex": 1} {
				if n, err := st.Size(ctx, tenant); err != nil || n != want {
					t.Fatalf("%s has %d entries (%v), want %d", tenant, n, err, want)
				}
			}
			// Expired claims are pruned by the next append, and a key may
			// then be claimed again.
			if dup, err := st.AppendOnce(ctx, "acme", []domain.Claim{{Key: "evt:Z", Until: time.Now().Add(-time.Second)}}, appendOne); dup || err != nil {
				t.Fatal(dup, err)
			}
			if dup, err := st.AppendOnce(ctx, "acme", claims("evt:Z"), appendOne); dup || err != nil {
				t.Fatalf("expired key claimed again: dup %v, %v", dup, err)
			}
			var n int
			err := db.InAllTenantsReadTx(ctx, func(tx *sql.Tx) error {
				return tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM claimed_keys").Scan(&n)
			})
			if err != nil || n != 8 {
				t.Fatalf("claimed keys: %d (%v), want 8 (6 of acme's, 2 of globex's)", n, err)
			}
		})
	}
}
