package domain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/platform/text"
)

// Worker registry limits and defaults.
const (
	// MaxWorkerInfoLen bounds a worker's version and host: longer is cut,
	// not refused, as they only describe the worker.
	MaxWorkerInfoLen = 128
	// MaxWorkerConcurrency bounds a worker's announced concurrency.
	MaxWorkerConcurrency = 10000
	// DefaultMaxWorkers is how many workers a tenant may have registered.
	DefaultMaxWorkers = 10000
	// DefaultWorkerStaleAfter is how long a worker may go unheard before
	// it is listed as stale.
	DefaultWorkerStaleAfter = 2 * time.Minute
	// WorkerRetention is how long a worker stays registered after it was
	// last seen.
	WorkerRetention = 7 * 24 * time.Hour
	// maxAnnounceEvery is the longest the registry goes without writing a
	// worker's last_seen while it keeps calling.
	maxAnnounceEvery = 5 * time.Second
	// maxThrottled bounds the throttle's memory: past it, announcements are
	// written every time until expired entries are swept.
	maxThrottled = 100000
)

// ReasonWorkerInfoInvalid refuses a worker_info out of bounds.
const ReasonWorkerInfoInvalid = "WORKER_INFO_INVALID"

// ErrWorkerLimit is returned by a Store when registering a new worker would
// exceed the tenant's limit.
var ErrWorkerLimit = errors.New("worker limit reached")

// WorkerInfo is what a worker says of itself on lease and heartbeat calls.
type WorkerInfo struct {
	Version     string
	Host        string
	Concurrency int32
}

// clean bounds i: text is cut and cleaned, a concurrency out of range refused.
func (i WorkerInfo) clean() (WorkerInfo, error) {
	if i.Concurrency < 0 || i.Concurrency > MaxWorkerConcurrency {
		return WorkerInfo{}, invalid(ReasonWorkerInfoInvalid, "worker_info.concurrency %d: want 0 to %d", i.Concurrency, MaxWorkerConcurrency)
	}
	return WorkerInfo{Version: cleanInfo(i.Version), Host: cleanInfo(i.Host), Concurrency: i.Concurrency}, nil
}

// cleanInfo keeps s within MaxWorkerInfoLen bytes of valid UTF-8 without
// control characters (PostgreSQL text cannot hold NUL).
func cleanInfo(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return text.Truncate(s, MaxWorkerInfoLen)
}

// WorkerSeen registers a worker, or refreshes its registration, in the
// store.
type WorkerSeen struct {
	TenantID string
	WorkerID string
	Info     WorkerInfo
	Now      time.Time
	// Limit is the most workers the tenant may have: a new worker beyond it
	// is not registered (ErrWorkerLimit).
	Limit int
}

// Worker is a registered worker.
type Worker struct {
	TenantID  string
	ID        string
	Info      WorkerInfo
	FirstSeen time.Time
	LastSeen  time.Time
	// LeasesHeld counts the tenant's processing jobs leased to it.
	LeasesHeld int64
	// Stale is set by the Service: LastSeen is older than its threshold.
	Stale bool
}

// WorkerFilter selects a page of a tenant's workers by id.
type WorkerFilter struct {
	TenantID string
	AfterID  string // keyset: only workers with a greater id ("" for the first page)
	Limit    int
}

// WorkerCounts are the registered workers of all tenants, for metrics.
type WorkerCounts struct {
	Fresh int64
	Stale int64
}

// workerThrottle skips announcements of a worker that was written recently
// with the same info, so registering costs leasing a write only every
// few seconds per worker.
type workerThrottle struct {
	every time.Duration

	mu      sync.Mutex
	written map[string]throttled
}

type throttled struct {
	at   time.Time
	info WorkerInfo
}

// due reports whether the announcement of worker key with info at now
// should be written, and if so records it as written.
func (t *workerThrottle) due(key string, info WorkerInfo, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w, ok := t.written[key]; ok && w.info == info && now.Sub(w.at) < t.every {
		return false
	}
	if len(t.written) >= maxThrottled {
		for k, w := range t.written {
			if now.Sub(w.at) >= t.every {
				delete(t.written, k)
			}
		}
		if len(t.written) >= maxThrottled {
			return true
		}
	}
	t.written[key] = throttled{at: now, info: info}
	return true
}

// forget drops key, so the next announcement is written (after a failed
// write).
func (t *workerThrottle) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.written, key)
}

// announce registers the worker, unless it was written recently with the
// same info. It runs before the call's own work, so a failure leaves no
// lease handed out to a caller that is told of an error. A tenant at its
// worker limit does not fail the call: the worker works unregistered.
func (s *Service) announce(ctx context.Context, tenant, workerID string, info WorkerInfo) error {
	now := s.now()
	key := tenant + "\x00" + workerID
	if !s.throttle.due(key, info, now) {
		return nil
	}
	err := s.store.SeeWorker(ctx, WorkerSeen{TenantID: tenant, WorkerID: workerID, Info: info, Now: now, Limit: s.cfg.MaxWorkers})
	switch {
	case errors.Is(err, ErrWorkerLimit):
		s.cfg.Hooks.workerLimitReached()
		return nil
	case err != nil:
		s.throttle.forget(key)
		return fmt.Errorf("register worker: %w", err)
	}
	return nil
}

// ListWorkers pages through tenant's registered workers by id, each with
// the leases it holds and whether it is stale.
func (s *Service) ListWorkers(ctx context.Context, tenant string, r page.Request) ([]Worker, string, error) {
	size, err := r.Size(DefaultListPageSize, MaxListPageSize)
	if err != nil {
		return nil, "", err
	}
	const scope = "workers"
	f := WorkerFilter{TenantID: tenant, Limit: size + 1}
	if f.AfterID, err = page.Decode(r.PageToken, scope); err != nil {
		return nil, "", err
	}
	workers, err := s.store.ListWorkers(ctx, f)
	if err != nil {
		return nil, "", fmt.Errorf("list workers: %w", err)
	}
	workers, next := page.Trim(workers, size, func(w Worker) string { return w.ID }, scope)
	staleBefore := s.now().Add(-s.cfg.WorkerStaleAfter)
	for i := range workers {
		workers[i].Stale = workers[i].LastSeen.Before(staleBefore)
	}
	return workers, next, nil
}

// CountWorkers counts the registered workers of all tenants by staleness.
func (s *Service) CountWorkers(ctx context.Context) (WorkerCounts, error) {
	c, err := s.store.CountWorkers(ctx, s.now().Add(-s.cfg.WorkerStaleAfter))
	if err != nil {
		return WorkerCounts{}, fmt.Errorf("count workers: %w", err)
	}
	return c, nil
}

// PruneWorkers deletes the workers not seen for WorkerRetention.
func (s *Service) PruneWorkers(ctx context.Context) (int64, error) {
	n, err := s.store.DeleteWorkers(ctx, s.now().Add(-WorkerRetention))
	if err != nil {
		return n, fmt.Errorf("prune workers: %w", err)
	}
	return n, nil
}
