package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen calls notify with the tenant of every runnable job enqueued in
// the PostgreSQL database at url, by this replica or another, until ctx
// ends or the connection fails (the caller reconnects by calling again).
// Notifications sent while no connection listens are lost, so Listen
// calls listening once LISTEN holds, for the caller to wake every waiter to
// look for what it may have missed. (Long polls also look again every
// domain.DefaultPoll: a lost notification costs latency, not jobs.)
//
// It uses a connection of its own, outside the pool: LISTEN holds it for
// good, and a pooled one would be handed to other users.
func Listen(ctx context.Context, url string, listening func(), notify func(tenant string)) error {
	connectCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.Connect(connectCtx, url)
	cancel()
	if err != nil {
		return fmt.Errorf("listen: connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("listen: %w", err)
		}
		notify(n.Payload)
	}
}
