package service

import (
	"context"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/echopilot/echopilot/platform/outbox"
)

// PublisherFunc builds the outbox publisher that delivers to a peer service
// over conn (usually outbox.CallPublisher around one of the peer's RPCs).
// StartRelay dials conn with this service's credential and closes it when
// the service stops.
type PublisherFunc func(conn grpc.ClientConnInterface) outbox.BatchPublisher

// StartRelay starts the outbox relay that delivers opt.Topics to the peer
// at addr through newPub, and returns it. It returns nil, whose Kick does
// nothing, when addr is empty or the build has no publisher: the events
// then wait in the outbox (its pending gauge shows them) until a release
// that delivers them; nothing is lost, only delayed.
func (rt *Runtime) StartRelay(ctx context.Context, addr string, newPub PublisherFunc, opt outbox.Options) (*outbox.Relay, error) {
	if addr == "" {
		return nil, nil
	}
	if newPub == nil {
		rt.Log.Warn("a peer address is set but this build has no publisher for it; events stay in the outbox",
			zap.String("addr", addr), zap.Strings("topics", opt.Topics))
		return nil, nil
	}
	conn, err := rt.DialPeer(addr)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { _ = conn.Close() })
	r := outbox.NewBatchRelay(rt.DB, newPub(conn), rt.Log, rt.Server.Registry, opt)
	rt.Go("outbox-relay", r.Run)
	return r, nil
}
