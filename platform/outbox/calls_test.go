package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/echopilot/echopilot/platform/outbox"
)

// CallPublisher sends a batch in one call; a bad item the peer refuses
// (INVALID_ARGUMENT) is found by sending the items one by one and is the
// only one dead-lettered; an event that does not decode is dead-lettered
// without a call; other failures are retried.
func TestCallPublisher(t *testing.T) {
	decode := func(e outbox.Event) (string, error) {
		if string(e.Payload) == "garbage" {
			return "", fmt.Errorf("%w: event %s", outbox.ErrPermanent, e.ID)
		}
		return string(e.Payload), nil
	}
	var calls [][]string
	peerDown := false
	send := func(_ context.Context, items []string) error {
		calls = append(calls, slices.Clone(items))
		switch {
		case peerDown:
			return status.Error(codes.Unavailable, "down")
		case slices.Contains(items, "bad"):
			return status.Error(codes.InvalidArgument, "bad item")
		}
		return nil
	}
	pub := outbox.CallPublisher(decode, send)
	evs := []outbox.Event{{ID: "1", Payload: []byte("a")}, {ID: "2", Payload: []byte("garbage")},
		{ID: "3", Payload: []byte("bad")}, {ID: "4", Payload: []byte("b")}}

	errs := pub(t.Context(), evs)
	if errs[0] != nil || !errors.Is(errs[1], outbox.ErrPermanent) || !errors.Is(errs[2], outbox.ErrPermanent) || errs[3] != nil {
		t.Fatalf("errs = %v", errs)
	}
	want := [][]string{{"a", "bad", "b"}, {"a"}, {"bad"}, {"b"}}
	if !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("calls = %v, want %v", calls, want)
	}

	calls, peerDown = nil, true
	errs = pub(t.Context(), evs)
	if len(calls) != 1 || errs[0] == nil || errors.Is(errs[0], outbox.ErrPermanent) || !errors.Is(errs[1], outbox.ErrPermanent) {
		t.Fatalf("peer down: calls %v, errs %v", calls, errs)
	}

	calls = nil
	if errs := pub(t.Context(), evs[1:2]); len(calls) != 0 || !errors.Is(errs[0], outbox.ErrPermanent) {
		t.Fatalf("nothing to send: calls %v, errs %v", calls, errs)
	}
}
