package outbox

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CallPublisher is the BatchPublisher of a peer's batch RPC: each event of a
// claimed batch becomes an item (decode; an error wrapping ErrPermanent
// dead-letters that event alone) and the items go in one call (send). The
// peer refuses a call with INVALID_ARGUMENT when any item is bad, which no
// retry mends: a call of several is then sent again item by item, so only
// the bad one is dead-lettered, and INVALID_ARGUMENT is permanent. Any other
// error is retried with the relay's backoff.
func CallPublisher[T any](decode func(Event) (T, error), send func(ctx context.Context, items []T) error) BatchPublisher {
	return func(ctx context.Context, evs []Event) []error {
		errs := make([]error, len(evs))
		items := make([]T, 0, len(evs))
		idx := make([]int, 0, len(evs)) // event index of each item
		for i, e := range evs {
			item, err := decode(e)
			if err != nil {
				errs[i] = err
				continue
			}
			items, idx = append(items, item), append(idx, i)
		}
		if len(items) == 0 {
			return errs
		}
		err := send(ctx, items)
		if status.Code(err) == codes.InvalidArgument && len(items) > 1 {
			for j, item := range items {
				errs[idx[j]] = permanentIfInvalid(send(ctx, []T{item}))
			}
			return errs
		}
		for _, i := range idx {
			errs[i] = permanentIfInvalid(err)
		}
		return errs
	}
}

// permanentIfInvalid marks what the peer will refuse however often it is
// sent.
func permanentIfInvalid(err error) error {
	if status.Code(err) == codes.InvalidArgument {
		return fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	return err
}
