package domain

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/listing"
)

// Domain is the ErrorInfo domain of this service's errors.
const Domain = "audit.echopilot"

// Error reasons.
const (
	ReasonEntryInvalid      = "ENTRY_INVALID"
	ReasonBatchTooLarge     = "BATCH_TOO_LARGE"
	ReasonTenantNotAllowed  = "TENANT_NOT_ALLOWED"
	ReasonProofRange        = "PROOF_OUT_OF_RANGE"
	ReasonCheckpointInvalid = "CHECKPOINT_INVALID"
)

// Limits.
const (
	MaxAppendBatch = 1000
	maxField       = 1024
)

// Caller is who is asking, as established by the identity layer.
type Caller struct {
	Tenant  string
	Service bool // holds the service role: may append for any tenant
	// Admin is a platform admin or an admin of Tenant (verified token).
	Admin bool
}

// NewEntry is an entry to append; TenantID empty means the caller's.
type NewEntry struct {
	TenantID string
	// Key, when set, makes the append idempotent (see KeyRetention).
	Key       string
	EventType string
	User      string
	Action    string
	Resource  string
	Details   []byte // a JSON object, or empty
	Severity  string
}

// Config is what the ledger needs besides its store.
type Config struct {
	Signer note.Signer
	// Events makes the outbox events an append writes with its entries
	// (outbound.Events: webhook deliveries); nil writes none.
	Events EventsFunc
	// Retention shapes the deletion of old entries.
	Retention RetentionConfig
	// Hooks hear of what happened, for metrics and wake-ups.
	Hooks Hooks
	// VerifierKey is the public note key of Signer.
	VerifierKey string
	// PreviousVerifierKeys are the public keys of earlier signing keys:
	// the checkpoints they signed still verify after a key change.
	PreviousVerifierKeys []string
	Now                  func() time.Time // time.Now when nil
}

// Service implements the ledger's use cases.
type Service struct {
	store     Store
	cfg       Config
	verifiers []note.Verifier // the current key's first
	opener    *ledger.Opener  // of verifiers, remembering the checkpoints verified
	rf        compact.RangeFactory
	full      fullLimiter // of verify=full requests
	groups    appendGroups
	witness   witness // the largest checkpoint seen verified, per tenant
	reached   reachedStates
}

// NewService returns a Service.
func NewService(st Store, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Retention.prepare(); err != nil {
		return nil, err
	}
	var vs []note.Verifier
	for i, key := range append([]string{cfg.VerifierKey}, cfg.PreviousVerifierKeys...) {
		v, err := note.NewVerifier(key)
		if err != nil {
			if i == 0 {
				return nil, fmt.Errorf("verifier key: %w", err)
			}
			return nil, fmt.Errorf("previous verifier key %d: %w", i, err)
		}
		vs = append(vs, v)
	}
	return &Service{store: st, cfg: cfg, verifiers: vs, opener: ledger.NewOpener(openedNotes, vs...),
		rf: compact.RangeFactory{Hash: ledger.HashChildren}}, nil
}

// openedNotes bounds the checkpoints the service remembers as verified
// (about 200 bytes each).
const openedNotes = 200_000

// VerifierKey is the note verifier key of the checkpoints.
func (s *Service) VerifierKey() string { return s.cfg.VerifierKey }

// Append validates and appends entries, in order, each tenant's as one
// batch with one signed checkpoint, all in one transaction. Entries whose
// idempotency key was taken before are left out; the result holds the
// appended ones in request order. Calls whose entries all belong to one
// tenant share transactions with concurrent calls to that tenant (see
// appendGroups).
func (s *Service) Append(ctx context.Context, c Caller, in []NewEntry) ([]ledger.Entry, error) {
	if len(in) == 0 || len(in) > MaxAppendBatch {
		return nil, invalid(ReasonBatchTooLarge, "append 1 to %d entries per call, got %d", MaxAppendBatch, len(in))
	}
	draft := make([]ledger.Draft, len(in))
	keys := make([]string, len(in))
	for i, n := range in {
		d, err := s.draft(c, n)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if len(n.Key) > maxField {
			return nil, invalid(ReasonEntryInvalid, "entry %d: idempotency_key is longer than %d bytes", i, maxField)
		}
		draft[i], keys[i] = d, n.Key
	}
	var out []ledger.Entry
	var err error
	if tenant := draft[0].Entry().TenantID; !slices.ContainsFunc(draft, func(d ledger.Draft) bool { return d.Entry().TenantID != tenant }) {
		out, err = s.groups.append(ctx, s, tenant, draft, keys)
	} else {
		out, err = s.appendDrafts(ctx, draft, keys)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendOnce appends n to tenant's log (n.TenantID empty or tenant; claims
// stand for n.Key) unless one of claims was claimed in that log before:
// then nothing is appended and it reports a duplicate. Intake appends
// compliance events with it, claiming the delivery's replay key and the
// event's id.
func (s *Service) AppendOnce(ctx context.Context, tenant string, claims []Claim, n NewEntry) (ledger.Entry, bool, error) {
	draft, err := s.draft(Caller{Tenant: tenant}, n)
	if err != nil {
		return ledger.Entry{}, false, err
	}
	var out ledger.Entry
	events := 0
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	dup, err := s.store.AppendOnce(ctx, tenant, claims, func(tenant string, h Head) (Batch, error) {
		b, err := s.build(tenant, h, now, []ledger.Draft{draft}, []int{0})
		if err == nil {
			out, events = b.Entries[0], len(b.Events)
		}
		return b, err
	})
	if err != nil {
		return ledger.Entry{}, false, err
	}
	if !dup {
		s.cfg.Hooks.appended(1, events)
	}
	return out, dup, nil
}

// appendDrafts appends draft (keys[i] the idempotency key of draft[i], ""
// for none) in one transaction, each tenant's as one batch, and returns the
// appended entries in order.
func (s *Service) appendDrafts(ctx context.Context, draft []ledger.Draft, keys []string) ([]ledger.Entry, error) {
	appended, err := s.write(ctx, draft, keys)
	if err != nil {
		return nil, err
	}
	var out []ledger.Entry
	for _, e := range appended {
		if e != nil {
			out = append(out, *e)
		}
	}
	return out, nil
}

// write appends draft as appendDrafts does and returns, for each draft,
// its appended entry, or nil for a duplicate.
func (s *Service) write(ctx context.Context, draft []ledger.Draft, keys []string) ([]*ledger.Entry, error) {
	byTenant := map[string][]int{}
	tenantKeys := map[string][]string{}
	var tenants []string
	for i, d := range draft {
		tenant := d.Entry().TenantID
		if _, ok := byTenant[tenant]; !ok {
			tenants = append(tenants, tenant)
		}
		byTenant[tenant] = append(byTenant[tenant], i)
		tenantKeys[tenant] = append(tenantKeys[tenant], keys[i])
	}
	appended := make([]*ledger.Entry, len(draft))
	entries, events := 0, 0
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	err := s.store.Append(ctx, tenants, tenantKeys, func(tenant string, h Head) (Batch, error) {
		var fresh []int
		for k, i := range byTenant[tenant] {
			if k >= len(h.Duplicate) || !h.Duplicate[k] {
				fresh = append(fresh, i)
			}
		}
		if len(fresh) == 0 {
			return Batch{}, nil
		}
		b, err := s.build(tenant, h, now, draft, fresh)
		if err != nil {
			return Batch{}, err
		}
		for k, i := range fresh {
			appended[i] = &b.Entries[k]
		}
		entries, events = entries+len(b.Entries), events+len(b.Events)
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	s.cfg.Hooks.appended(entries, events)
	return appended, nil
}

// Hooks are called after the events they name; nil ones are skipped.
type Hooks struct {
	// Appended: entries were committed, and with them events for the
	// outbox (when there are, the relay's Kick goes here, so deliveries
	// start at once; when not, a kick would be a claim for nothing).
	Appended func(entries, events int)
	// Verified: a whole log was verified, valid or not.
	Verified func(valid bool)
	// Failed: a verification found a log bad (mode: ModeIncremental,
	// ModeFull or ModeScrub), counted once per finding, not per read of a
	// sticky failure.
	Failed func(mode string)
}

func (h Hooks) appended(entries, events int) {
	if h.Appended != nil && entries > 0 {
		h.Appended(entries, events)
	}
}

func (h Hooks) verified(valid bool) {
	if h.Verified != nil {
		h.Verified(valid)
	}
}

func (h Hooks) failed(mode string) {
	if h.Failed != nil {
		h.Failed(mode)
	}
}

// draft validates n and fills what does not depend on the log's head,
// before the append locks it.
func (s *Service) draft(c Caller, n NewEntry) (ledger.Draft, error) {
	tenant := n.TenantID
	switch {
	case tenant == "":
		tenant = c.Tenant
	case tenant != c.Tenant && !c.Service:
		return ledger.Draft{}, apierr.PermissionDenied(ReasonTenantNotAllowed,
			"only services append to another tenant's log").InDomain(Domain)
	case !identity.ValidTenant(tenant):
		return ledger.Draft{}, invalid(ReasonEntryInvalid, "tenant_id is not a valid tenant id")
	}
	sev := n.Severity
	if sev == "" {
		sev = ledger.SeverityLow
	}
	switch {
	case n.EventType == "":
		return ledger.Draft{}, invalid(ReasonEntryInvalid, "event_type is required")
	case !ledger.ValidSeverity(sev):
		return ledger.Draft{}, invalid(ReasonEntryInvalid, "severity must be low, medium, high or critical")
	}
	for name, v := range map[string]string{"event_type": n.EventType, "user": n.User, "action": n.Action, "resource": n.Resource} {
		if len(v) > maxField {
			return ledger.Draft{}, invalid(ReasonEntryInvalid, "%s is longer than %d bytes", name, maxField)
		}
	}
	d, err := ledger.Prepare(ledger.Entry{TenantID: tenant, EventType: n.EventType, User: n.User,
		Action: n.Action, Resource: n.Resource, Details: string(n.Details), Severity: sev})
	if err != nil {
		return ledger.Draft{}, invalid(ReasonEntryInvalid, "%v", err)
	}
	return d, nil
}

// build links the drafts idx of tenant onto h, extends the tree and signs
// the new checkpoint.
func (s *Service) build(tenant string, h Head, now time.Time, draft []ledger.Draft, idx []int) (Batch, error) {
	var prev *ledger.Entry
	if h.Size > 0 {
		prev = &ledger.Entry{TenantID: tenant, Seq: h.Size, Hash: h.LastHash, TS: h.LastTS}
	}
	// Timestamps never decrease along a log, even if clocks of replicas
	// disagree.
	ts := now
	if ts.Before(h.LastTS) {
		ts = h.LastTS
	}
	b := Batch{Entries: make([]ledger.Entry, len(idx))}
	leaves := make([][]byte, len(idx))
	for k, i := range idx {
		linked, err := draft[i].Link(prev, h.Size+uint64(k)+1, ts)
		if err != nil {
			return Batch{}, err
		}
		b.Entries[k] = linked
		prev = &b.Entries[k]
		if leaves[k], err = hex.DecodeString(linked.Hash); err != nil {
			return Batch{}, err
		}
	}
	nodes, root, next, err := ledger.Append(h.Size, h.Range, leaves)
	if err != nil {
		return Batch{}, fmt.Errorf("extend tree: %w", err)
	}
	b.Nodes, b.Range = nodes, next
	if s.cfg.Events != nil {
		if b.Events, err = s.cfg.Events(tenant, b.Entries, h.Endpoints); err != nil {
			return Batch{}, fmt.Errorf("outbox events: %w", err)
		}
	}
	cp := ledger.Checkpoint{Origin: ledger.Origin(tenant), Size: h.Size + uint64(len(idx)), Root: root}
	if b.Checkpoint, err = ledger.Sign(cp, s.cfg.Signer); err != nil {
		return Batch{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return b, nil
}

// Page is one page of a tenant's log with the verification of the log.
type Page struct {
	Entries []ledger.Entry
	Total   uint64
	Next    string
	Check   Verification
	// Retention is the tenant's retention setting and cut.
	Retention Retention
}

// Verification modes.
const (
	// ModeIncremental: the entries appended since the last verified state
	// were verified, and the page against the signed tree.
	ModeIncremental = "incremental"
	// ModeFull: the whole log was verified.
	ModeFull = "full"
	// ModeScrub: the scrubber's full verification (a metric label).
	ModeScrub = "scrub"
)

// ChainRequest is what a chain read asks for.
type ChainRequest struct {
	Limit  int32
	Offset int64
	Token  string
	// Held is a signed checkpoint the caller kept, checked too.
	Held []byte
	// Full asks for a full verification now (see AllowFull).
	Full bool
	// Filter selects entries, Desc asks for the newest first: such a read
	// pages by Token only (keyset on seq), and proves each entry it
	// returns by itself (see checkFound).
	Filter Filter
	Desc   bool
}

// Chain returns a page of tenant's log (after offset entries, or after a
// page token) with its verification, all from one snapshot. Unless a full
// verification is asked for, it verifies only the entries appended since
// the last verified state, and the page itself: every returned entry's hash
// and link recomputed, and the page (with the entry before it) folded with
// the stored tree nodes into the root of the latest signed checkpoint. So a
// tampered entry a reader is shown is detected at that read; the scrubber
// and full verifications find the rest. A failure sticks (every later read
// reports it) until a full verification passes.
func (s *Service) Chain(ctx context.Context, tenant string, req ChainRequest) (Page, error) {
	size, err := page.Size(req.Limit, listing.DefaultSize, listing.MaxSize)
	if err != nil {
		return Page{}, err
	}
	if req.Offset < 0 {
		return Page{}, invalid(ReasonEntryInvalid, "offset must not be negative")
	}
	q, scope, err := search(tenant, req, size)
	if err != nil {
		return Page{}, err
	}
	after := uint64(req.Offset)
	if req.Token != "" && q == nil {
		a, err := page.Decode(req.Token, tenant)
		if err != nil {
			return Page{}, err
		}
		if _, err := fmt.Sscan(a, &after); err != nil {
			return Page{}, listing.InvalidToken()
		}
	}
	var held *ledger.Checkpoint
	if req.Held != nil {
		cp, err := ledger.Open(req.Held, s.verifiers...)
		if err != nil || cp.Origin != ledger.Origin(tenant) {
			return Page{}, invalid(ReasonCheckpointInvalid, "the checkpoint given is not one this log signed")
		}
		held = &cp
	}
	var p Page
	var start, reached VerifiedState
	err = s.store.ReadSnapshot(ctx, tenant, func(r LogSnapshot) error {
		st, ok, err := r.Verified()
		if err != nil {
			return err
		}
		n, err := r.Size()
		if err != nil {
			return err
		}
		if p, ahead := s.reached.ahead(tenant, st, n); ahead {
			// What a read of this process verified and has not stored
			// yet; the failure and the last full result are the stored ones.
			st, ok = st.progressTo(p), true
		}
		b, err := s.base(r)
		if err != nil {
			return err
		}
		if held != nil && held.Size < b.Size {
			return cutError(b.Size, "the checkpoint given (size %d) is older than the retention cut; check the cut's checkpoint against it instead", held.Size)
		}
		if !ok || st.At.IsZero() || !s.trusts(st.Keys) || st.Size < b.Size {
			// Never verified, or with a key no longer trusted, or from
			// before a retention cut: from the start of the retained log
			// (a failure found before still sticks).
			st = st.restart(b)
		}
		start = st
		p, reached, err = s.readChain(tenant, r, st, b, held, req.Full, q, after, size)
		p.Retention = b.Retention
		return err
	})
	if err != nil {
		return Page{}, err
	}
	// The page was read with one entry more, which only proves a next page
	// exists (its own checks are the next page's).
	p.Entries, p.Next = page.Trim(p.Entries, size, func(e ledger.Entry) string { return fmt.Sprint(e.Seq) }, scope)
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	if err := s.record(ctx, tenant, start, reached, p.Check, req.Full, now); err != nil {
		return Page{}, err
	}
	p.Check.withState(start, reached, req.Full, now)
	return p, nil
}

// readChain is Chain inside the snapshot: the page and its verification,
// and the state the verification reached (valid only when it passed). The
// page holds up to size+1 entries: the last only tells Chain a next page
// exists, and is not checked.
func (s *Service) readChain(tenant string, r LogSnapshot, st, base VerifiedState, held *ledger.Checkpoint, full bool,
	q *Query, after uint64, size int) (Page, VerifiedState, error) {
	var p Page
	entries := func() error {
		var es []ledger.Entry
		var err error
		if q != nil {
			es, err = r.Search(*q)
		} else {
			es, err = r.Entries(after, size+1)
		}
		p.Entries = es
		return err
	}
	if !full && st.FailedSeq > 0 {
		// A failure found before sticks until a full verification passes.
		n, err := r.Size()
		if err != nil {
			return p, VerifiedState{}, err
		}
		p.Total = n
		p.Check = Verification{Mode: ModeIncremental, Entries: st.Size, FirstBad: st.FailedSeq, Reason: st.FailedReason}
		return p, VerifiedState{}, entries()
	}
	// A held checkpoint at or below the verified size would need the old
	// entries: verify fully (rare, and what a held checkpoint always cost).
	if full || (held != nil && held.Size <= st.Size && st.Size > 0) {
		v, reached, err := s.verifyFrom(tenant, r, base, held)
		if err != nil {
			return p, VerifiedState{}, err
		}
		p.Check, p.Total = v, v.Entries
		return p, reached, entries()
	}
	v, reached, err := s.verifyFrom(tenant, r, st, held)
	if err != nil {
		return p, VerifiedState{}, err
	}
	if v.Valid {
		n, err := r.Size()
		if err != nil {
			return p, VerifiedState{}, err
		}
		if n < reached.Size {
			v.fail(n+1, "the log has %d entries but %d were verified: entries were removed or the database rolled back", n, reached.Size)
		}
	}
	if v.Valid {
		var bad uint64
		var reason string
		if q != nil {
			p.Entries, bad, reason, err = s.checkFound(tenant, r, *q, size, reached)
		} else {
			p.Entries, bad, reason, err = s.checkPage(tenant, r, after, size, base.Size, reached)
		}
		if err != nil {
			return p, VerifiedState{}, err
		}
		if bad != 0 {
			v.fail(bad, "%s", reason)
		}
	}
	v.Valid = v.FirstBad == 0
	if v.Valid {
		p.Check, p.Total = v, v.Entries
		return p, reached, nil
	}
	// Something is wrong: a full verification names the first bad entry
	// as precisely as the log allows (it passes when only the stored tree
	// nodes or the head are damaged, or the log was rolled back; then the
	// incremental finding stands).
	fv, _, err := s.verifyFrom(tenant, r, base, held)
	if err != nil {
		return p, VerifiedState{}, err
	}
	if !fv.Valid {
		v = fv
	}
	p.Check, p.Total = v, v.Entries
	return p, VerifiedState{}, entries()
}

// checkPage reads up to size entries after `after` and checks them, with
// the entry before them, against the verified tree of st (whose root is
// the latest signed checkpoint's): each entry's hash and link recomputed,
// none missing, and their leaves folded with the stored nodes of the rest
// of the tree into st.Root. It returns the page, with one more entry when
// there is one (unchecked: it only proves a next page exists), and the
// first bad entry (0 when none).
func (s *Service) checkPage(tenant string, r LogSnapshot, after uint64, size int, cut uint64, st VerifiedState) ([]ledger.Entry, uint64, string, error) {
	n := st.Size
	after = max(after, cut)
	// The first entry checked: the one before the page, or the first one
	// retained (seq 1 without a cut).
	first := max(after, cut+1)
	limit := size + 1
	if first == after {
		limit++
	}
	es, err := r.Entries(first-1, limit)
	if err != nil {
		return nil, 0, "", err
	}
	var page []ledger.Entry
	for i, e := range es {
		if e.Seq > after {
			page = es[i:]
			break
		}
	}
	var want uint64 // entries that must be there: first to min(n, after+size)
	if last := min(n, after+uint64(size)); last >= first {
		want = last - first + 1
	}
	prev := ledger.Genesis
	if len(es) > 0 && es[0].Seq == first {
		// Its hash covers its prev_hash, and the tree covers its hash.
		prev = es[0].PrevHash
	}
	checker := ledger.ResumeChainChecker(first, tenant, prev, time.Time{})
	leaves := make([][]byte, 0, len(es))
	for _, e := range es {
		if e.Seq > n || e.Seq > after+uint64(size) {
			break
		}
		if err := checker.Add(e); err != nil {
			var br *ledger.Break
			if errors.As(err, &br) {
				return page, br.Seq, br.Reason, nil
			}
			return nil, 0, "", err
		}
		leaf, err := hex.DecodeString(e.Hash)
		if err != nil || len(leaf) != 32 {
			return page, e.Seq, "hash is not hex", nil
		}
		leaves = append(leaves, leaf)
	}
	if got := uint64(len(leaves)); got < want {
		return page, first + got, "missing entry (the log ends before the verified size)", nil
	}
	if len(leaves) == 0 {
		return page, 0, "", nil
	}
	err = ledger.VerifyRange(first-1, n, leaves, st.Root, r.Fetch)
	if errors.Is(err, ledger.ErrRangeMismatch) || errors.Is(err, ErrNodeMissing) {
		// The page's leaves are its entries' hashes, and the tree's
		// nodes below ledger.StoredLevel are derived from those of the
		// entries beside them: the damage is in a stored node above, or
		// in an entry beside the page rewritten with its hash; the full
		// verification that follows names which.
		return page, first, fmt.Sprintf(
			"entries %d to %d are not in the signed tree of size %d: rewritten, or the stored tree is damaged",
			first, first+uint64(len(leaves))-1, n), nil
	}
	return page, 0, "", err
}

func zeroState() VerifiedState {
	return VerifiedState{Root: ledger.EmptyRoot(), LastHash: ledger.Genesis}
}

// record keeps what a chain read found: the state advanced after a passing
// verification (in the background: reachedStates), a failure made sticky,
// a full verification's result (both before the read answers).
func (s *Service) record(ctx context.Context, tenant string, start, reached VerifiedState, v Verification, full bool, now time.Time) error {
	s.cfg.Hooks.verified(v.Valid)
	if !v.Valid && v.FirstBad != 0 && (full || start.FailedSeq == 0) {
		s.cfg.Hooks.failed(v.Mode)
	}
	if v.Valid && !full {
		if reached.Size > start.Size || start.At.IsZero() || !s.trusts(start.Keys) {
			s.reached.put(tenant, reached, func(ctx context.Context, reached VerifiedState) error {
				return s.store.UpdateVerified(ctx, tenant, func(cur VerifiedState, _ bool) (VerifiedState, bool) {
					return s.advance(cur, reached, false)
				})
			})
		}
		return nil // nothing new: no write on the common read
	}
	if !v.Valid && !full && start.FailedSeq != 0 {
		return nil // already sticky
	}
	return s.store.UpdateVerified(ctx, tenant, func(cur VerifiedState, _ bool) (VerifiedState, bool) {
		next := cur
		if full {
			next.FullAt, next.FullValid, next.FullFirstBad, next.FullReason = now, v.Valid, v.FirstBad, v.Reason
		}
		switch {
		case !v.Valid && (full || cur.FailedSeq == 0):
			next.FailedSeq, next.FailedReason, next.FailedAt = v.FirstBad, v.Reason, now
		case v.Valid && full:
			next.FailedSeq, next.FailedReason, next.FailedAt = 0, "", time.Time{}
		}
		if v.Valid {
			next, _ = s.advance(next, reached, full)
		}
		return next, true
	})
}

// advance is cur moved on to the state reached by a passing verification,
// when that is news (larger, or cur is none or of a key no longer trusted)
// and no failure stands unless the verification was full; false when it
// is cur unchanged.
func (s *Service) advance(cur, reached VerifiedState, full bool) (VerifiedState, bool) {
	if !(cur.At.IsZero() || reached.Size > cur.Size || !s.trusts(cur.Keys)) || !(full || cur.FailedSeq == 0) {
		return cur, false
	}
	return cur.progressTo(reached), true
}

// Verification is the outcome of checking a log.
type Verification struct {
	Valid   bool
	Entries uint64
	// FirstBad is the first entry found bad (0 when valid).
	FirstBad uint64
	Reason   string
	// Mode is ModeIncremental or ModeFull.
	Mode string
	// VerifiedSize entries are verified, as of VerifiedAt.
	VerifiedSize uint64
	VerifiedAt   time.Time
	// LastFull is the last full verification's result (nil when none).
	LastFull *FullResult
}

// FullResult is what a full verification (the scrubber's or a verify=full
// read's) found.
type FullResult struct {
	At       time.Time
	Valid    bool
	FirstBad uint64
	Reason   string
}

func (v *Verification) fail(seq uint64, format string, args ...any) {
	if v.FirstBad == 0 {
		v.FirstBad, v.Reason = seq, fmt.Sprintf(format, args...)
	}
	v.Valid = false
}

// withState fills the fields that describe the stored state around v.
func (v *Verification) withState(start, reached VerifiedState, full bool, now time.Time) {
	v.VerifiedSize, v.VerifiedAt = start.Size, start.At
	if v.Valid && (full || start.At.IsZero() || reached.Size > start.Size) {
		v.VerifiedSize = reached.Size
		v.VerifiedAt = reached.At
	}
	if full {
		v.LastFull = &FullResult{At: now, Valid: v.Valid, FirstBad: v.FirstBad, Reason: v.Reason}
	} else if !start.FullAt.IsZero() {
		v.LastFull = &FullResult{At: start.FullAt, Valid: start.FullValid, FirstBad: start.FullFirstBad, Reason: start.FullReason}
	}
}

// verifyFrom checks tenant's log from the verified state st on: every
// later entry's hash, its link to the one before, dense sequence numbers
// and timestamps that never decrease (ledger.ChainChecker); then the
// Merkle root of the entries at every later stored signed checkpoint (each
// signature checked), that every entry is covered by one, and, when held is
// given and beyond st, against that checkpoint too (a rolled-back database
// keeps no trace of the checkpoints it lost; a verifier that kept one
// does). From the zero state it checks the whole log. The first problem is
// reported; when none, the state reached.
func (s *Service) verifyFrom(tenant string, r LogSnapshot, st VerifiedState, held *ledger.Checkpoint) (Verification, VerifiedState, error) {
	v, reached, _, err := s.verifyChunk(tenant, r, st, held, 0, false)
	return v, reached, err
}

// errChunkFull stops a scan at the end of a chunk.
var errChunkFull = errors.New("chunk full")

// verifyChunk is verifyFrom over at most limit entries (0: no limit); more
// reports that it stopped at the limit, so the checks that need the end of
// the log were not made and reached is where the next chunk starts. A full
// verification (from the start state) and a scrub's chunk also compare the
// stored tree nodes with the entries (nodecheck.go) and check the log
// against the checkpoint the witness kept (witness.go).
//
// sequential reads and checks on one goroutine: a scrub kept to a CPU share
// measures its busy time by the wall clock, which holds only while it uses
// one core (pipelined, reading and hashing take two).
func (s *Service) verifyChunk(tenant string, r LogSnapshot, st VerifiedState, held *ledger.Checkpoint, limit uint64, sequential bool) (
	v Verification, reached VerifiedState, more bool, err error) {
	stored, err := r.Checkpoints(st.Size)
	if err != nil {
		return Verification{}, VerifiedState{}, false, err
	}
	mode := ModeIncremental
	if st.At.IsZero() { // from the start of the retained log, not a verified state
		mode = ModeFull
	}
	v = Verification{Mode: mode, Entries: st.Size}
	fail := func(seq uint64, format string, args ...any) { v.fail(seq, format, args...) }
	if st.CutCheckpoint != "" {
		if reason := s.checkCut(tenant, st); reason != "" {
			fail(st.Size+1, "%s", reason)
		}
	}
	var cps []ledger.Checkpoint
	for _, sc := range stored {
		cp, err := s.opener.Open([]byte(sc.Note))
		if err != nil || cp.Size != sc.Size || cp.Origin != ledger.Origin(tenant) {
			fail(max(sc.Size, 1), "checkpoint at size %d: bad signature or contents", sc.Size)
			continue
		}
		cps = append(cps, cp)
	}
	if held != nil && held.Size > st.Size {
		cps = append(cps, *held)
	}
	thorough := mode == ModeFull || st.Partial // a full verification, or a scrub's chunk
	cps = s.witness.add(tenant, cps, st.Size, thorough)
	sortBySize(cps)
	nodes := newNodeCheck(r, thorough) // the stored tree nodes, checked by thorough ones
	visit := nodes.visitor()

	checker := ledger.ResumeChainChecker(st.Size+1, tenant, st.LastHash, st.LastTS)
	tree, err := s.rf.NewRange(0, st.Size, append([][]byte(nil), st.Range...))
	if err != nil {
		return Verification{}, VerifiedState{}, false, fmt.Errorf("verified state: %w", err)
	}
	next, lastGood := 0, st.covered() // next checkpoint to compare; size of the last one that matched
	for next < len(cps) && cps[next].Size <= st.Size {
		next++
	}
	check := func(e ledger.Entry) error {
		v.Entries++
		if err := checker.Add(e); err != nil {
			var br *ledger.Break
			if errors.As(err, &br) {
				fail(br.Seq, "%s", br.Reason)
				return nil
			}
			return err
		}
		if v.FirstBad != 0 {
			return nil
		}
		// The entry's hash checked out, so it is the hex of LastSum: the leaf.
		if err := tree.Append(ledger.LeafHash(checker.LastSum()[:]), visit); err != nil {
			return err
		}
		for next < len(cps) && cps[next].Size == tree.End() {
			root, err := tree.GetRootHash(nil)
			if err != nil {
				return err
			}
			if !bytes.Equal(root, cps[next].Root) {
				fail(lastGood+1, "entries %d to %d do not match the signed checkpoint of size %d: rewritten",
					lastGood+1, cps[next].Size, cps[next].Size)
				return nil
			}
			lastGood = cps[next].Size
			next++
		}
		return nodes.settle(lastGood == tree.End(), fail)
	}
	var scanned uint64
	scan := func(fn func(ledger.Entry) error) error {
		return r.Scan(st.Size, func(e ledger.Entry) error {
			if limit > 0 && scanned == limit {
				return errChunkFull
			}
			scanned++
			return fn(e)
		})
	}
	if sequential {
		err = scan(check)
	} else {
		err = scanPipelined(scan, check)
	}
	if more = errors.Is(err, errChunkFull); more {
		err = nil
	}
	if err == nil {
		err = nodes.finish(fail)
	}
	if err != nil {
		return Verification{}, VerifiedState{}, false, err
	}
	if more {
		// Ends of the log are the next chunk's to check.
	} else if v.FirstBad == 0 && next < len(cps) {
		fail(v.Entries+1, "the log ends at %d entries but a signed checkpoint covers %d: entries were removed or the database rolled back",
			v.Entries, cps[len(cps)-1].Size)
	}
	if !more && v.FirstBad == 0 && v.Entries > lastGood {
		// (A chunk that ended between checkpoints leaves this to the next.)
		fail(lastGood+1, "entries from %d on are not covered by a signed checkpoint", lastGood+1)
	}
	v.Valid = v.FirstBad == 0
	if !v.Valid {
		return v, VerifiedState{}, false, nil
	}
	reached = VerifiedState{Size: tree.End(), Root: ledger.EmptyRoot(), Range: append([][]byte(nil), tree.Hashes()...),
		Partial: more, Covered: lastGood}
	if tree.End() > 0 {
		if reached.Root, err = tree.GetRootHash(nil); err != nil {
			return Verification{}, VerifiedState{}, false, err
		}
	}
	reached.LastHash, reached.LastTS = checker.Last()
	reached.At = s.cfg.Now().UTC().Truncate(time.Microsecond) // as stored
	reached.Keys = append([]string{s.cfg.VerifierKey}, s.cfg.PreviousVerifierKeys...)
	s.witness.saw(tenant, cps, lastGood)
	return v, reached, more, nil
}

// trusts reports whether every one of keys is still a verifier key.
func (s *Service) trusts(keys []string) bool {
	for _, k := range keys {
		if k != s.cfg.VerifierKey && !slices.Contains(s.cfg.PreviousVerifierKeys, k) {
			return false
		}
	}
	return true
}

// scanPipelined calls check with every entry of tenant's log in order,
// reading the database and checking in two goroutines: on a large log each
// takes about half the time, and there are two cores to run them.
func scanPipelined(scan ScanFunc, check func(ledger.Entry) error) error {
	const batch = 1024
	batches := make(chan []ledger.Entry, 4)
	// Checked batches come back to be filled again: a batch is 200 kB.
	free := make(chan []ledger.Entry, 6)
	checked := make(chan error, 1)
	go func() {
		var err error
		for b := range batches {
			for _, e := range b {
				if err == nil {
					err = check(e)
				}
			}
			clear(b) // let the entries' strings go
			select {
			case free <- b[:0]:
			default:
			}
		}
		checked <- err
	}()
	next := func() []ledger.Entry {
		select {
		case b := <-free:
			return b
		default:
			return make([]ledger.Entry, 0, batch)
		}
	}
	buf := next()
	scanErr := scan(func(e ledger.Entry) error {
		buf = append(buf, e)
		if len(buf) == batch {
			batches <- buf
			buf = next()
		}
		return nil
	})
	if len(buf) > 0 {
		batches <- buf
	}
	close(batches)
	return errors.Join(scanErr, <-checked)
}

func sortBySize(cps []ledger.Checkpoint) {
	slices.SortStableFunc(cps, func(a, b ledger.Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
}

// Checkpoint is the latest signed checkpoint of tenant's log; for an empty
// log, a freshly signed one of size 0.
func (s *Service) Checkpoint(ctx context.Context, tenant string) (ledger.Checkpoint, []byte, error) {
	sc, ok, err := s.store.LatestCheckpoint(ctx, tenant)
	if err != nil {
		return ledger.Checkpoint{}, nil, err
	}
	if !ok {
		cp := ledger.Checkpoint{Origin: ledger.Origin(tenant), Size: 0, Root: rfc6962.DefaultHasher.EmptyRoot()}
		signed, err := ledger.Sign(cp, s.cfg.Signer)
		return cp, signed, err
	}
	cp, err := ledger.Open([]byte(sc.Note), s.verifiers...)
	if err != nil {
		return ledger.Checkpoint{}, nil, fmt.Errorf("stored checkpoint of size %d: %w", sc.Size, err)
	}
	return cp, []byte(sc.Note), nil
}

// InclusionRequest asks to prove entry Seq in the tree of TreeSize entries
// (0: the current size).
type InclusionRequest struct {
	Seq, TreeSize uint64
}

// InclusionProof proves an entry of tenant's log in one of its trees. It
// returns the proof, the tree's size and the entry's leaf.
func (s *Service) InclusionProof(ctx context.Context, tenant string, req InclusionRequest) ([][]byte, uint64, []byte, error) {
	seq := req.Seq
	var proof [][]byte
	var leaf []byte
	var size uint64
	err := s.store.ReadTree(ctx, tenant, func(n uint64, fetch ledger.Fetch) error {
		var err error
		if size, err = sizeOr(n, req.TreeSize); err != nil {
			return err
		}
		if seq == 0 || seq > size {
			return invalid(ReasonProofRange, "seq must be between 1 and the tree size %d", size)
		}
		// The leaf rides along with the proof's nodes: one fetch, not two.
		leafID := ledger.NodeID{Level: 0, Index: seq - 1}
		withLeaf := func(ids []ledger.NodeID) ([][]byte, error) {
			hs, err := fetch(append([]ledger.NodeID{leafID}, ids...))
			if err != nil {
				return nil, err
			}
			leaf = hs[0]
			return hs[1:], nil
		}
		if proof, err = ledger.InclusionProof(seq-1, size, withLeaf); err != nil || leaf != nil {
			return err
		}
		_, err = withLeaf(nil) // a tree of one entry: the proof is empty
		return err
	})
	if err != nil {
		return nil, 0, nil, s.beforeCut(ctx, tenant, err, seq, "entry %d", seq)
	}
	return proof, size, leaf, nil
}

// ConsistencyRequest asks to prove that the tree of ToSize entries (0: the
// current size) extends the tree of FromSize entries.
type ConsistencyRequest struct {
	FromSize, ToSize uint64
}

// ConsistencyProof proves that one tree of tenant's log extends another. It
// returns the proof and the larger tree's size.
func (s *Service) ConsistencyProof(ctx context.Context, tenant string, req ConsistencyRequest) ([][]byte, uint64, error) {
	from := req.FromSize
	var proof [][]byte
	var size uint64
	err := s.store.ReadTree(ctx, tenant, func(n uint64, fetch ledger.Fetch) error {
		var err error
		if size, err = sizeOr(n, req.ToSize); err != nil {
			return err
		}
		if from == 0 || from > size {
			return invalid(ReasonProofRange, "from_size must be between 1 and to_size %d", size)
		}
		proof, err = ledger.ConsistencyProof(from, size, fetch)
		return err
	})
	return proof, size, s.beforeCut(ctx, tenant, err, from+1, "from_size %d", from)
}

// sizeOr is size, or the log's n entries when size is 0.
func sizeOr(n, size uint64) (uint64, error) {
	if size == 0 {
		return n, nil
	}
	if size > n {
		return 0, invalid(ReasonProofRange, "tree size %d is beyond the log's %d entries", size, n)
	}
	return size, nil
}

// Export writes tenant's log as JSON lines (ledger.WriteExport), from one
// snapshot: the latest checkpoint, then the entries it covers (after the
// retention cut, with the cut line, when a prefix was deleted). With a
// filter, only the entries it selects, each with its inclusion proof
// (exportFiltered).
func (s *Service) Export(ctx context.Context, tenant string, f Filter, w io.Writer) error {
	if !f.IsZero() {
		return s.exportFiltered(ctx, tenant, f, w)
	}
	return s.store.ReadSnapshot(ctx, tenant, func(r LogSnapshot) error {
		cp, signed, err := s.latestIn(tenant, r)
		if err != nil {
			return err
		}
		ret, err := r.Retention()
		if err != nil {
			return err
		}
		var scanErr error
		entries := func(yield func(ledger.Entry, error) bool) {
			stop := errors.New("stop")
			scanErr = r.Scan(ret.Cut.Size, func(e ledger.Entry) error {
				if e.Seq > cp.Size || !yield(e, nil) {
					return stop
				}
				return nil
			})
			if errors.Is(scanErr, stop) {
				scanErr = nil
			}
		}
		if c := ret.Cut; c.Size > 0 {
			err = ledger.WriteExportAfterCut(w, tenant, signed, ledger.Cut{Size: c.Size, LastHash: c.LastHash,
				LastTS: c.LastTS, Frontier: c.Range, Checkpoint: []byte(c.Checkpoint)}, entries)
		} else {
			err = ledger.WriteExport(w, tenant, signed, entries)
		}
		if err != nil {
			return err
		}
		return scanErr
	})
}

// DetailsJSON turns stored canonical details into a JSON value.
func DetailsJSON(details string) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(details), &m); err != nil {
		return nil, err
	}
	return m, nil
}

func invalid(reason, format string, args ...any) error {
	return apierr.InvalidArgument(reason, format, args...).InDomain(Domain)
}
