package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

// openAIServer is an OpenAI-compatible chat completions endpoint that checks
// each request the way the real one would.
type openAIServer struct {
	t     *testing.T
	key   string
	model string
	calls atomic.Int32
	// got is the last request's messages.
	got atomic.Pointer[[]chatMessage]
}

func (s *openAIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		http.Error(w, `{"error":{"message":"no such route"}}`, http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.key {
		http.Error(w, `{"error":{"message":"Incorrect API key provided"}}`, http.StatusUnauthorized)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		http.Error(w, `{"error":{"message":"content type `+ct+`"}}`, http.StatusUnsupportedMediaType)
		return
	}
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != s.model || len(req.Messages) == 0 {
		http.Error(w, fmt.Sprintf(`{"error":{"message":"bad request: %v %q"}}`, err, req.Model), http.StatusBadRequest)
		return
	}
	s.got.Store(&req.Messages)
	last := req.Messages[len(req.Messages)-1].Content
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","model":%q,
		"choices":[{"index":0,"message":{"role":"assistant","content":"echo: %s"},"finish_reason":"stop"}],
		"usage":{"prompt_tokens":%d,"completion_tokens":7,"total_tokens":%d}}`,
		s.model+"-2024-01-01", last, len(req.Messages)*10, len(req.Messages)*10+7)
}

func aiJob(payload map[string]any) *queuev1.Job {
	p, err := structpb.NewStruct(payload)
	if err != nil {
		panic(err)
	}
	return &queuev1.Job{JobId: "01JOBAITASK0000000000000000", TenantId: "acme", Type: "ai_task", Payload: p}
}

func TestAITaskPrompt(t *testing.T) {
	t.Parallel()
	srv := &openAIServer{t: t, key: "sk-test", model: "tiny"}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	h := NewAITask(AIConfig{BaseURL: ts.URL + "/v1/", Model: "tiny", APIKey: "sk-test"})

	res, err := h.Run(context.Background(), aiJob(map[string]any{"prompt": "what is 6*7?"}))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	out := res.Output.AsMap()
	if out["answer"] != "echo: what is 6*7?" || out["model"] != "tiny-2024-01-01" || out["finish_reason"] != "stop" {
		t.Errorf("result = %v", out)
	}
	u := res.Usage
	if u.GetModel() != "tiny-2024-01-01" || u.GetInputTokens() != 10 || u.GetOutputTokens() != 7 {
		t.Errorf("usage = %v, want model tiny-2024-01-01, 10 in, 7 out", u)
	}
	if got := *srv.got.Load(); len(got) != 1 || got[0] != (chatMessage{Role: "user", Content: "what is 6*7?"}) {
		t.Errorf("endpoint got messages %v", got)
	}
}

func TestAITaskMessages(t *testing.T) {
	t.Parallel()
	srv := &openAIServer{t: t, key: "k", model: "m"}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	h := NewAITask(AIConfig{BaseURL: ts.URL + "/v1", Model: "m", APIKey: "k"})

	res, err := h.Run(context.Background(), aiJob(map[string]any{"messages": []any{
		map[string]any{"role": "system", "content": "be brief"},
		map[string]any{"role": "user", "content": "hi"},
	}}))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []chatMessage{{"system", "be brief"}, {"user", "hi"}}
	if got := *srv.got.Load(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("endpoint got %v, want %v", got, want)
	}
	if res.Usage.GetInputTokens() != 20 {
		t.Errorf("input tokens = %d, want 20", res.Usage.GetInputTokens())
	}
}

func TestAITaskStatusClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code      int
		retryable bool
	}{
		{http.StatusBadRequest, false},
		{http.StatusUnauthorized, false},
		{http.StatusNotFound, false},
		{http.StatusRequestTimeout, true},
		{http.StatusTooManyRequests, true},
		{http.StatusInternalServerError, true},
		{http.StatusBadGateway, true},
		{http.StatusServiceUnavailable, true},
	} {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.code)
				fmt.Fprint(w, `{"error":{"message":"upstream says no","type":"x"}}`)
			}))
			defer ts.Close()
			h := NewAITask(AIConfig{BaseURL: ts.URL, Model: "m"})
			_, err := h.Run(context.Background(), aiJob(map[string]any{"prompt": "p"}))
			if err == nil {
				t.Fatal("Run succeeded on an error status")
			}
			if IsRetryable(err) != tc.retryable {
				t.Errorf("retryable = %v, want %v (%v)", IsRetryable(err), tc.retryable, err)
			}
			if !strings.Contains(err.Error(), "upstream says no") || !strings.Contains(err.Error(), fmt.Sprint(tc.code)) {
				t.Errorf("error %q does not quote the status and message", err)
			}
		})
	}
}

func TestAITaskWrongKeyIsPermanent(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(&openAIServer{t: t, key: "right", model: "m"})
	defer ts.Close()
	h := NewAITask(AIConfig{BaseURL: ts.URL + "/v1", Model: "m", APIKey: "wrong"})
	_, err := h.Run(context.Background(), aiJob(map[string]any{"prompt": "p"}))
	if err == nil || IsRetryable(err) || !strings.Contains(err.Error(), "Incorrect API key") {
		t.Fatalf("err = %v (retryable %v), want a permanent 401", err, IsRetryable(err))
	}
}

func TestAITaskRefusesWithoutCallingOut(t *testing.T) {
	t.Parallel()
	srv := &openAIServer{t: t, key: "k", model: "m"}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	for name, tc := range map[string]struct {
		cfg     AIConfig
		payload map[string]any
		want    string
	}{
		"no base url":     {AIConfig{Model: "m"}, map[string]any{"prompt": "p"}, "ECHOPILOT_AI_BASE_URL"},
		"no model":        {AIConfig{BaseURL: ts.URL + "/v1"}, map[string]any{"prompt": "p"}, "ECHOPILOT_AI_MODEL"},
		"no prompt":       {AIConfig{BaseURL: ts.URL + "/v1", Model: "m"}, map[string]any{"other": 1}, `"prompt"`},
		"blank prompt":    {AIConfig{BaseURL: ts.URL + "/v1", Model: "m"}, map[string]any{"prompt": "  "}, `"prompt"`},
		"empty messages":  {AIConfig{BaseURL: ts.URL + "/v1", Model: "m"}, map[string]any{"messages": []any{}}, `"messages"`},
		"message no role": {AIConfig{BaseURL: ts.URL + "/v1", Model: "m"}, map[string]any{"messages": []any{map[string]any{"content": "x"}}}, `"messages"[0]`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewAITask(tc.cfg).Run(context.Background(), aiJob(tc.payload))
			if err == nil || IsRetryable(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v (retryable %v), want a permanent error naming %s", err, IsRetryable(err), tc.want)
			}
		})
	}
	if n := srv.calls.Load(); n != 0 {
		t.Errorf("endpoint called %d times", n)
	}
}

func TestAITaskBrokenAnswersAreRetryable(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"not json":   "<html>bad gateway</html>",
		"no choices": `{"choices":[],"usage":{"prompt_tokens":1}}`,
	} {
		t.Run(name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
			defer ts.Close()
			_, err := NewAITask(AIConfig{BaseURL: ts.URL, Model: "m"}).Run(context.Background(), aiJob(map[string]any{"prompt": "p"}))
			if err == nil || !IsRetryable(err) {
				t.Errorf("err = %v (retryable %v), want retryable", err, IsRetryable(err))
			}
		})
	}
}

func TestAITaskTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer ts.Close()
	defer close(release)
	start := time.Now()
	_, err := NewAITask(AIConfig{BaseURL: ts.URL, Model: "m", Timeout: 100 * time.Millisecond}).
		Run(context.Background(), aiJob(map[string]any{"prompt": "p"}))
	if err == nil || !IsRetryable(err) {
		t.Fatalf("err = %v (retryable %v), want retryable", err, IsRetryable(err))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v despite a 100ms timeout", d)
	}
}
