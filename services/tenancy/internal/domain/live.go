package domain

import (
	"context"
	"fmt"
	"sync"

	"github.com/oklog/ulid/v2"
)

// Live counts the decisions this process made that are not stored yet, so
// stats include a caller's latest decisions (its own current call among
// them) without a database write on the request path. Decisions are stored
// in numbered batches by Persist; Stats adds what is still pending to what
// is stored.
//
// Reads never wait for a batch write. Each batch's transaction also stores
// its number as this process's last committed batch (Mark), and a stats
// read gets that number from the same snapshot as the counters. The read
// then knows exactly which batches its snapshot holds and corrects the
// pending counts by the batches that committed, or were taken out of
// pending, between its snapshot and its look at them.
type Live struct {
	writer string
	mu     sync.Mutex // guards the fields below
	// pending counts this process's decisions minus the batches taken out
	// (1 … out): those committed, and those whose write failed, whose
	// decisions stay in pending and go again in a later batch.
	pending map[string]counts
	next    int64 // the last batch number handed out
	out     int64
	// batches are the counts of the recent batches a read may have to
	// correct by (a failed one counts nothing: it is in neither place).
	batches map[int64]map[string]counts
}

// keptBatches bounds Live.batches: a read slower than this many batch
// writes retries.
const keptBatches = 4096

type counts struct{ total, denied, crossDenied int64 }

func (c *counts) apply(d Decision, sign int64) {
	c.total += sign
	if !d.Allowed {
		c.denied += sign
	}
	if d.CrossTenantDenied() {
		c.crossDenied += sign
	}
}

func (c *counts) add(o counts, sign int64) {
	c.total += sign * o.total
	c.denied += sign * o.denied
	c.crossDenied += sign * o.crossDenied
}

func tally(ds []Decision) map[string]counts {
	m := map[string]counts{}
	for _, d := range ds {
		c := m[d.TenantID]
		c.apply(d, 1)
		m[d.TenantID] = c
	}
	return m
}

// NewLive returns an empty Live under a new writer id.
func NewLive() *Live {
	return &Live{writer: ulid.Make().String(), pending: map[string]counts{}, batches: map[int64]map[string]counts{}}
}

// Add counts d as pending. It runs on the request path: no I/O.
func (l *Live) Add(d Decision) {
	l.mu.Lock()
	c := l.pending[d.TenantID]
	c.apply(d, 1)
	l.pending[d.TenantID] = c
	l.mu.Unlock()
}

// Drop forgets pending decisions that will never be stored (their loss is
// counted by the reporter's metrics).
func (l *Live) Drop(ds []Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subtract(tally(ds))
}

func (l *Live) subtract(t map[string]counts) {
	for tenant, bc := range t {
		c := l.pending[tenant]
		c.add(bc, -1)
		if c.total == 0 {
			delete(l.pending, tenant)
		} else {
			l.pending[tenant] = c
		}
	}
}

// Persist stores a batch of pending decisions with record under the next
// batch number, then takes them out of pending. Batches are persisted one
// at a time (the decision batcher delivers them in order).
func (l *Live) Persist(ctx context.Context, record func(context.Context, []Decision, Mark) error, ds []Decision) error {
	t := tally(ds)
	l.mu.Lock()
	l.next++
	seq := l.next
	l.batches[seq] = t
	delete(l.batches, seq-keptBatches)
	l.mu.Unlock()
	err := record(ctx, ds, Mark{Writer: l.writer, Seq: seq})
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.batches[seq] = nil
	} else {
		l.subtract(t)
	}
	l.out = seq
	return err
}

// Stats returns the stored counters within scope plus the pending ones.
func (l *Live) Stats(ctx context.Context, st Store, scope Scope) (Stats, error) {
	scope.Writer = l.writer
	for range 3 {
		s, err := st.Stats(ctx, scope)
		if err != nil {
			return Stats{}, err
		}
		if l.addPending(&s, scope) {
			return s, nil
		}
	}
	return Stats{}, fmt.Errorf("stats: %d batches were written during each of three reads", keptBatches)
}

// addPending adds the pending counts within scope to s, read at the
// snapshot holding this process's batches 1 … s.WriterSeq: batches taken
// out of pending after the snapshot are added back, those committed but
// still pending are taken off. It fails when a batch it needs is no longer
// kept.
func (l *Live) addPending(s *Stats, scope Scope) bool {
	if s.PerTenant == nil {
		s.PerTenant = map[string]int64{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lo, hi, sign := s.WriterSeq, l.out, int64(1)
	if lo > hi {
		lo, hi, sign = hi, lo, -1
	}
	c := make(map[string]counts, len(l.pending))
	for tenant, pc := range l.pending {
		c[tenant] = pc
	}
	for seq := lo + 1; seq <= hi; seq++ {
		bc, ok := l.batches[seq]
		if !ok {
			return false
		}
		for tenant, x := range bc {
			y := c[tenant]
			y.add(x, sign)
			c[tenant] = y
		}
	}
	for tenant, x := range c {
		if x.total == 0 || (!scope.AllTenants && tenant != scope.Tenant) {
			continue
		}
		s.Total += x.total
		s.Denied += x.denied
		s.CrossTenantDenied += x.crossDenied
		s.PerTenant[tenant] += x.total
	}
	return true
}
