package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/services/queue/worker"
	"github.com/echopilot/echopilot/services/tenancy/internal/domain"
)

const (
	// eraseBatch rows per kind and call.
	eraseBatch = 1000
	// pendingWait bounds the wait for tenancy's own outbox before audit's
	// erasure; the job is retried after it.
	pendingWait = 2 * time.Minute
	// erasedBy is the subject the deleted state is recorded under.
	erasedBy = "service:tenancy"
	// stateMargin covers a state lookup in flight when the cache expires.
	stateMargin = time.Second
)

// runErase is the tenant.erase handler: each service in eraseOrder until it
// reports done, the progress stored after every call, then the tenant
// deleted. A re-run skips what is done and repeats at most one batch.
func (r *Runner) runErase(ctx context.Context, job *queuev1.Job) (worker.Result, error) {
	id, err := payloadID(job, "erasure_id")
	if err != nil {
		return worker.Result{}, err
	}
	e, err := r.store.FindErasure(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return worker.Result{}, worker.Permanent(fmt.Errorf("erasure %s does not exist", id))
	}
	if err != nil {
		return worker.Result{}, err
	}
	if e.State != domain.ErasureDone {
		if err := r.waitOffboarded(ctx, e); err != nil {
			return worker.Result{}, err
		}
		for _, svc := range eraseOrder {
			if err := r.eraseService(ctx, &e, svc); err != nil {
				return worker.Result{}, scrub(err, e.TenantID)
			}
		}
		if err := r.svc.FinishErasure(ctx, e, erasedBy); err != nil {
			return worker.Result{}, scrub(err, e.TenantID)
		}
	}
	out, err := structpb.NewStruct(map[string]any{"erasure_id": e.ID, "state": string(domain.ErasureDone)})
	return worker.Result{Output: out}, err
}

// waitOffboarded waits until every replica of every service refuses the
// tenant's writes (their cached states are at most
// identity.TenantStateCacheTTL old): a write accepted on a stale
// "active" after its service was erased would outlive the erasure.
func (r *Runner) waitOffboarded(ctx context.Context, e domain.Erasure) error {
	wait := time.Until(e.CreatedAt.Add(identity.TenantStateCacheTTL + stateMargin))
	if wait <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

// eraseService calls service's EraseTenantData until it is done.
func (r *Runner) eraseService(ctx context.Context, e *domain.Erasure, service string) error {
	se := serviceProgress(e, service)
	if se.Done {
		return nil
	}
	client, err := r.tenantData(service)
	if err != nil {
		return err
	}
	if service == Audit {
		// The tenant's own audit entries (its offboarding) must reach the
		// log before audit erases it and writes the tombstone.
		if err := r.waitOutbox(ctx, e.TenantID); err != nil {
			return err
		}
	}
	for !se.Done {
		resp, err := client.EraseTenantData(actFor(ctx, e.TenantID), &tenantdatav1.EraseTenantDataRequest{
			TenantId: e.TenantID, BatchSize: eraseBatch, Pseudonym: e.Pseudonym, ErasureId: e.ID})
		if err != nil {
			return classify(service+" erase", err)
		}
		merge(se, resp)
		se.UpdatedAt = r.now().UTC()
		if err := r.store.SaveErasureProgress(ctx, *e); err != nil {
			return err
		}
	}
	return nil
}

// serviceProgress returns service's entry of e, added when missing.
func serviceProgress(e *domain.Erasure, service string) *domain.ServiceErasure {
	for i := range e.Services {
		if e.Services[i].Service == service {
			return &e.Services[i]
		}
	}
	e.Services = append(e.Services, domain.ServiceErasure{Service: service})
	return &e.Services[len(e.Services)-1]
}

// merge takes one call's answer: the kinds as it reports them, with
// `changed` summed over the calls.
func merge(se *domain.ServiceErasure, resp *tenantdatav1.EraseTenantDataResponse) {
	before := map[string]int64{}
	for _, k := range se.Kinds {
		before[k.Kind] = k.Changed
	}
	se.Kinds = se.Kinds[:0]
	for _, k := range resp.GetKinds() {
		se.Kinds = append(se.Kinds, domain.KindProgress{Kind: k.GetKind(), Rule: k.GetRule(),
			Changed: before[k.GetKind()] + k.GetChanged(), Remaining: k.GetRemaining(), Reason: k.GetReason()})
	}
	se.Done = resp.GetDone()
}

// waitOutbox waits until tenancy's outbox holds no pending event of
// tenant, after storing the decisions this process still holds (the
// tenant's last denials are audit events too).
func (r *Runner) waitOutbox(ctx context.Context, tenant string) error {
	if err := r.flushDecisions(ctx); err != nil {
		return fmt.Errorf("store access decisions: %w", err)
	}
	r.svc.Audited() // wake the relay rather than wait for its next poll
	deadline := r.now().Add(pendingWait)
	for {
		n, err := r.store.PendingEvents(ctx, tenant)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if r.now().After(deadline) {
			return worker.Retryable(fmt.Errorf("%d audit events of the tenant are still in the outbox", n))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.pendingPoll):
		}
	}
}
