package outbox

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	outboxv1 "github.com/echopilot/echopilot/gen/go/echopilot/outbox/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/page"
	"github.com/echopilot/echopilot/platform/store"
)

// AdminServer implements the ListDeadEvents and RequeueDeadEvents RPCs
// that every service with an outbox declares (platform admins only, by
// their policy): the service's grpcapi server delegates each to it in one
// line. The outbox is the service's own, of every tenant.
type AdminServer struct {
	DB *store.DB
	// Kick wakes the service's relay after a requeue (nil: the relay's
	// next poll delivers).
	Kick func()
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// ListDeadEvents is the RPC: a page of dead events, newest dead first.
func (a *AdminServer) ListDeadEvents(ctx context.Context, req *outboxv1.ListDeadEventsRequest) (*outboxv1.ListDeadEventsResponse, error) {
	evs, next, err := ListDead(ctx, a.DB, DeadRequest{Topic: req.GetTopic(),
		Request: page.Request{PageSize: req.GetPageSize(), PageToken: req.GetPageToken()}})
	if err != nil {
		return nil, err
	}
	var topics []string
	if req.GetTopic() != "" {
		topics = []string{req.GetTopic()}
	}
	b, err := ReadBacklog(ctx, a.DB, topics)
	if err != nil {
		return nil, err
	}
	out := &outboxv1.ListDeadEventsResponse{NextPageToken: next, Events: make([]*outboxv1.DeadEvent, len(evs)),
		PendingCount: b.Pending, DeadCount: b.Dead}
	if !b.Oldest.IsZero() {
		out.OldestPendingTime = timestamppb.New(b.Oldest)
	}
	for i, e := range evs {
		out.Events[i] = &outboxv1.DeadEvent{Id: e.ID, Topic: e.Topic, EventKey: e.Key, TenantId: e.TenantID,
			Attempts: int32(e.Attempts), CreateTime: timestamppb.New(e.CreatedAt), DeadTime: timestamppb.New(e.DeadAt),
			LastError: e.LastError}
	}
	return out, nil
}

// RequeueDeadEvents is the RPC: the dead events named (or all, of a topic
// when given) go back to the relay. Ids none of which is dead (unknown,
// delivered, pending) are NOT_FOUND; all=true finding none answers 0.
func (a *AdminServer) RequeueDeadEvents(ctx context.Context, req *outboxv1.RequeueDeadEventsRequest) (*outboxv1.RequeueDeadEventsResponse, error) {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	n, err := Requeue(ctx, a.DB, RequeueRequest{IDs: req.GetIds(), All: req.GetAll(), Topic: req.GetTopic()}, now())
	if err != nil {
		return nil, err
	}
	if n == 0 && !req.GetAll() {
		return nil, apierr.NotFound(ReasonEventNotFound, "none of the %d ids is a dead event", len(req.GetIds()))
	}
	if n > 0 && a.Kick != nil {
		a.Kick()
	}
	return &outboxv1.RequeueDeadEventsResponse{Requeued: n}, nil
}
