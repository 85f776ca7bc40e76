package domain

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/listing"
)

// Issued is a signed checkpoint the service issued for a tenant's log.
type Issued struct {
	Checkpoint ledger.Checkpoint
	Note       []byte
	Time       time.Time
}

// CheckpointsRequest asks for a page of the checkpoints of size FromSize or
// more.
type CheckpointsRequest struct {
	FromSize uint64
	page.Request
}

// Checkpoints lists the signed checkpoints issued for tenant's log (one per
// append batch: every one is kept, see the store's audit_checkpoints), by
// tree size from req.FromSize on, a page at a time. Each note is checked with
// the service's keys before it is handed out: a stored note that does not
// verify is an error, not a checkpoint.
//
// Retention: audit_checkpoints grows by one row per append batch (about
// 200 bytes: the note), at most one per entry, and is kept as long as the
// log itself, never pruned: Verify compares the entries with every stored
// checkpoint, and a client may hold any of them. Batching appends (up to
// MaxAppendBatch entries per call) keeps it small next to the entries.
func (s *Service) Checkpoints(ctx context.Context, tenant string, req CheckpointsRequest) ([]Issued, string, error) {
	size, err := req.Size(listing.DefaultSize, listing.MaxSize)
	if err != nil {
		return nil, "", err
	}
	scope := "checkpoints:" + tenant + ":" + strconv.FormatUint(req.FromSize, 10)
	after, err := page.Decode(req.PageToken, scope)
	if err != nil {
		return nil, "", err
	}
	from := req.FromSize
	if after != "" {
		last, err := strconv.ParseUint(after, 10, 64)
		if err != nil || last == ^uint64(0) {
			return nil, "", listing.InvalidToken()
		}
		from = max(from, last+1)
	}
	stored, err := s.store.IssuedCheckpoints(ctx, tenant, from, size+1)
	if err != nil {
		return nil, "", err
	}
	// The extra one only proves a next page exists: it is the next page's
	// to verify.
	stored, next := page.Trim(stored, size, func(sc IssuedCheckpoint) string { return strconv.FormatUint(sc.Size, 10) }, scope)
	out := make([]Issued, 0, len(stored))
	for _, sc := range stored {
		cp, err := s.opener.Open([]byte(sc.Note))
		if err != nil || cp.Size != sc.Size || cp.Origin != ledger.Origin(tenant) {
			return nil, "", fmt.Errorf("stored checkpoint of size %d does not verify: %v", sc.Size, err)
		}
		out = append(out, Issued{Checkpoint: cp, Note: []byte(sc.Note), Time: sc.Issued})
	}
	return out, next, nil
}
