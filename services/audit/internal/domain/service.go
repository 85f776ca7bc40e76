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
	"github.com/echopilot/echopilot/services/audit/internal/webhook"
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
	defaultPage    = 100
	maxPage        = 1000
)

// Caller is who is asking, as established by the identity layer.
type Caller struct {
	Tenant  string
	Service bool // holds the service role: may append for any tenant
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

// Config is what the service needs besides its store.
type Config struct {
	Signer note.Signer
	// Webhooks verifies inbound compliance webhooks.
	Webhooks webhook.Verifier
	// Outbound configures webhook deliveries to tenants' endpoints.
	Outbound Outbound
	// Hooks hear of what happened, for metrics and wake-ups.
	Hooks Hooks
	// DefaultTenantSecrets verify the default tenant's webhooks besides its
	// stored secrets (ECHOPILOT_COMPLIANCE_WEBHOOK_SECRET, for local runs).
	DefaultTenantSecrets []string
	// VerifierKey is the public note key of Signer.
	VerifierKey string
	// PreviousVerifierKeys are the public keys of earlier signing keys:
	// the checkpoints they signed still verify after a key change.
	PreviousVerifierKeys []string
	// MaxWebhookSecrets caps a tenant's active webhook secrets, and so the
	// secrets a delivery is checked against (DefaultMaxWebhookSecrets when
	// 0).
	MaxWebhookSecrets int
	// MaxEndpoints caps a tenant's active outbound endpoints, and so the
	// deliveries one entry fans out to (DefaultMaxEndpoints when 0).
	MaxEndpoints int
	Now          func() time.Time // time.Now when nil
}

// Service implements the audit use cases.
type Service struct {
	store     Store
	cfg       Config
	verifiers []note.Verifier // the current key's first
	opener    *ledger.Opener  // of verifiers, remembering the checkpoints verified
	rf        compact.RangeFactory
}

// NewService returns a Service.
func NewService(st Store, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Outbound.prepare()
	if err := cfg.limits(); err != nil {
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
		rf: compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}}, nil
}

// openedNotes bounds the checkpoints the service remembers as verified
// (about 200 bytes each).
const openedNotes = 200_000

// VerifierKey is the note verifier key of the checkpoints.
func (s *Service) VerifierKey() string { return s.cfg.VerifierKey }

// Append validates and appends entries, in order, each tenant's as one
// batch with one signed checkpoint, all in one transaction. Entries whose
// idempotency key was taken before are left out; the result holds the
// appended ones in request order.
func (s *Service) Append(ctx context.Context, c Caller, in []NewEntry) ([]ledger.Entry, error) {
	if len(in) == 0 || len(in) > MaxAppendBatch {
		return nil, invalid(ReasonBatchTooLarge, "append 1 to %d entries per call, got %d", MaxAppendBatch, len(in))
	}
	byTenant := map[string][]int{}
	keys := map[string][]string{}
	var tenants []string
	draft := make([]ledger.Draft, len(in))
	for i, n := range in {
		d, err := s.draft(c, n)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if len(n.Key) > maxField {
			return nil, invalid(ReasonEntryInvalid, "entry %d: idempotency_key is longer than %d bytes", i, maxField)
		}
		draft[i] = d
		tenant := d.Entry().TenantID
		if _, ok := byTenant[tenant]; !ok {
			tenants = append(tenants, tenant)
		}
		byTenant[tenant] = append(byTenant[tenant], i)
		keys[tenant] = append(keys[tenant], n.Key)
	}
	appended := make([]*ledger.Entry, len(in))
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	err := s.store.Append(ctx, tenants, keys, func(tenant string, h Head) (Batch, error) {
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
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	var out []ledger.Entry
	for _, e := range appended {
		if e != nil {
			out = append(out, *e)
		}
	}
	s.cfg.Hooks.appended(len(out))
	return out, nil
}

// Hooks are called after the events they name; nil ones are skipped.
type Hooks struct {
	// Appended: entries were committed (the outbox relay's Kick goes
	// here, so deliveries start at once).
	Appended func(entries int)
	// Verified: a whole log was verified, valid or not.
	Verified func(valid bool)
	// Attempted: a delivery attempt was recorded with this outcome
	// (OutcomeDelivered, OutcomeFailed or OutcomeDead).
	Attempted func(outcome string)
}

func (h Hooks) appended(n int) {
	if h.Appended != nil && n > 0 {
		h.Appended(n)
	}
}

func (h Hooks) verified(valid bool) {
	if h.Verified != nil {
		h.Verified(valid)
	}
}

func (h Hooks) attempted(outcome string) {
	if h.Attempted != nil {
		h.Attempted(outcome)
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
	if b.Events, err = webhookEvents(tenant, b.Entries, h.Endpoints); err != nil {
		return Batch{}, fmt.Errorf("webhook events: %w", err)
	}
	cp := ledger.Checkpoint{Origin: ledger.Origin(tenant), Size: h.Size + uint64(len(idx)), Root: root}
	if b.Checkpoint, err = ledger.Sign(cp, s.cfg.Signer); err != nil {
		return Batch{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return b, nil
}

// Page is one page of a tenant's log with the verification of all of it.
type Page struct {
	Entries []ledger.Entry
	Total   uint64
	Next    string
	Check   Verification
}

// Chain returns a page of tenant's log (after offset entries, or after a
// page token) and verifies the whole log, against held as well when the
// caller brings a checkpoint it got earlier.
func (s *Service) Chain(ctx context.Context, tenant string, limit int32, offset int64, token string, held []byte) (Page, error) {
	size, err := page.Size(limit, defaultPage, maxPage)
	if err != nil {
		return Page{}, err
	}
	if offset < 0 {
		return Page{}, invalid(ReasonEntryInvalid, "offset must not be negative")
	}
	after := uint64(offset)
	if token != "" {
		a, err := page.Decode(token, tenant)
		if err != nil {
			return Page{}, err
		}
		if _, err := fmt.Sscan(a, &after); err != nil {
			return Page{}, apierr.InvalidArgument(page.ReasonPageTokenInvalid, "page_token is not a token this API issued")
		}
	}
	check, err := s.Verify(ctx, tenant, held)
	if err != nil {
		return Page{}, err
	}
	entries, err := s.store.Entries(ctx, tenant, after, size)
	if err != nil {
		return Page{}, err
	}
	p := Page{Entries: entries, Total: check.Entries, Check: check}
	if len(entries) == size {
		p.Next = page.Encode(fmt.Sprint(entries[len(entries)-1].Seq), tenant)
	}
	return p, nil
}

// Verification is the outcome of checking a whole log.
type Verification struct {
	Valid   bool
	Entries uint64
	// FirstBad is the first entry found bad (0 when valid).
	FirstBad uint64
	Reason   string
}

// Verify checks tenant's whole log: every entry's hash, its link to the one
// before, dense sequence numbers and timestamps that never decrease
// (ledger.ChainChecker); then the Merkle root of the entries at every
// stored signed checkpoint (each signature checked), that every entry is
// covered by one, and, when held is given, against that checkpoint too (a
// rolled-back database keeps no trace of the checkpoints it lost; a
// verifier that kept one does). The first problem is reported.
func (s *Service) Verify(ctx context.Context, tenant string, held []byte) (Verification, error) {
	var v Verification
	err := s.store.ReadLog(ctx, tenant, func(stored []StoredCheckpoint, scan ScanFunc) (err error) {
		v, err = s.verify(tenant, held, stored, scan)
		return err
	})
	if err == nil {
		s.cfg.Hooks.verified(v.Valid)
	}
	return v, err
}

// verify is Verify over one snapshot of the log.
func (s *Service) verify(tenant string, held []byte, stored []StoredCheckpoint, scan ScanFunc) (Verification, error) {
	var err error
	var cps []ledger.Checkpoint
	var v Verification
	fail := func(seq uint64, format string, args ...any) {
		if v.FirstBad == 0 {
			v.FirstBad, v.Reason = seq, fmt.Sprintf(format, args...)
		}
	}
	for _, sc := range stored {
		cp, err := s.opener.Open([]byte(sc.Note))
		if err != nil || cp.Size != sc.Size || cp.Origin != ledger.Origin(tenant) {
			fail(max(sc.Size, 1), "checkpoint at size %d: bad signature or contents", sc.Size)
			continue
		}
		cps = append(cps, cp)
	}
	if held != nil {
		cp, err := ledger.Open(held, s.verifiers...)
		if err != nil || cp.Origin != ledger.Origin(tenant) {
			return Verification{}, invalid(ReasonCheckpointInvalid, "the checkpoint given is not one this log signed")
		}
		cps = append(cps, cp)
	}
	sortBySize(cps)

	checker := ledger.NewChainChecker()
	tree := s.rf.NewEmptyRange(0)
	next, lastGood := 0, uint64(0) // next checkpoint to compare; size of the last one that matched
	for next < len(cps) && cps[next].Size == 0 {
		next++
	}
	leaf := make([]byte, 32)
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
		if _, err := hex.Decode(leaf, []byte(e.Hash)); err != nil {
			fail(e.Seq, "hash is not hex")
			return nil
		}
		if err := tree.Append(rfc6962.DefaultHasher.HashLeaf(leaf), nil); err != nil {
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
		return nil
	}
	err = scanPipelined(scan, check)
	if err != nil {
		return Verification{}, err
	}
	if v.FirstBad == 0 && next < len(cps) {
		fail(v.Entries+1, "the log ends at %d entries but a signed checkpoint covers %d: entries were removed or the database rolled back",
			v.Entries, cps[len(cps)-1].Size)
	}
	if v.FirstBad == 0 && v.Entries > lastGood {
		fail(lastGood+1, "entries from %d on are not covered by a signed checkpoint", lastGood+1)
	}
	v.Valid = v.FirstBad == 0
	return v, nil
}

// scanPipelined calls check with every entry of tenant's log in order,
// reading the database and checking in two goroutines: on a large log each
// takes about half the time, and there are two cores to run them.
func scanPipelined(scan ScanFunc, check func(ledger.Entry) error) error {
	const batch = 1024
	batches := make(chan []ledger.Entry, 4)
	checked := make(chan error, 1)
	go func() {
		var err error
		for b := range batches {
			for _, e := range b {
				if err == nil {
					err = check(e)
				}
			}
		}
		checked <- err
	}()
	buf := make([]ledger.Entry, 0, batch)
	scanErr := scan(func(e ledger.Entry) error {
		buf = append(buf, e)
		if len(buf) == batch {
			batches <- buf
			buf = make([]ledger.Entry, 0, batch)
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

// InclusionProof proves entry seq in the tree of treeSize entries (0: the
// current size). It returns the proof, the size and the entry's leaf.
func (s *Service) InclusionProof(ctx context.Context, tenant string, seq, treeSize uint64) ([][]byte, uint64, []byte, error) {
	var proof [][]byte
	var leaf []byte
	var size uint64
	err := s.store.ReadTree(ctx, tenant, func(n uint64, fetch ledger.Fetch) error {
		var err error
		if size, err = sizeOr(n, treeSize); err != nil {
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
		return nil, 0, nil, err
	}
	return proof, size, leaf, nil
}

// ConsistencyProof proves the tree of to entries (0: current) extends the
// tree of from entries.
func (s *Service) ConsistencyProof(ctx context.Context, tenant string, from, to uint64) ([][]byte, uint64, error) {
	var proof [][]byte
	var size uint64
	err := s.store.ReadTree(ctx, tenant, func(n uint64, fetch ledger.Fetch) error {
		var err error
		if size, err = sizeOr(n, to); err != nil {
			return err
		}
		if from == 0 || from > size {
			return invalid(ReasonProofRange, "from_size must be between 1 and to_size %d", size)
		}
		proof, err = ledger.ConsistencyProof(from, size, fetch)
		return err
	})
	return proof, size, err
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

// Export writes tenant's log as JSON lines (ledger.WriteExport): the latest
// checkpoint, then the entries it covers.
func (s *Service) Export(ctx context.Context, tenant string, w io.Writer) error {
	cp, signed, err := s.Checkpoint(ctx, tenant)
	if err != nil {
		return err
	}
	var scanErr error
	entries := func(yield func(ledger.Entry, error) bool) {
		stop := errors.New("stop")
		scanErr = s.store.Scan(ctx, tenant, func(e ledger.Entry) error {
			if e.Seq > cp.Size || !yield(e, nil) {
				return stop
			}
			return nil
		})
		if errors.Is(scanErr, stop) {
			scanErr = nil
		}
	}
	if err := ledger.WriteExport(w, tenant, signed, entries); err != nil {
		return err
	}
	return scanErr
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
