package outbox_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/platform/outbox"
)

func TestDecodePayload(t *testing.T) {
	var p struct {
		JobID string `json:"job_id"`
	}
	if err := outbox.DecodePayload(outbox.Event{ID: "e1", Payload: []byte(`{"job_id":"j1"}`)}, &p); err != nil || p.JobID != "j1" {
		t.Fatalf("decoded %+v, %v", p, err)
	}
	err := outbox.DecodePayload(outbox.Event{ID: "e2", Payload: []byte(`{"job_id":`)}, &p)
	if !errors.Is(err, outbox.ErrPermanent) || !strings.Contains(err.Error(), "event e2") {
		t.Fatalf("a payload that does not decode gave %v; want a permanent failure naming the event", err)
	}
}
