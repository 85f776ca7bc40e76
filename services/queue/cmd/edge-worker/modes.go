package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

// enqueueResult is one enqueued job in the shape of POST /api/queue/enqueue.
type enqueueResult struct {
	OK        bool   `json:"ok"` // the REST envelope's: a failed call ends the run instead
	JobID     string `json:"job_id"`
	Status    string `json:"status"`
	Duplicate bool   `json:"duplicate"`
}

// enqueue adds cfg.Count jobs and prints one JSON line per job.
func enqueue(ctx context.Context, cfg Config, queue queuev1.QueueServiceClient, stdout io.Writer) error {
	var fields map[string]any
	if err := json.Unmarshal([]byte(cfg.Payload), &fields); err != nil || fields == nil {
		return fmt.Errorf("--payload must be a JSON object: %q", cfg.Payload)
	}
	payload, err := structpb.NewStruct(fields)
	if err != nil {
		return fmt.Errorf("--payload: %w", err)
	}
	if cfg.Count < 1 {
		return fmt.Errorf("--count %d: want at least 1", cfg.Count)
	}
	prio, err := priority(cfg.Priority)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for i := 1; i <= cfg.Count; i++ {
		key := cfg.IdempotencyKey
		if key != "" && cfg.Count > 1 {
			key = fmt.Sprintf("%s-%d", key, i)
		}
		resp, err := queue.EnqueueJob(ctx, &queuev1.EnqueueJobRequest{
			Type:           cfg.JobType,
			Priority:       prio,
			Payload:        payload,
			IdempotencyKey: key,
			MaxAttempts:    int32(cfg.MaxAttempts),
		})
		if err != nil {
			return fmt.Errorf("enqueue job %d of %d: %w", i, cfg.Count, err)
		}
		if err := enc.Encode(enqueueResult{OK: true, JobID: resp.GetJobId(), Status: statusName(resp.GetStatus()), Duplicate: resp.GetDuplicate()}); err != nil {
			return err
		}
	}
	return nil
}

// queueStatus is GET /api/queue/status's JSON: the seed's fields first, counts
// as JSON numbers (protojson would print int64 as strings).
type queueStatus struct {
	OK         bool             `json:"ok"` // the REST envelope's, as in enqueueResult
	TotalJobs  int64            `json:"total_jobs"`
	Queued     int64            `json:"queued"`
	Processing int64            `json:"processing"`
	Completed  int64            `json:"completed"`
	Failed     int64            `json:"failed"`
	ByType     map[string]int64 `json:"by_type"`
	Dead       int64            `json:"dead"`
	Cancelled  int64            `json:"cancelled"`
	ByPriority map[string]int64 `json:"by_priority"`
}

// printStatus prints the caller's queue status as indented JSON.
func printStatus(ctx context.Context, queue queuev1.QueueServiceClient, stdout io.Writer) error {
	st, err := queue.GetQueueStatus(ctx, &queuev1.GetQueueStatusRequest{})
	if err != nil {
		return fmt.Errorf("queue status: %w", err)
	}
	out := queueStatus{
		OK: true, TotalJobs: st.GetTotalJobs(), Queued: st.GetQueued(), Processing: st.GetProcessing(),
		Completed: st.GetCompleted(), Failed: st.GetFailed(), Dead: st.GetDead(), Cancelled: st.GetCancelled(),
		ByType: nonNil(st.GetByType()), ByPriority: nonNil(st.GetByPriority()),
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

// nonNil keeps empty maps as {} rather than null, as the seed shows them.
func nonNil(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

// priority is the value a --priority name stands for: the REST API's name,
// which is the proto name's lower-case suffix; "" leaves the queue's default.
func priority(name string) (queuev1.Priority, error) {
	if name == "" {
		return queuev1.Priority_PRIORITY_UNSPECIFIED, nil
	}
	if p, ok := queuev1.Priority_value["PRIORITY_"+strings.ToUpper(name)]; ok && p != 0 && name == strings.ToLower(name) {
		return queuev1.Priority(p), nil
	}
	return 0, fmt.Errorf("--priority %q: want critical, high, normal or low", name)
}

// statusName is s as the REST API prints it ("queued").
func statusName(s queuev1.JobStatus) string {
	if s == queuev1.JobStatus_JOB_STATUS_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATUS_"))
}
