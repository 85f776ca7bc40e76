package domain

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// Reasons of a refused retention setting or of a proof into the deleted
// prefix.
const (
	ReasonRetentionInvalid = "RETENTION_INVALID"
	ReasonNotRetained      = "ENTRY_NOT_RETAINED"
)

// Retention defaults.
const (
	// DefaultRetentionSegment is the unit retention deletes: a whole,
	// aligned power-of-two run of entries, so the deleted prefix is always
	// covered by a few complete subtrees (the frontier).
	DefaultRetentionSegment = 1024
	// DefaultMinRetention is the shortest max age a tenant may be given.
	DefaultMinRetention = 24 * time.Hour
	// maxCutStep bounds the entries one cut deletes (one transaction): a
	// long backlog is cut in several steps, each with its own checkpoint.
	maxCutStep = 1 << 16
)

// RetentionConfig shapes retention.
type RetentionConfig struct {
	// Segment (a power of two) is the unit of deletion;
	// DefaultRetentionSegment when 0.
	Segment uint64
	// MinAge is the shortest max age allowed; DefaultMinRetention when 0.
	MinAge time.Duration
}

// Cut is what remains of a deleted prefix of a tenant's log: entries 1 to
// Size are gone; Range holds the hashes of ledger.RangeIDs(Size) (the
// frontier: the complete subtrees that cover the prefix, kept as tree
// nodes too), LastHash and LastTS are the last deleted entry's, and
// Checkpoint is a signed checkpoint of the tree at Size.
type Cut struct {
	Size       uint64
	LastHash   string
	LastTS     time.Time
	Range      [][]byte
	Checkpoint string
	At         time.Time
	// Erasure marks a cut before an erasure's tombstone, which may delete
	// entries younger than the retention (never stored).
	Erasure bool
}

// Retention is a tenant's setting and its cut (Cut.Size 0 when nothing was
// deleted).
type Retention struct {
	MaxAge time.Duration
	Cut    Cut
}

// RetentionStore keeps retention settings and applies cuts.
type RetentionStore interface {
	// Retention is tenant's setting and cut; the zero Retention when none.
	Retention(ctx context.Context, tenant string) (Retention, error)
	// SetRetention stores tenant's max age (0: off).
	SetRetention(ctx context.Context, tenant string, maxAge time.Duration) error
	// ApplyCut records cut as tenant's and deletes what it covers, in one
	// transaction: entries 1 to cut.Size, the tree nodes inside the prefix
	// except the frontier, and the checkpoints smaller than the cut; it
	// stores cut.Checkpoint as a checkpoint unless one of that size is
	// kept. It does nothing and reports false unless tenant's cut is still
	// at size from.
	ApplyCut(ctx context.Context, tenant string, from uint64, cut Cut) (bool, error)
}

func (c *RetentionConfig) prepare() error {
	if c.Segment == 0 {
		c.Segment = DefaultRetentionSegment
	}
	if c.MinAge == 0 {
		c.MinAge = DefaultMinRetention
	}
	if c.Segment&(c.Segment-1) != 0 {
		return fmt.Errorf("retention segment %d is not a power of two", c.Segment)
	}
	if c.MinAge < 0 {
		return fmt.Errorf("retention minimum %v is negative", c.MinAge)
	}
	return nil
}

// SetRetention sets tenant's retention (0 turns it off) and returns it.
func (s *Service) SetRetention(ctx context.Context, tenant string, maxAge time.Duration) (Retention, error) {
	if !identity.ValidTenant(tenant) {
		return Retention{}, apierr.InvalidArgument(ReasonRetentionInvalid, "tenant_id is missing or not a tenant id").InDomain(Domain)
	}
	if maxAge < 0 || (maxAge > 0 && maxAge < s.cfg.Retention.MinAge) {
		return Retention{}, apierr.InvalidArgument(ReasonRetentionInvalid,
			"max_age must be 0 (off) or at least %v", s.cfg.Retention.MinAge).InDomain(Domain)
	}
	if err := s.store.SetRetention(ctx, tenant, maxAge); err != nil {
		return Retention{}, err
	}
	return s.store.Retention(ctx, tenant)
}

// base is where verifying tenant's log starts: the zero state, or the state
// at its cut when retention deleted a prefix (the cut's checkpoint is
// checked against it by verifyChunk).
func (s *Service) base(r LogSnapshot) (VerifiedState, error) {
	ret, err := r.Retention()
	if err != nil || ret.Cut.Size == 0 {
		z := zeroState()
		z.Retention = ret
		return z, err
	}
	c := ret.Cut
	root, err := s.rootOfRange(c.Size, c.Range)
	if err != nil {
		return VerifiedState{}, fmt.Errorf("cut: %w", err)
	}
	return VerifiedState{Size: c.Size, Root: root, LastHash: c.LastHash, LastTS: c.LastTS, Range: c.Range,
		CutCheckpoint: c.Checkpoint, Retention: ret}, nil
}

func (s *Service) rootOfRange(size uint64, hashes [][]byte) ([]byte, error) {
	if size == 0 {
		return ledger.EmptyRoot(), nil
	}
	r, err := s.rf.NewRange(0, size, append([][]byte(nil), hashes...))
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// checkCut checks the starting state st of a verification that begins at a
// cut: its frontier's root must be the signed checkpoint's at the cut.
func (s *Service) checkCut(tenant string, st VerifiedState) string {
	cp, err := s.opener.Open([]byte(st.CutCheckpoint))
	switch {
	case err != nil || cp.Origin != ledger.Origin(tenant):
		return fmt.Sprintf("the checkpoint at the retention cut (size %d) has a bad signature or contents", st.Size)
	case cp.Size != st.Size || !bytes.Equal(cp.Root, st.Root):
		return fmt.Sprintf("the kept frontier of the deleted entries 1 to %d does not match the checkpoint signed at the cut", st.Size)
	}
	return ""
}

// Retain applies tenant's retention: it deletes the whole segments of
// entries older than the max age that a verification has covered (never a
// log with a failure on record), in steps of at most maxCutStep entries.
// Before each cut it proves, from the stored nodes, that the frontier's
// root is the verified tree's at the cut and that the last deleted entry
// is that tree's last leaf, then signs a checkpoint at the cut. It returns
// the entries deleted.
func (s *Service) Retain(ctx context.Context, tenant string) (uint64, error) {
	ret, err := s.store.Retention(ctx, tenant)
	if err != nil || ret.MaxAge <= 0 {
		return 0, err
	}
	return s.cutTo(ctx, tenant, ret, 0)
}

// CutTo deletes tenant's entries 1 to size (fewer when a verification has
// not covered them yet) the way Retain does, whatever their age and not
// only in whole segments, and returns the entries deleted. An erasure cuts
// the log just before its tombstone with it (the store checks on
// PostgreSQL that a tombstone follows the cut).
func (s *Service) CutTo(ctx context.Context, tenant string, size uint64) (uint64, error) {
	ret, err := s.store.Retention(ctx, tenant)
	if err != nil || size <= ret.Cut.Size {
		return 0, err
	}
	// A cut is recorded on the tenant's retention row: store the setting
	// as it is, so a log that never had one gets its row.
	if err := s.store.SetRetention(ctx, tenant, ret.MaxAge); err != nil {
		return 0, err
	}
	return s.cutTo(ctx, tenant, ret, size)
}

// cutTo applies cuts from ret until nextCut has none left: by age when
// upTo is 0, else up to entry upTo.
func (s *Service) cutTo(ctx context.Context, tenant string, ret Retention, upTo uint64) (uint64, error) {
	var deleted uint64
	for {
		cut, ok, err := s.nextCut(ctx, tenant, ret, upTo)
		if err != nil || !ok {
			return deleted, err
		}
		applied, err := s.store.ApplyCut(ctx, tenant, ret.Cut.Size, cut)
		if err != nil || !applied {
			return deleted, err
		}
		deleted += cut.Size - ret.Cut.Size
		ret.Cut = cut
	}
}

// nextCut plans tenant's next cut from ret, by age (upTo 0: whole
// segments older than the max age) or up to entry upTo (a segment boundary
// on the way when the step is capped); false when there is none to make.
func (s *Service) nextCut(ctx context.Context, tenant string, ret Retention, upTo uint64) (Cut, bool, error) {
	seg := s.cfg.Retention.Segment
	now := s.cfg.Now().UTC()
	var cut Cut
	var ok bool
	err := s.store.ReadSnapshot(ctx, tenant, func(r LogSnapshot) error {
		st, have, err := r.Verified()
		if err != nil || !have || st.At.IsZero() || st.FailedSeq != 0 || !s.trusts(st.Keys) || st.Partial {
			return err
		}
		size := min(upTo, st.Size, ret.Cut.Size+maxCutStep)
		if upTo == 0 {
			older, err := r.LastBefore(now.Add(-ret.MaxAge))
			if err != nil {
				return err
			}
			size = min(older, st.Size, ret.Cut.Size+maxCutStep)
		}
		if size != upTo {
			size = size / seg * seg
		}
		if size <= ret.Cut.Size {
			return nil
		}
		frontier, err := r.Fetch(ledger.RangeIDs(size))
		if err != nil {
			return fmt.Errorf("frontier at %d: %w", size, err)
		}
		root, err := s.rootOfRange(size, frontier)
		if err != nil {
			return err
		}
		// The frontier's root is the verified tree's at size, and the last
		// entry to delete is that tree's last leaf.
		proof, err := ledger.ConsistencyProof(size, st.Size, r.Fetch)
		if err != nil {
			return fmt.Errorf("consistency %d to %d: %w", size, st.Size, err)
		}
		if err := ledger.VerifyConsistency(size, st.Size, proof, root, st.Root); err != nil {
			return fmt.Errorf("the stored tree at %d is not the verified one: %w", size, err)
		}
		last, err := r.Entries(size-1, 1)
		if err != nil {
			return err
		}
		if len(last) != 1 || last[0].Seq != size || ledger.ComputeHash(last[0]) != last[0].Hash {
			return fmt.Errorf("entry %d is missing or altered", size)
		}
		leaf, err := hex.DecodeString(last[0].Hash)
		if err != nil {
			return err
		}
		path, err := ledger.InclusionProof(size-1, size, r.Fetch)
		if err != nil {
			return err
		}
		if err := ledger.VerifyInclusion(size-1, size, leaf, path, root); err != nil {
			return fmt.Errorf("entry %d is not the last leaf of the tree at the cut: %w", size, err)
		}
		signed, err := ledger.Sign(ledger.Checkpoint{Origin: ledger.Origin(tenant), Size: size, Root: root}, s.cfg.Signer)
		if err != nil {
			return err
		}
		cut = Cut{Size: size, LastHash: last[0].Hash, LastTS: last[0].TS, Range: frontier, Checkpoint: string(signed),
			At: now.Truncate(time.Microsecond), Erasure: upTo != 0}
		ok = true
		return nil
	})
	if err != nil {
		return Cut{}, false, fmt.Errorf("retention of %s: %w", tenant, err)
	}
	return cut, ok, nil
}

// beforeCut turns err, a proof's missing tree node, into ENTRY_NOT_RETAINED
// when the proof reaches into the prefix retention deleted (seq and before);
// other errors pass unchanged.
func (s *Service) beforeCut(ctx context.Context, tenant string, err error, seq uint64, format string, args ...any) error {
	if !errors.Is(err, ErrNodeMissing) {
		return err
	}
	ret, rerr := s.store.Retention(ctx, tenant)
	if rerr != nil || seq > ret.Cut.Size {
		return err
	}
	return cutError(ret.Cut.Size, format, args...)
}

// cutError is ENTRY_NOT_RETAINED: what was asked needs entries the cut at
// size deleted.
func cutError(size uint64, format string, args ...any) error {
	return apierr.FailedPrecondition(ReasonNotRetained,
		"%s: entries 1 to %d were deleted by the tenant's retention; the log is retained from %d",
		fmt.Sprintf(format, args...), size, size+1).InDomain(Domain)
}
