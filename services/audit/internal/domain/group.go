package domain

import (
	"context"
	"sync"
	"time"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// Group commit of appends: concurrent calls that append to one tenant only
// share a transaction, and so one lock of the tenant's head, one tree
// extension, one head update and one signed checkpoint. Without it each
// call waits for the head lock in turn and pays all of these (and a
// commit) alone, so single-entry appends to a busy tenant queue.
//
// Per tenant, the first call leads: it writes itself at once, alone, on
// its own goroutine. Calls that arrive meanwhile wait in the tenant's
// queue; when the leader is done, the first of them leads the next
// transaction, which takes them all, in arrival order, up to
// MaxAppendBatch entries. Calls naming several tenants are not grouped
// (they lock their heads in one transaction of their own, as before).
//
// A group succeeds or fails as a whole: every call of a failed group gets
// its error, and nothing of the group was committed unless the commit
// itself failed, which, as for any failed commit, leaves the outcome
// unknown; callers retry, and idempotency keys make a retry of an append
// that did commit a duplicate. Entries are validated before they join a
// group, so an invalid call fails alone and never fails others. Keys are
// claimed in the group's order, so a key given twice in one group appends
// once: the later call gets it back as a duplicate (no entry).
//
// This is not platform/batcher (which does not wait for delivery and
// retries a batch, where a caller here must learn its own outcome and a
// retry needs a fresh head) nor the queue's group (which shares a
// transaction among any tenants' writes with a fixed number of
// transactions at a time, and reruns a failed group's writes alone: an
// append cannot be rerun blindly after an unknown commit). What they share
// is a queue and a drain loop, too little to lift into platform.
type appendGroups struct {
	mu      sync.Mutex
	tenants map[string]*[]*appendCall // the waiting calls of tenants being written
}

// groupTimeout bounds one group's transaction. It is detached from the
// callers' contexts: one caller giving up must not fail the others.
const groupTimeout = 30 * time.Second

// appendCall is one call's drafts and, once its turn says so, its outcome.
type appendCall struct {
	ctx   context.Context
	draft []ledger.Draft
	keys  []string
	out   []ledger.Entry
	err   error
	// turn says true when the call is to lead the next group, false when
	// its outcome is in.
	turn chan bool
}

// append appends draft, all of tenant, in a transaction shared with
// concurrent calls to tenant, and returns once it is committed or failed.
func (g *appendGroups) append(ctx context.Context, s *Service, tenant string, draft []ledger.Draft, keys []string) ([]ledger.Entry, error) {
	call := &appendCall{ctx: ctx, draft: draft, keys: keys, turn: make(chan bool, 1)}
	g.mu.Lock()
	if g.tenants == nil {
		g.tenants = make(map[string]*[]*appendCall)
	}
	queue, writing := g.tenants[tenant]
	if !writing {
		queue = new([]*appendCall)
		g.tenants[tenant] = queue
	}
	*queue = append(*queue, call)
	g.mu.Unlock()
	// Waits for the outcome even if ctx ends: the group may commit.
	if !writing || <-call.turn {
		g.lead(s, tenant, queue)
		<-call.turn
	}
	return call.out, call.err
}

// lead writes the first waiting calls of tenant, the leader's among them,
// as one group, then hands the lead to the first call left waiting, if
// any. The leader is a caller: a call to an idle tenant is written by its
// own goroutine, at once.
func (g *appendGroups) lead(s *Service, tenant string, queue *[]*appendCall) {
	g.mu.Lock()
	n, entries := 0, 0
	for _, c := range *queue {
		if n > 0 && entries+len(c.draft) > MaxAppendBatch {
			break
		}
		n, entries = n+1, entries+len(c.draft)
	}
	calls := (*queue)[:n:n]
	*queue = (*queue)[n:]
	g.mu.Unlock()
	s.writeGroup(calls)
	g.mu.Lock()
	if len(*queue) == 0 {
		delete(g.tenants, tenant)
	} else {
		(*queue)[0].turn <- true
	}
	g.mu.Unlock()
}

// writeGroup appends calls in one transaction and gives each its outcome.
func (s *Service) writeGroup(calls []*appendCall) {
	live := calls[:0:0]
	var draft []ledger.Draft
	var keys []string
	for _, c := range calls {
		if c.err = c.ctx.Err(); c.err != nil {
			c.turn <- false
			continue
		}
		live = append(live, c)
		draft = append(draft, c.draft...)
		keys = append(keys, c.keys...)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), groupTimeout)
	defer cancel()
	appended, err := s.write(ctx, draft, keys)
	at := 0
	for _, c := range live {
		if err != nil {
			c.err = err
		} else {
			for _, e := range appended[at : at+len(c.draft)] {
				if e != nil {
					c.out = append(c.out, *e)
				}
			}
		}
		at += len(c.draft)
		c.turn <- false
	}
}
