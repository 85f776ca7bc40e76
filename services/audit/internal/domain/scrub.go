package domain

import (
	"context"
	"fmt"
	"time"
)

// ScrubConfig shapes a scrub pass.
type ScrubConfig struct {
	// Interval is the pass's span: tenants start evenly spread over it.
	Interval time.Duration
	// CPUShare (0 < share <= 1) bounds the pass's CPU: after verifying a
	// chunk for d, it sleeps d·(1-share)/share.
	CPUShare float64
	// Chunk is the entries verified per snapshot (DefaultScrubChunk when 0).
	Chunk uint64
	// Sleep waits d or until ctx is done (a timer when nil).
	Sleep func(ctx context.Context, d time.Duration) error
	// Result hears of each tenant's verification.
	Result func(tenant string, v Verification)
	// Retained hears of each retention applied after a passing
	// verification: the entries deleted, or why it failed.
	Retained func(tenant string, deleted uint64, err error)
}

// DefaultScrubChunk is how many entries a scrub verifies per snapshot: short
// read transactions, and a pause between them to keep to the CPU share.
const DefaultScrubChunk = 16_384

// ScrubReport sums up a pass.
type ScrubReport struct {
	Tenants, Invalid int
}

// Scrub re-verifies every tenant's whole log once, spreading the tenants
// over cfg.Interval and keeping to cfg.CPUShare, and records each result as
// a full verification: a failure sticks for every later read of the tenant,
// a pass clears an earlier one. After a pass it applies the tenant's
// retention.
func (s *Service) Scrub(ctx context.Context, cfg ScrubConfig) (ScrubReport, error) {
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Chunk == 0 {
		cfg.Chunk = DefaultScrubChunk
	}
	if cfg.CPUShare <= 0 || cfg.CPUShare > 1 {
		cfg.CPUShare = 1
	}
	var tenants []string
	for after := ""; ; {
		page, err := s.store.LogTenants(ctx, after, 1000)
		if err != nil {
			return ScrubReport{}, err
		}
		tenants = append(tenants, page...)
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1]
	}
	var rep ScrubReport
	began := time.Now()
	for i, tenant := range tenants {
		if i > 0 && cfg.Interval > 0 {
			due := began.Add(cfg.Interval * time.Duration(i) / time.Duration(len(tenants)))
			if err := cfg.Sleep(ctx, time.Until(due)); err != nil {
				return rep, err
			}
		}
		v, err := s.ScrubTenant(ctx, tenant, cfg)
		if err != nil {
			return rep, fmt.Errorf("scrub %s: %w", tenant, err)
		}
		rep.Tenants++
		if !v.Valid {
			rep.Invalid++
		} else {
			// Only a log just verified whole is cut: what is deleted was
			// checked first.
			deleted, err := s.Retain(ctx, tenant)
			if cfg.Retained != nil && (deleted > 0 || err != nil) {
				cfg.Retained(tenant, deleted, err)
			}
		}
		if cfg.Result != nil {
			cfg.Result(tenant, v)
		}
	}
	return rep, nil
}

// ScrubTenant verifies tenant's whole log, cfg.Chunk entries per snapshot
// (each chunk continues the chain and the tree from the last), pausing
// after each to keep to cfg.CPUShare, and records the result as a full
// verification.
func (s *Service) ScrubTenant(ctx context.Context, tenant string, cfg ScrubConfig) (Verification, error) {
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	var st, first VerifiedState
	var v Verification
	for started := false; ; started = true {
		start := time.Now()
		var reached VerifiedState
		more := false
		err := s.store.ReadSnapshot(ctx, tenant, func(r LogSnapshot) (err error) {
			b, err := s.base(r)
			if err != nil {
				return err
			}
			if !started || b.Size > st.Size {
				// From the start of the retained log; again if a cut
				// (another replica's) deleted what this pass had reached.
				st, first = b, b
			}
			v, reached, more, err = s.verifyChunk(tenant, r, st, nil, max(cfg.Chunk, 1), cfg.CPUShare < 1)
			return err
		})
		if err != nil {
			return Verification{}, err
		}
		if !v.Valid || !more {
			st = reached
			break
		}
		st = reached
		if cfg.CPUShare > 0 && cfg.CPUShare < 1 {
			busy := time.Since(start)
			if err := cfg.Sleep(ctx, time.Duration(float64(busy)*(1-cfg.CPUShare)/cfg.CPUShare)); err != nil {
				return Verification{}, err
			}
		}
	}
	v.Mode = ModeScrub
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	if err := s.record(ctx, tenant, first, st, v, true, now); err != nil {
		return Verification{}, err
	}
	v.Mode = ModeFull
	v.withState(first, st, true, now)
	return v, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
