package service

import (
	"context"

	"go.uber.org/zap"

	"github.com/echopilot/echopilot/platform/outbox"
)

// PublisherFunc builds the outbox publisher that delivers to a peer service
// at addr (outbox.CallPublisher over a connection from rt.DialPeer); it
// should release what it holds when ctx, the service's lifetime, ends.
type PublisherFunc func(ctx context.Context, rt *Runtime, addr string) (outbox.BatchPublisher, error)

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
	pub, err := newPub(ctx, rt, addr)
	if err != nil {
		return nil, err
	}
	r := outbox.NewBatchRelay(rt.DB, pub, rt.Log, rt.Server.Registry, opt)
	rt.Go("outbox-relay", r.Run)
	return r, nil
}
