package domain_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/services/queue/internal/domain"
)

func listWorkers(t *testing.T, svc *domain.Service, tenant string) []domain.Worker {
	t.Helper()
	ws, _, err := svc.ListWorkers(t.Context(), tenant, page.Request{})
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func lease(t *testing.T, svc *domain.Service, tenant, worker string, info domain.WorkerInfo) []domain.Lease {
	t.Helper()
	ls, err := svc.Lease(t.Context(), tenant, domain.LeaseRequest{WorkerID: worker, WorkerInfo: info})
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestWorkerInfoBounds(t *testing.T) {
	svc, _ := newService(t, domain.Config{})
	enqueue(t, svc, "acme", domain.EnqueueRequest{})
	for _, c := range []int32{-1, domain.MaxWorkerConcurrency + 1} {
		_, err := svc.Lease(t.Context(), "acme", domain.LeaseRequest{WorkerID: "w", WorkerInfo: domain.WorkerInfo{Concurrency: c}})
		wantReason(t, err, codes.InvalidArgument, domain.ReasonWorkerInfoInvalid)
		_, err = svc.Heartbeat(t.Context(), "acme", domain.HeartbeatRequest{
			LeaseCall:  domain.LeaseCall{JobID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", WorkerID: "w", Token: 1},
			WorkerInfo: domain.WorkerInfo{Concurrency: c},
		})
		wantReason(t, err, codes.InvalidArgument, domain.ReasonWorkerInfoInvalid)
	}
	if ws := listWorkers(t, svc, "acme"); len(ws) != 0 {
		t.Fatalf("refused calls registered %+v", ws)
	}
	// Text is cut at a character boundary and cleaned, not refused.
	long := strings.Repeat("é", domain.MaxWorkerInfoLen) // 2 bytes each
	lease(t, svc, "acme", "w", domain.WorkerInfo{Version: long, Host: "edge\x00\n1\xff", Concurrency: domain.MaxWorkerConcurrency})
	ws := listWorkers(t, svc, "acme")
	if len(ws) != 1 || ws[0].Info.Version != long[:domain.MaxWorkerInfoLen] || ws[0].Info.Host != "edge\uFFFD\uFFFD1\uFFFD" ||
		ws[0].Info.Concurrency != domain.MaxWorkerConcurrency || ws[0].LeasesHeld != 1 {
		t.Fatalf("workers = %+v", ws)
	}
}

// TestWorkerThrottle: calls within the throttle period write nothing unless
// the worker's info changed; the threshold marks a quiet worker stale, and
// its next call fresh again.
func TestWorkerThrottle(t *testing.T) {
	const staleAfter = 300 * time.Millisecond // throttle: 100ms
	svc, _ := newService(t, domain.Config{WorkerStaleAfter: staleAfter})
	info := domain.WorkerInfo{Version: "v1", Host: "h", Concurrency: 2}
	lease(t, svc, "acme", "w", info)
	first := listWorkers(t, svc, "acme")[0]
	if first.Stale || !first.FirstSeen.Equal(first.LastSeen) {
		t.Fatalf("new worker = %+v", first)
	}
	lease(t, svc, "acme", "w", info)
	if again := listWorkers(t, svc, "acme")[0]; !again.LastSeen.Equal(first.LastSeen) {
		t.Errorf("a call within the throttle period wrote last_seen: %v, then %v", first.LastSeen, again.LastSeen)
	}
	info.Version = "v2"
	lease(t, svc, "acme", "w", info)
	if changed := listWorkers(t, svc, "acme")[0]; changed.Info != info || !changed.FirstSeen.Equal(first.FirstSeen) {
		t.Errorf("changed info not written at once: %+v", changed)
	}
	time.Sleep(staleAfter + 50*time.Millisecond)
	if quiet := listWorkers(t, svc, "acme")[0]; !quiet.Stale {
		t.Errorf("worker quiet for %v is not stale: %+v", staleAfter, quiet)
	}
	lease(t, svc, "acme", "w", info)
	if back := listWorkers(t, svc, "acme")[0]; back.Stale || !back.LastSeen.After(first.LastSeen) {
		t.Errorf("worker heard from again = %+v", back)
	}
}

// TestWorkerLimitKeepsWorking: a worker beyond its tenant's limit still
// leases; it is only left out of the registry.
func TestWorkerLimitKeepsWorking(t *testing.T) {
	var reached atomic.Int32
	svc, _ := newService(t, domain.Config{MaxWorkers: 1, Hooks: domain.Hooks{WorkerLimitReached: func() { reached.Add(1) }}})
	lease(t, svc, "acme", "first", domain.WorkerInfo{})
	enqueue(t, svc, "acme", domain.EnqueueRequest{})
	if got := lease(t, svc, "acme", "second", domain.WorkerInfo{}); len(got) != 1 {
		t.Fatalf("the worker beyond the limit leased %d jobs, want 1", len(got))
	}
	if ws := listWorkers(t, svc, "acme"); len(ws) != 1 || ws[0].ID != "first" || reached.Load() != 1 {
		t.Fatalf("workers = %+v, limit reached %d times; want first only, once", ws, reached.Load())
	}
}

func TestListWorkersPages(t *testing.T) {
	svc, _ := newService(t, domain.Config{})
	for _, w := range []string{"c", "a", "b"} {
		lease(t, svc, "acme", w, domain.WorkerInfo{})
	}
	var got []string
	token := ""
	for {
		ws, next, err := svc.ListWorkers(t.Context(), "acme", page.Request{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			got = append(got, w.ID)
		}
		if token = next; token == "" {
			break
		}
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("pages = %v, want a,b,c", got)
	}
	_, _, err := svc.ListWorkers(t.Context(), "acme", page.Request{PageToken: "garbage"})
	wantReason(t, err, codes.InvalidArgument, page.ReasonPageTokenInvalid)
}
