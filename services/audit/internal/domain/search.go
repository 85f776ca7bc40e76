package domain

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/audit/internal/ledger"
	"github.com/echopilot/echopilot/services/audit/internal/listing"
)

// ReasonFilterInvalid is a search filter or order that cannot be used.
const ReasonFilterInvalid = "FILTER_INVALID"

// Filter selects entries of a log (ledger.Filter).
type Filter = ledger.Filter

// ParseFilter checks a filter as a request gives it: severity one of the
// four, since and until RFC 3339 with since before until.
func ParseFilter(eventType, user, resource, severity, since, until string) (Filter, error) {
	f := Filter{EventType: eventType, User: user, Resource: resource, MinSeverity: severity}
	for name, v := range map[string]string{"event_type": eventType, "user": user, "resource": resource} {
		if len(v) > maxField {
			return Filter{}, invalid(ReasonFilterInvalid, "%s is longer than %d bytes", name, maxField)
		}
	}
	if severity != "" && !ledger.ValidSeverity(severity) {
		return Filter{}, invalid(ReasonFilterInvalid, "severity must be low, medium, high or critical")
	}
	var err error
	if since != "" {
		if f.Since, err = time.Parse(time.RFC3339Nano, since); err != nil {
			return Filter{}, invalid(ReasonFilterInvalid, "since is not an RFC 3339 time")
		}
		f.Since = f.Since.UTC()
	}
	if until != "" {
		if f.Until, err = time.Parse(time.RFC3339Nano, until); err != nil {
			return Filter{}, invalid(ReasonFilterInvalid, "until is not an RFC 3339 time")
		}
		f.Until = f.Until.UTC()
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return Filter{}, invalid(ReasonFilterInvalid, "since must be before until")
	}
	return f, nil
}

// filterKey is f in one string, for the scope of page tokens.
func filterKey(f Filter) string {
	since, until := f.Bounds()
	return strings.Join([]string{strconv.Quote(f.EventType), strconv.Quote(f.User), strconv.Quote(f.Resource),
		f.MinSeverity, since, until}, ",")
}

// Query is a search of one log: the entries Filter selects, of seq at most
// Max, after the seq After (ascending) or before Before (descending), up
// to Limit of them.
type Query struct {
	Filter Filter
	Desc   bool
	// After (ascending) or Before (descending, 0 for the newest) is the
	// cursor: the seq of the last entry of the previous page.
	After, Before uint64
	Max           uint64
	Limit         int
}

// search is a chain read's query and the scope of its page tokens; nil
// query for the plain ascending read (the seed's paging).
func search(tenant string, req ChainRequest, size int) (*Query, string, error) {
	if req.Filter.IsZero() && !req.Desc {
		return nil, tenant, nil
	}
	order := "asc"
	if req.Desc {
		order = "desc"
	}
	scope := tenant + "|" + order + "|" + filterKey(req.Filter)
	if req.Offset != 0 {
		return nil, "", invalid(ReasonFilterInvalid, "a filtered or descending read pages with page_token, not offset")
	}
	q := &Query{Filter: req.Filter, Desc: req.Desc, Limit: size + 1} // the extra entry proves a next page
	a, err := page.Decode(req.Token, scope)
	if err != nil || a == "" {
		return q, scope, err
	}
	seq, err := strconv.ParseUint(a, 10, 64)
	if err != nil || seq == 0 {
		return nil, "", listing.InvalidToken()
	}
	if req.Desc {
		q.Before = seq
	} else {
		q.After = seq
	}
	return q, scope, nil
}

// checkFound searches with q in the verified tree of st (whose root is the
// latest signed checkpoint's) and checks the first size entries found (one
// more only proves a next page exists): each one's hash
// recomputed, its link to genesis for entry 1, and an inclusion proof of
// its hash at its seq in st's tree, folded from the stored nodes and
// compared with st.Root. A filtered page is not contiguous, so each entry
// is proven by itself (one fetch of about log2(size) nodes each; pages are
// at most listing.MaxSize entries). It returns the entries and the first
// bad one (0 when none).
func (s *Service) checkFound(tenant string, r LogSnapshot, q Query, size int, st VerifiedState) ([]ledger.Entry, uint64, string, error) {
	q.Max = st.Size
	es, err := r.Search(q)
	if err != nil {
		return nil, 0, "", err
	}
	var bad uint64
	var reason string
	fail := func(seq uint64, format string, args ...any) {
		if bad == 0 || seq < bad {
			bad, reason = seq, fmt.Sprintf(format, args...)
		}
	}
	for _, e := range es[:min(len(es), size)] {
		if e.Seq == 0 || e.Seq > st.Size {
			fail(max(e.Seq, 1), "entry %d is beyond the verified size %d", e.Seq, st.Size)
			continue
		}
		if err := ledger.ResumeChainChecker(e.Seq, tenant, e.PrevHash, time.Time{}).Add(e); err != nil {
			var br *ledger.Break
			if errors.As(err, &br) {
				fail(e.Seq, "%s", br.Reason)
				continue
			}
			return nil, 0, "", err
		}
		leaf, err := hex.DecodeString(e.Hash)
		if err != nil || len(leaf) != 32 {
			fail(e.Seq, "hash is not hex")
			continue
		}
		proof, err := ledger.InclusionProof(e.Seq-1, st.Size, r.Fetch)
		if err == nil {
			err = ledger.VerifyInclusion(e.Seq-1, st.Size, leaf, proof, st.Root)
		} else if !errors.Is(err, ErrNodeMissing) {
			return nil, 0, "", err
		}
		if err != nil {
			fail(e.Seq, "entry %d is not in the signed tree of size %d: rewritten, or the stored tree is damaged",
				e.Seq, st.Size)
		}
	}
	return es, bad, reason, nil
}

// exportPage is the entries a filtered export reads at a time.
const exportPage = 1000

// latestIn is the latest signed checkpoint of the log in r; for an empty
// log, a freshly signed one of size 0.
func (s *Service) latestIn(tenant string, r LogSnapshot) (ledger.Checkpoint, []byte, error) {
	cp := ledger.Checkpoint{Origin: ledger.Origin(tenant), Size: 0, Root: ledger.EmptyRoot()}
	n, err := r.Size()
	if err != nil {
		return cp, nil, err
	}
	if n == 0 {
		signed, err := ledger.Sign(cp, s.cfg.Signer)
		return cp, signed, err
	}
	cps, err := r.Checkpoints(n - 1)
	if err != nil {
		return cp, nil, err
	}
	if len(cps) == 0 || cps[0].Size != n {
		return cp, nil, fmt.Errorf("export: no signed checkpoint of the log's size %d", n)
	}
	if cp, err = ledger.Open([]byte(cps[0].Note), s.verifiers...); err != nil {
		return cp, nil, fmt.Errorf("export: stored checkpoint of size %d: %w", n, err)
	}
	return cp, []byte(cps[0].Note), nil
}

// exportFiltered writes the entries of tenant's log f selects
// (ledger.WriteFilteredExport), all from one snapshot: the latest signed
// checkpoint, the filter, and each entry it covers with its inclusion
// proof in the checkpoint's tree, so a verifier holding only the
// verifier key can check each exported entry by itself.
func (s *Service) exportFiltered(ctx context.Context, tenant string, f Filter, w io.Writer) error {
	return s.store.ReadSnapshot(ctx, tenant, func(r LogSnapshot) error {
		cp, signed, err := s.latestIn(tenant, r)
		if err != nil {
			return err
		}
		var readErr error
		entries := func(yield func(ledger.ProvenEntry, error) bool) {
			q := Query{Filter: f, Max: cp.Size, Limit: exportPage}
			for {
				es, err := r.Search(q)
				if err != nil {
					readErr = err
					return
				}
				for _, e := range es {
					proof, err := ledger.InclusionProof(e.Seq-1, cp.Size, r.Fetch)
					if err != nil {
						readErr = fmt.Errorf("inclusion proof of entry %d: %w", e.Seq, err)
						return
					}
					if !yield(ledger.ProvenEntry{Entry: e, Proof: proof}, nil) {
						return
					}
				}
				if len(es) < q.Limit {
					return
				}
				q.After = es[len(es)-1].Seq
			}
		}
		if err := ledger.WriteFilteredExport(w, tenant, signed, f, entries); err != nil {
			return err
		}
		return readErr
	})
}
