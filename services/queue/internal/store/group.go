package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	pstore "github.com/echopilot/echopilot/platform/store"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

// Group commit: the writes of concurrent callers on the job path (enqueue,
// claim, complete) share transactions and, where they can, statements. Committing
// is what such a write costs most (a WAL flush on PostgreSQL, page writes
// on SQLite), and with PostgreSQL every statement is also a round trip, so
// sharing both is what makes thousands of jobs a second possible on a
// small machine. Each caller still waits for its own outcome, committed,
// before it answers.
//
// An idle queue runs each write alone at once: batches form only from the
// writes that arrive while earlier ones are running.
const (
	// groupBatch caps the writes per transaction, bounding how long its row
	// locks (and SQLite's write lock) are held and the size of a statement.
	groupBatch = 64
	// groupTimeout bounds one shared transaction. It is detached from the
	// callers' contexts: one caller giving up must not fail the others.
	groupTimeout = 30 * time.Second
)

// opKind orders the writes of one tenant within a transaction.
type opKind int

const (
	opEnqueue opKind = iota
	opComplete
	opClaim
)

// groupOp is one caller's write and, once done is closed, its outcome.
type groupOp struct {
	ctx    context.Context
	tenant string
	kind   opKind

	// enqueue: the job in, the stored job and duplicate out.
	newJob    domain.NewJob
	duplicate bool
	// complete: the lease and completion in.
	ref        domain.LeaseRef
	completion domain.Completion
	// claim: the claim in, the leases and the expired leases out.
	claim  domain.Claim
	leases []domain.Lease
	expiry domain.Expiry
	// job is the stored job (or, with domain.ErrConflict, the job as it is).
	job domain.Job
	// err is nil, a domain outcome (domain.ErrConflict, domain.ErrNotFound)
	// or a failure.
	err  error
	done chan struct{}
}

// batch is what the writes of one transaction share.
type batch struct {
	announce map[string]bool // tenants with new runnable jobs
}

// wake records that tenant has a new runnable job, to announce once the
// transaction has committed.
func (b *batch) wake(tenant string) {
	if b.announce == nil {
		b.announce = make(map[string]bool)
	}
	b.announce[tenant] = true
}

// group runs the writes submitted to it in shared transactions, with up to
// max transactions at a time.
type group struct {
	s   *Store
	max int

	mu sync.Mutex
	// queue holds units: the ops of one call, which share a transaction
	// (a worker's batch of completions and its next claim, say).
	queue   [][]*groupOp
	running int
}

// do runs ops, one caller's writes, in one transaction shared with other
// callers' writes and returns once it is committed (or has failed); the
// outcomes are in the ops. A unit is never split across transactions
// (unless a statement fails and every op runs alone), so it can hold more
// than groupBatch ops; the callers bound its size.
func (g *group) do(ops ...*groupOp) {
	for _, op := range ops {
		op.done = make(chan struct{})
		if op.tenant == "" {
			op.err = pstore.ErrNoTenant
			close(op.done)
		}
	}
	ops = slices.DeleteFunc(slices.Clone(ops), func(op *groupOp) bool { return op.err != nil })
	if len(ops) == 0 {
		return
	}
	g.mu.Lock()
	g.queue = append(g.queue, ops)
	if g.running < g.max {
		g.running++
		go g.drain()
	}
	g.mu.Unlock()
	for _, op := range ops {
		<-op.done
	}
}

// drain runs batches until the queue is empty: each takes whole units
// while it has fewer than groupBatch ops.
func (g *group) drain() {
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		var ops []*groupOp
		n := 0
		for n < len(g.queue) && len(ops) < groupBatch {
			ops = append(ops, g.queue[n]...)
			n++
		}
		g.queue = slices.Delete(g.queue, 0, n)
		g.mu.Unlock()
		g.run(ops)
	}
}

// run executes ops in one transaction. When a statement fails, the
// transaction is rolled back and every op runs again alone, so that each
// caller gets its own outcome and one bad write cannot fail the others. A
// failed commit is reported to all: their writes may or may not have been
// committed, as with any failed commit.
func (g *group) run(ops []*groupOp) {
	live := ops[:0]
	for _, op := range ops {
		if err := op.ctx.Err(); err != nil {
			op.err = err
			close(op.done)
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return
	}
	slices.SortStableFunc(live, func(a, b *groupOp) int {
		return cmp.Or(strings.Compare(a.tenant, b.tenant), cmp.Compare(a.kind, b.kind))
	})
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	uncommitted, err := g.s.writeOps(ctx, live)
	if err != nil && uncommitted && len(live) > 1 {
		for _, op := range live {
			g.alone(op)
		}
		return
	}
	for _, op := range live {
		if err != nil {
			op.err = err
		}
		close(op.done)
	}
}

// alone runs op in a transaction of its own.
func (g *group) alone(op *groupOp) {
	defer close(op.done)
	if op.err = op.ctx.Err(); op.err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(op.ctx), groupTimeout)
	defer cancel()
	if _, err := g.s.writeOps(ctx, []*groupOp{op}); err != nil {
		op.err = err
	}
}

// writeOps runs ops, sorted by tenant and kind, in one transaction: each
// tenant's enqueues share a statement, and so do its completions; claims,
// which differ in worker, types and limit, run one by one, after them.
// uncommitted says whether the error came before the commit, so that
// nothing was committed.
func (s *Store) writeOps(ctx context.Context, ops []*groupOp) (uncommitted bool, err error) {
	written := false
	b := &batch{}
	err = s.db.InWriteTx(ctx, func(tx *sql.Tx) error {
		clear(b.announce)
		scope := ""
		for run := range chunkBy(ops, func(a, b *groupOp) bool { return a.tenant == b.tenant && a.kind == b.kind }) {
			if tenant := run[0].tenant; tenant != scope {
				if err := s.db.SetTenant(ctx, tx, tenant); err != nil {
					return err
				}
				scope = tenant
			}
			var err error
			switch run[0].kind {
			case opEnqueue:
				err = s.enqueueMany(ctx, tx, b, run)
			case opComplete:
				err = s.completeMany(ctx, tx, run)
			case opClaim:
				for _, op := range run {
					if err = s.claimJobs(ctx, tx, op); err != nil {
						break
					}
				}
			}
			if err != nil {
				return err
			}
		}
		written = true
		return nil
	})
	if err == nil && s.announcer != nil {
		s.announcer.announce(b.announce)
	}
	return !written, err
}

// chunkBy yields the runs of consecutive elements that belong together.
func chunkBy[T any](s []T, same func(a, b T) bool) func(yield func([]T) bool) {
	return func(yield func([]T) bool) {
		for start := 0; start < len(s); {
			end := start + 1
			for end < len(s) && same(s[start], s[end]) {
				end++
			}
			if !yield(s[start:end]) {
				return
			}
			start = end
		}
	}
}

// isOutcome reports whether err is a domain outcome rather than a failure.
func isOutcome(err error) bool {
	return errors.Is(err, domain.ErrConflict) || errors.Is(err, domain.ErrNotFound)
}
