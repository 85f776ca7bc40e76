package domain

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// The tombstone an erasure appends to the erased tenant's log.
const (
	TombstoneEvent = "tenant.erased"
	tombstoneUser  = "service:tenancy"
	// tombstoneLookup bounds the tombstones searched for an erasure's own:
	// a tenant is erased once, re-runs find the same one.
	tombstoneLookup = 100
)

// EraseLog closes tenant's log for erasure erasureID: it appends a
// tombstone entry (once per erasure; a re-run finds it), signed into a
// checkpoint like every append, verifies the log and deletes the entries
// before the tombstone by retention cuts, so the log stays verifiable from
// the tombstone on (the cut's frontier and signed checkpoint are kept). It
// returns the tombstone's seq. Safe to repeat.
func (s *Service) EraseLog(ctx context.Context, tenant, erasureID string) (uint64, error) {
	seq, err := s.tombstone(ctx, tenant, erasureID)
	if err != nil {
		return 0, fmt.Errorf("erase log of %s: %w", tenant, err)
	}
	ret, err := s.store.Retention(ctx, tenant)
	if err != nil || ret.Cut.Size >= seq-1 {
		return seq, err
	}
	// A cut covers only verified entries: verify the log up to now first.
	v, err := s.ScrubTenant(ctx, tenant, ScrubConfig{CPUShare: 1})
	if err != nil {
		return 0, fmt.Errorf("erase log of %s: verify: %w", tenant, err)
	}
	if !v.Valid {
		return 0, fmt.Errorf("erase log of %s: verification failed at entry %d: %s", tenant, v.FirstBad, v.Reason)
	}
	if _, err := s.CutTo(ctx, tenant, seq-1); err != nil {
		return 0, fmt.Errorf("erase log of %s: %w", tenant, err)
	}
	if ret, err = s.store.Retention(ctx, tenant); err != nil {
		return 0, err
	}
	if ret.Cut.Size < seq-1 {
		return 0, fmt.Errorf("erase log of %s: cut at %d, want %d", tenant, ret.Cut.Size, seq-1)
	}
	return seq, nil
}

// tombstone returns the seq of erasureID's tombstone in tenant's log,
// appending it when there is none.
func (s *Service) tombstone(ctx context.Context, tenant, erasureID string) (uint64, error) {
	if seq, err := s.findTombstone(ctx, tenant, erasureID); seq != 0 || err != nil {
		return seq, err
	}
	details, err := json.Marshal(map[string]string{"erasure_id": erasureID})
	if err != nil {
		return 0, err
	}
	out, err := s.Append(ctx, Caller{Tenant: tenant, Service: true}, []NewEntry{{
		TenantID: tenant, Key: "erasure:" + erasureID, EventType: TombstoneEvent, Severity: ledger.SeverityHigh,
		User: tombstoneUser, Action: "erase", Resource: "tenant/" + tenant, Details: details,
	}})
	if err != nil {
		return 0, err
	}
	if len(out) == 1 {
		return out[0].Seq, nil
	}
	// The idempotency key was taken by a concurrent call: its entry is
	// there now.
	seq, err := s.findTombstone(ctx, tenant, erasureID)
	if err == nil && seq == 0 {
		err = fmt.Errorf("the tombstone of erasure %s was claimed but is not in the log", erasureID)
	}
	return seq, err
}

func (s *Service) findTombstone(ctx context.Context, tenant, erasureID string) (uint64, error) {
	var seq uint64
	err := s.store.ReadSnapshot(ctx, tenant, func(r LogSnapshot) error {
		found, err := r.Search(Query{Filter: Filter{EventType: TombstoneEvent, User: tombstoneUser}, Desc: true, Limit: tombstoneLookup})
		if err != nil {
			return err
		}
		for _, e := range found {
			var d struct {
				ErasureID string `json:"erasure_id"`
			}
			if json.Unmarshal([]byte(e.Details), &d) == nil && d.ErasureID == erasureID {
				seq = e.Seq
				return nil
			}
		}
		return nil
	})
	return seq, err
}
