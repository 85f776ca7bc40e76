package domain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
)

// erasedTenants remembers which tenants were erased, and their pseudonyms:
// decisions naming an erased tenant (its refused tokens, an admin reading
// its remains) are counted under the pseudonym and never audited, so no
// row made after the erasure carries its id. The set is read whole (there
// is one row per offboarded tenant), at most every erasedRecheck, so that
// ids callers make up cost no lookup.
type erasedTenants struct {
	mu        sync.Mutex
	pseudonym map[string]string
	read      time.Time
}

// erasedRecheck is how long the set read is trusted (other replicas'
// erasures are seen within it; this replica's at once).
const erasedRecheck = identity.TenantStateCacheTTL

// pseudonym returns the pseudonym of tenant id once its erasure has reached
// tenancy's own rows, "" before.
func (s *Service) pseudonym(ctx context.Context, id string) (string, error) {
	s.erased.mu.Lock()
	defer s.erased.mu.Unlock()
	if now := s.now(); s.erased.pseudonym == nil || now.Sub(s.erased.read) >= erasedRecheck {
		set, err := s.store.ErasedTenants(ctx)
		if err != nil {
			return "", fmt.Errorf("erased tenants: %w", err)
		}
		s.erased.pseudonym, s.erased.read = set, now
	}
	return s.erased.pseudonym[id], nil
}

// markErased records at once that tenant is erased.
func (s *Service) markErased(tenant, pseudonym string) {
	s.erased.mu.Lock()
	defer s.erased.mu.Unlock()
	if s.erased.pseudonym != nil {
		s.erased.pseudonym[tenant] = pseudonym
	}
}

// forgetErased returns ds with erased tenants' ids replaced by their
// pseudonyms (a copy when any is: callers keep their batch).
func (s *Service) forgetErased(ctx context.Context, ds []Decision) ([]Decision, error) {
	out := ds
	for i := range ds {
		for field := range 2 {
			id := ds[i].TenantID
			if field == 1 {
				id = ds[i].TargetTenantID
			}
			p, err := s.pseudonym(ctx, id)
			if err != nil || p == "" {
				if err != nil {
					return nil, err
				}
				continue
			}
			if &out[0] == &ds[0] {
				out = slices.Clone(ds)
			}
			if field == 0 {
				out[i].TenantID = p
			} else {
				out[i].TargetTenantID = p
			}
			out[i].Erased = true
		}
	}
	return out, nil
}

// CheckErasure refuses to erase tenancy's rows of tenant unless erasureID
// is that tenant's recorded erasure (OffboardTenant made it): tenancy's
// own identity calling the TenantDataService is not enough on its own.
func (s *Service) CheckErasure(ctx context.Context, tenant, erasureID string) error {
	e, err := s.store.FindErasure(ctx, erasureID)
	switch {
	case errors.Is(err, ErrNotFound) || err == nil && e.TenantID != tenant:
		return apierr.FailedPrecondition(ReasonErasureNotFound,
			"tenant %q has no erasure %q: only an offboarding erases its registry rows", tenant, erasureID).InDomain(Domain)
	case err != nil:
		return err
	}
	return nil
}

// ForgetErasedTargets gives other tenants' decisions that name tenant as
// their target (a platform admin's reads of it) the pseudonym of its
// erasure: tenancy's part of erasing it (its own rows are deleted by the
// TenantDataService). Safe to repeat.
func (s *Service) ForgetErasedTargets(ctx context.Context, tenant, erasureID string) error {
	e, err := s.store.FindErasure(ctx, erasureID)
	if err != nil {
		return fmt.Errorf("erasure %s: %w", erasureID, err)
	}
	if e.TenantID != tenant {
		return fmt.Errorf("erasure %s is not of tenant %q", erasureID, tenant)
	}
	s.markErased(tenant, e.Pseudonym)
	if _, err := s.store.PseudonymiseTargets(ctx, tenant, e.Pseudonym); err != nil {
		return err
	}
	return nil
}

// ReachedTenancy reports whether the erasure is done, or done with
// tenancy's own rows (the last service erased).
func (e Erasure) ReachedTenancy() bool {
	if e.State == ErasureDone {
		return true
	}
	for _, se := range e.Services {
		if se.Service == "tenancy" {
			return se.Done
		}
	}
	return false
}
