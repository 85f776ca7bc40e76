package domain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
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
	// Lanes is how many parts of a log an unthrottled pass (CPUShare 1)
	// verifies at once: 1 or 2; 0 for 2 when the process has two cores.
	Lanes int
	// Split hears that a pass verified tenant's log in two lanes from
	// entry at on, and whether the second lane's work stood (kept) or the
	// second half was verified again after the first.
	Split func(tenant string, at uint64, kept bool)
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
// verification. Unthrottled (a share of 1) on a log of several chunks, it
// verifies the two halves at once (split).
func (s *Service) ScrubTenant(ctx context.Context, tenant string, cfg ScrubConfig) (Verification, error) {
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Chunk == 0 {
		cfg.Chunk = DefaultScrubChunk
	}
	var res lane
	var err error
	if cfg.Lanes == 0 && runtime.GOMAXPROCS(0) > 1 {
		cfg.Lanes = 2
	}
	if cfg.CPUShare >= 1 && cfg.Lanes > 1 {
		res, err = s.scrubSplit(ctx, tenant, cfg)
	} else {
		res, err = s.scrubLane(ctx, tenant, cfg, nil, 0)
	}
	if err != nil {
		return Verification{}, err
	}
	v := res.v
	v.Mode = ModeScrub
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	if err := s.record(ctx, tenant, res.first, res.reached, v, true, now); err != nil {
		return Verification{}, err
	}
	v.Mode = ModeFull
	v.withState(res.first, res.reached, true, now)
	return v, nil
}

// lane is what a scrub of part of a log found: the verification, the
// state it started from and the state it reached (valid only when the
// verification passed).
type lane struct {
	v              Verification
	first, reached VerifiedState
}

// scrubLane verifies tenant's log chunk by chunk from the state from (the
// start of the retained log when nil) until `until` entries are verified
// (the end of the log when 0).
func (s *Service) scrubLane(ctx context.Context, tenant string, cfg ScrubConfig, from *VerifiedState, until uint64) (lane, error) {
	var res lane
	var st VerifiedState
	if from != nil {
		st, res.first = *from, *from
	}
	for started := from != nil; ; started = true {
		start := time.Now()
		limit := cfg.Chunk
		if until > 0 {
			limit = min(limit, until-min(until-1, st.Size))
		}
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
				st, res.first = b, b
			}
			res.v, reached, more, err = s.verifyChunk(tenant, r, st, nil, limit, cfg.CPUShare < 1)
			return err
		})
		if err != nil {
			return lane{}, err
		}
		st = reached
		if !res.v.Valid || !more || (until > 0 && st.Size >= until) {
			break
		}
		if cfg.CPUShare > 0 && cfg.CPUShare < 1 {
			busy := time.Since(start)
			if err := cfg.Sleep(ctx, time.Duration(float64(busy)*(1-cfg.CPUShare)/cfg.CPUShare)); err != nil {
				return lane{}, err
			}
		}
	}
	res.reached = st
	return res, nil
}

// scrubSplit is scrubLane over the whole log in two lanes at once, on two
// cores. The second half starts from a state read from the store, not yet
// verified: the hash and timestamp of the entry before it and the stored
// tree nodes of its frontier. The first half's lane then verifies exactly
// that state: when the state it reaches is the same, the second lane's
// checks are the ones a single lane would have made from there. When it
// differs (damaged nodes, a cut meanwhile) or the second lane found a
// problem, the second half is verified again from the state the first
// reached, so a failure is named as a single lane names it.
func (s *Service) scrubSplit(ctx context.Context, tenant string, cfg ScrubConfig) (lane, error) {
	var mid VerifiedState
	split := false
	err := s.store.ReadSnapshot(ctx, tenant, func(r LogSnapshot) error {
		b, err := s.base(r)
		if err != nil {
			return err
		}
		n, err := r.Size()
		if err != nil || n < b.Size+2*cfg.Chunk {
			return err // too small to be worth two lanes
		}
		// On the chunk grid, so that both lanes read the chunks one lane
		// would: a second half verified again names what one lane names.
		k := b.Size + (n-b.Size)/2/cfg.Chunk*cfg.Chunk
		mid, split, err = s.midState(r, k)
		return err
	})
	if err != nil || !split {
		if err == nil {
			return s.scrubLane(ctx, tenant, cfg, nil, 0)
		}
		return lane{}, err
	}
	var second lane
	var secondErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		second, secondErr = s.scrubLane(ctx, tenant, cfg, &mid, 0)
	}()
	first, err := s.scrubLane(ctx, tenant, cfg, nil, mid.Size)
	<-done
	if err != nil {
		return lane{}, err
	}
	if !first.v.Valid {
		if cfg.Split != nil {
			cfg.Split(tenant, mid.Size, false)
		}
		return first, nil
	}
	kept := secondErr == nil && second.v.Valid && sameFrontier(first.reached, mid)
	if cfg.Split != nil {
		cfg.Split(tenant, mid.Size, kept)
	}
	if !kept {
		from := first.reached
		second, secondErr = s.scrubLane(ctx, tenant, cfg, &from, 0)
		if secondErr != nil {
			return lane{}, secondErr
		}
	}
	second.first = first.first
	return second, nil
}

// midState is the state after entry k as the store has it: entry k's hash
// and timestamp and the stored nodes of the frontier RangeIDs(k). false
// when a node is not stored (the lanes would not meet).
func (s *Service) midState(r LogSnapshot, k uint64) (VerifiedState, bool, error) {
	es, err := r.Entries(k-1, 1)
	if err != nil || len(es) != 1 || es[0].Seq != k {
		return VerifiedState{}, false, err
	}
	hashes, err := r.Fetch(ledger.RangeIDs(k))
	if errors.Is(err, ErrNodeMissing) {
		return VerifiedState{}, false, nil
	}
	if err != nil {
		return VerifiedState{}, false, err
	}
	for _, h := range hashes {
		if len(h) != sha256.Size {
			return VerifiedState{}, false, nil
		}
	}
	// Partial, and covered up to k as far as this lane goes: every
	// checkpoint up to k is the first lane's to match.
	return VerifiedState{Size: k, LastHash: es[0].Hash, LastTS: es[0].TS, Range: hashes,
		At: s.cfg.Now().UTC(), Partial: true, Covered: k}, true, nil
}

// sameFrontier reports whether a and b are the same point of a log: size,
// last entry and tree frontier.
func sameFrontier(a, b VerifiedState) bool {
	return a.Size == b.Size && a.LastHash == b.LastHash && a.LastTS.Equal(b.LastTS) &&
		slices.EqualFunc(a.Range, b.Range, bytes.Equal)
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
