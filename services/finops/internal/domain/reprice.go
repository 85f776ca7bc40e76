package domain

import (
	"context"
	"fmt"
)

// RepriceBatch is how many unpriced records one step of Reprice reads and
// prices in one transaction.
const RepriceBatch = 500

// Reprice prices the stored unpriced usage that the price table now covers
// (a price added with an effective date at or before the records'
// completion), batch by batch, each in a transaction that also moves the
// rollups, so the summary's unpriced block shrinks. It is idempotent and
// safe to run on several replicas at once: a record is priced only while
// it is still unpriced (see Store.PriceUsage), so a second run, or another
// replica's, finds nothing left to change. It returns how many records it
// priced.
func (s *Service) Reprice(ctx context.Context) (int64, error) {
	var (
		priced           int64
		afterT, afterJob string
	)
	for {
		recs, err := s.store.UnpricedUsage(ctx, afterT, afterJob, RepriceBatch)
		if err != nil {
			return priced, fmt.Errorf("reprice: %w", err)
		}
		var now []UsageRecord
		for _, r := range recs {
			s.cfg.Prices.Price(&r)
			if r.Priced {
				now = append(now, r)
			}
		}
		if len(now) > 0 {
			n, err := s.store.PriceUsage(ctx, now)
			priced += n
			if err != nil {
				return priced, fmt.Errorf("reprice: %w", err)
			}
		}
		if len(recs) < RepriceBatch {
			return priced, nil
		}
		last := recs[len(recs)-1]
		afterT, afterJob = last.TenantID, last.JobID
	}
}
