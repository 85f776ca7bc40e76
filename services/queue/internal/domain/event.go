package domain

import (
	"encoding/json"
	"time"
)

// TopicJobCompleted is the outbox topic of completed jobs; finops consumes
// it to price their usage.
const TopicJobCompleted = "queue.job.completed"

// Event is an outbox message to write with a change.
type Event struct {
	Topic    string
	Key      string
	TenantID string
	Payload  json.RawMessage
}

// CompletedPayload is the JSON of a TopicJobCompleted event. Field names are
// the contract with consumers: add fields, never rename them.
type CompletedPayload struct {
	JobID       string       `json:"job_id"`
	TenantID    string       `json:"tenant_id"`
	Type        string       `json:"type"`
	Usage       UsagePayload `json:"usage"`
	CompletedAt time.Time    `json:"completed_at"`
}

// UsagePayload is the usage part of a CompletedPayload.
type UsagePayload struct {
	Model        string `json:"model"`
	InputTokens  int64  `json:"input_tokens"`
	OutputTokens int64  `json:"output_tokens"`
	DurationMS   int64  `json:"duration_ms"`
}

// CompletedEvent is the event a completion of j writes to the outbox, keyed
// by job id so that consumers can deduplicate redeliveries.
func CompletedEvent(j Job) (Event, error) {
	payload, err := json.Marshal(CompletedPayload{
		JobID: j.ID, TenantID: j.TenantID, Type: j.Type,
		Usage: UsagePayload{
			Model: j.Usage.Model, InputTokens: j.Usage.InputTokens,
			OutputTokens: j.Usage.OutputTokens, DurationMS: j.Usage.DurationMS,
		},
		CompletedAt: j.UpdatedAt.UTC(),
	})
	if err != nil {
		return Event{}, err
	}
	return Event{Topic: TopicJobCompleted, Key: j.ID, TenantID: j.TenantID, Payload: payload}, nil
}
