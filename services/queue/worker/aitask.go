package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

const (
	// maxResponseBytes bounds what we read from an HTTP endpoint, so a broken
	// or hostile one cannot exhaust the worker's memory.
	maxResponseBytes = 8 << 20
	// maxErrorExcerpt bounds the part of an error answer quoted in the job's
	// last_error.
	maxErrorExcerpt = 512
)

// AIConfig configures the ai_task handler.
type AIConfig struct {
	// BaseURL of an OpenAI-compatible API, such as https://api.openai.com/v1
	// or http://localhost:11434/v1 (Ollama). Empty: ai_task jobs fail
	// permanently, saying so.
	BaseURL string
	// Model is sent with every request.
	Model string
	// APIKey, when set, is sent as a bearer token.
	APIKey string
	// Timeout bounds one request; 0 means 2 minutes.
	Timeout time.Duration
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
}

// AITask is the ai_task handler: it sends the job's prompt to an
// OpenAI-compatible chat completions endpoint and reports the token usage.
//
// Payload: {"prompt": "…"} or {"messages": [{"role": "user", "content": "…"}, …]}.
// Result: {"answer", "model", "finish_reason"}.
type AITask struct {
	cfg AIConfig
}

// NewAITask returns the ai_task handler.
func NewAITask(cfg AIConfig) *AITask {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	return &AITask{cfg: cfg}
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model    string        `json:"model"`
	Messages []chatMessage `json:"messages"`
}

type chatResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

// Run implements Handler.
func (a *AITask) Run(ctx context.Context, job *queuev1.Job) (Result, error) {
	if a.cfg.BaseURL == "" {
		return Result{}, Permanent(errors.New("ai_task: no AI endpoint configured (set ECHOPILOT_AI_BASE_URL on the worker)"))
	}
	if a.cfg.Model == "" {
		return Result{}, Permanent(errors.New("ai_task: no model configured (set ECHOPILOT_AI_MODEL on the worker)"))
	}
	msgs, err := chatMessages(job.GetPayload())
	if err != nil {
		return Result{}, Permanent(fmt.Errorf("ai_task: %w", err))
	}
	body, err := json.Marshal(chatRequest{Model: a.cfg.Model, Messages: msgs})
	if err != nil {
		return Result{}, Permanent(fmt.Errorf("ai_task: encode request: %w", err))
	}

	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(a.cfg.BaseURL, "/")+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return Result{}, Permanent(fmt.Errorf("ai_task: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	if a.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+a.cfg.APIKey)
	}
	start := time.Now()
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		// Connection failures and timeouts may pass.
		return Result{}, Retryable(fmt.Errorf("ai_task: %w", err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return Result{}, Retryable(fmt.Errorf("ai_task: read answer: %w", err))
	}
	elapsed := time.Since(start)
	if resp.StatusCode/100 != 2 {
		return Result{}, classifyHTTP(resp.StatusCode, fmt.Errorf("ai_task: endpoint answered %s: %s", resp.Status, errorExcerpt(raw)))
	}

	var cr chatResponse
	if err := json.Unmarshal(raw, &cr); err != nil {
		// A 2xx that is not JSON is the endpoint's fault (a proxy page, a cut
		// connection); another attempt may get a proper answer.
		return Result{}, Retryable(fmt.Errorf("ai_task: decode answer: %w", err))
	}
	if len(cr.Choices) == 0 {
		return Result{}, Retryable(errors.New("ai_task: answer has no choices"))
	}
	model := cr.Model
	if model == "" {
		model = a.cfg.Model
	}
	out, err := structpb.NewStruct(map[string]any{
		"answer":        cr.Choices[0].Message.Content,
		"model":         model,
		"finish_reason": cr.Choices[0].FinishReason,
	})
	if err != nil {
		return Result{}, Permanent(fmt.Errorf("ai_task: result: %w", err))
	}
	return Result{
		Output: out,
		Usage: &queuev1.Usage{
			Model:        model,
			InputTokens:  cr.Usage.PromptTokens,
			OutputTokens: cr.Usage.CompletionTokens,
			DurationMs:   elapsed.Milliseconds(),
		},
	}, nil
}

// chatMessages reads the conversation from a payload's "messages" list or,
// failing that, its "prompt".
func chatMessages(p *structpb.Struct) ([]chatMessage, error) {
	fields := p.GetFields()
	if v, ok := fields["messages"]; ok {
		list := v.GetListValue().GetValues()
		if len(list) == 0 {
			return nil, errors.New(`payload "messages" must be a non-empty list`)
		}
		msgs := make([]chatMessage, 0, len(list))
		for i, m := range list {
			f := m.GetStructValue().GetFields()
			role, content := f["role"].GetStringValue(), f["content"].GetStringValue()
			if role == "" || content == "" {
				return nil, fmt.Errorf(`payload "messages"[%d] needs a string "role" and "content"`, i)
			}
			msgs = append(msgs, chatMessage{Role: role, Content: content})
		}
		return msgs, nil
	}
	prompt := fields["prompt"].GetStringValue()
	if strings.TrimSpace(prompt) == "" {
		return nil, errors.New(`payload needs a "prompt" string or a "messages" list`)
	}
	return []chatMessage{{Role: "user", Content: prompt}}, nil
}

// errorExcerpt returns the message of an OpenAI-style error body
// ({"error": {"message": …}}) or the start of the raw body.
func errorExcerpt(raw []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	s := string(raw)
	if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
		s = e.Error.Message
	}
	s = strings.TrimSpace(s)
	if len(s) > maxErrorExcerpt {
		s = strings.ToValidUTF8(s[:maxErrorExcerpt], "") + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}
