package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/hmacsig"
	"github.com/echopilot/echopilot/platform/netguard"
)

// Headers of a data_sync request. The signature scheme is the one the audit
// service accepts on its webhook intake (DESIGN.md section 5), made by
// platform/hmacsig.
const (
	HeaderSignature = "X-EchoPilot-Signature"
	HeaderJobID     = "X-EchoPilot-Job-ID"
)

// DataSyncConfig configures the data_sync handler.
type DataSyncConfig struct {
	// URL receives every job whose payload names no "url".
	URL string
	// AllowedPrefixes are the URLs under which a payload's own "url" may
	// point, such as https://hooks.example.com/sync/. Tenants write payloads;
	// without this list they could make the worker call any host it can reach.
	AllowedPrefixes []string
	// Secret signs every request (HMAC-SHA256). Empty: data_sync jobs fail
	// permanently, saying so; the worker never sends unsigned data.
	Secret []byte
	// Timeout bounds one request; 0 means 30 seconds.
	Timeout time.Duration
	// Outbound are the operator's exceptions to the outbound guard
	// (netguard), which a payload's own "url" passes besides
	// AllowedPrefixes: a tenant wrote it, so it may only reach a public
	// address or one listed here, checked on every connection.
	Outbound netguard.AllowList
	// Client sends the requests to URL, the operator's; nil means a client
	// that does not follow redirects. A given client should not follow them
	// either: a redirect could lead past the allow-list.
	Client *http.Client
}

// DataSync is the data_sync handler: it POSTs the job's payload as JSON to
// the configured URL, signed with
//
//	X-EchoPilot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
//
// and names the job in X-EchoPilot-Job-ID and Idempotency-Key, which stay the
// same on every attempt so the receiver can drop duplicates. A 2xx answer
// completes the job; 408, 429, 5xx and network failures are retried; other
// answers, redirects included, fail it for good, and so does a payload URL
// whose destination the outbound guard refuses.
type DataSync struct {
	cfg      DataSyncConfig
	prefixes []*url.URL
	guarded  *http.Client // for payload URLs
	now      func() time.Time
}

// NewDataSync checks cfg and returns the data_sync handler.
func NewDataSync(cfg DataSyncConfig) (*DataSync, error) {
	d := &DataSync{cfg: cfg, now: time.Now}
	if cfg.URL != "" {
		if _, err := parseHTTPURL(cfg.URL); err != nil {
			return nil, fmt.Errorf("data_sync url: %w", err)
		}
	}
	for _, p := range cfg.AllowedPrefixes {
		u, err := parseHTTPURL(p)
		if err != nil {
			return nil, fmt.Errorf("data_sync allowed prefix: %w", err)
		}
		d.prefixes = append(d.prefixes, u)
	}
	if d.cfg.Timeout <= 0 {
		d.cfg.Timeout = 30 * time.Second
	}
	if d.cfg.Client == nil {
		d.cfg.Client = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	d.guarded = (&netguard.Guard{Allow: cfg.Outbound}).Client(d.cfg.Timeout)
	return d, nil
}

// Run implements Handler.
func (d *DataSync) Run(ctx context.Context, job *queuev1.Job) (Result, error) {
	if len(d.cfg.Secret) == 0 {
		return Result{}, Permanent(errors.New("data_sync: no signing secret configured (set ECHOPILOT_DATA_SYNC_SECRET on the worker)"))
	}
	target, client, err := d.target(job.GetPayload())
	if err != nil {
		return Result{}, Permanent(fmt.Errorf("data_sync: %w", err))
	}
	// encoding/json sorts map keys, so every attempt sends the same bytes.
	body, err := json.Marshal(job.GetPayload().AsMap())
	if err != nil {
		return Result{}, Permanent(fmt.Errorf("data_sync: encode payload: %w", err))
	}

	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return Result{}, Permanent(fmt.Errorf("data_sync: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderSignature, hmacsig.Sign(d.cfg.Secret, d.now(), body))
	req.Header.Set(HeaderJobID, job.GetJobId())
	req.Header.Set("Idempotency-Key", job.GetJobId())
	resp, err := client.Do(req)
	if errors.Is(err, netguard.ErrDestinationNotAllowed) {
		// Not the dialer's words: they would tell the tenant where its URL
		// resolved.
		return Result{}, Permanent(fmt.Errorf(`data_sync: payload "url": %w`, netguard.ErrDestinationNotAllowed))
	}
	if err != nil {
		return Result{}, Retryable(fmt.Errorf("data_sync: %w", err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorExcerpt))
	if resp.StatusCode/100 != 2 {
		return Result{}, classifyHTTP(resp.StatusCode, fmt.Errorf("data_sync: receiver answered %s: %s", resp.Status, errorExcerpt(raw)))
	}
	// The result names the host only: a configured URL may carry a token.
	out, err := structpb.NewStruct(map[string]any{
		"status_code": resp.StatusCode,
		"host":        req.URL.Host,
		"bytes_sent":  len(body),
	})
	if err != nil {
		return Result{}, Permanent(fmt.Errorf("data_sync: result: %w", err))
	}
	return Result{Output: out}, nil
}

// target picks the URL of a job and the client to send with: the
// payload's "url" when it lies under an allowed prefix, with the guarded
// client, else the configured URL.
func (d *DataSync) target(p *structpb.Struct) (string, *http.Client, error) {
	v, ok := p.GetFields()["url"]
	if !ok {
		if d.cfg.URL == "" {
			return "", nil, errors.New(`no target: the payload names no "url" and ECHOPILOT_DATA_SYNC_URL is not set`)
		}
		return d.cfg.URL, d.cfg.Client, nil
	}
	raw := v.GetStringValue()
	u, err := parseHTTPURL(raw)
	if err != nil {
		return "", nil, fmt.Errorf(`payload "url": %w`, err)
	}
	for _, prefix := range d.prefixes {
		if underPrefix(u, prefix) {
			return u.String(), d.guarded, nil
		}
	}
	return "", nil, fmt.Errorf(`payload "url" %q is not under an allowed prefix (ECHOPILOT_DATA_SYNC_ALLOWED_PREFIXES)`, raw)
}

// parseHTTPURL accepts absolute http(s) URLs without credentials or dot
// segments, the only shapes an allow-list check can judge by their text.
func parseHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q is not an http(s) URL", raw)
	case u.Host == "":
		return nil, fmt.Errorf("%q has no host", raw)
	case u.User != nil:
		return nil, fmt.Errorf("%q carries credentials", raw)
	case hasDotSegment(u.Path):
		return nil, fmt.Errorf("%q has . or .. path segments", raw)
	}
	return u, nil
}

func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// underPrefix reports whether u has prefix's scheme and host and a path at or
// below prefix's path, on a segment boundary: the prefix /sync admits
// /sync and /sync/a, not /synchronize.
func underPrefix(u, prefix *url.URL) bool {
	if u.Scheme != prefix.Scheme || !strings.EqualFold(u.Host, prefix.Host) {
		return false
	}
	base := strings.TrimSuffix(path.Clean("/"+prefix.Path), "/")
	p := u.Path
	return base == "" || p == base || strings.HasPrefix(p, base+"/")
}
