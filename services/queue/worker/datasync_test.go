package worker

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	"github.com/echopilot/echopilot/platform/netguard"
)

// receiver is a data_sync endpoint written the way a customer would: it
// verifies the signature independently of the worker's code (hmac.Equal,
// 5-minute tolerance) and applies each job id once.
type receiver struct {
	secret []byte
	status int // answer for verified requests; 0 means 200

	mu      sync.Mutex
	applied map[string]map[string]any // job id → body
	seen    []http.Header
	refused int
}

func newReceiver(secret string) *receiver {
	return &receiver{secret: []byte(secret), applied: map[string]map[string]any{}}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.seen = append(rc.seen, r.Header.Clone())
	if !rc.verify(r.Header.Get("X-EchoPilot-Signature"), body, time.Now()) {
		rc.refused++
		http.Error(w, `{"error":{"message":"bad signature"}}`, http.StatusUnauthorized)
		return
	}
	if rc.status != 0 {
		http.Error(w, "receiver failure", rc.status)
		return
	}
	id := r.Header.Get("X-EchoPilot-Job-ID")
	if id == "" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "missing job id or content type", http.StatusBadRequest)
		return
	}
	if _, dup := rc.applied[id]; !dup {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			http.Error(w, "not json", http.StatusBadRequest)
			return
		}
		rc.applied[id] = m
	}
	w.WriteHeader(http.StatusAccepted)
}

func (rc *receiver) verify(header string, body []byte, now time.Time) bool {
	var ts, sig string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || math.Abs(now.Sub(time.Unix(sec, 0)).Seconds()) > 300 {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, rc.secret)
	mac.Write([]byte(ts + "." + string(body)))
	return hmac.Equal(got, mac.Sum(nil))
}

func syncJob(id string, payload map[string]any) *queuev1.Job {
	p, err := structpb.NewStruct(payload)
	if err != nil {
		panic(err)
	}
	return &queuev1.Job{JobId: id, TenantId: "acme", Type: "data_sync", Payload: p}
}

func newDataSync(t *testing.T, cfg DataSyncConfig) *DataSync {
	t.Helper()
	d, err := NewDataSync(cfg)
	if err != nil {
		t.Fatalf("NewDataSync: %v", err)
	}
	return d
}

func TestDataSyncSignsAndDelivers(t *testing.T) {
	t.Parallel()
	rc := newReceiver("sync-secret")
	ts := httptest.NewServer(rc)
	defer ts.Close()
	d := newDataSync(t, DataSyncConfig{URL: ts.URL + "/ingest", Secret: []byte("sync-secret")})

	payload := map[string]any{"records": []any{map[string]any{"id": "r1", "qty": 3.0}}, "source": "edge"}
	job := syncJob("01JOBSYNC", payload)
	res, err := d.Run(context.Background(), job)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := res.Output.AsMap(); got["status_code"] != 202.0 || got["host"] != strings.TrimPrefix(ts.URL, "http://") {
		t.Errorf("result = %v", got)
	}
	// A second attempt of the same job (at-least-once) carries the same
	// identity and body, so the receiver applies it once.
	if _, err := d.Run(context.Background(), job); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.applied) != 1 {
		t.Fatalf("receiver applied %d jobs, want 1", len(rc.applied))
	}
	if got, _ := json.Marshal(rc.applied["01JOBSYNC"]); string(got) != `{"records":[{"id":"r1","qty":3}],"source":"edge"}` {
		t.Errorf("receiver got %s", got)
	}
	for _, h := range rc.seen {
		if h.Get("Idempotency-Key") != "01JOBSYNC" || h.Get("X-EchoPilot-Job-ID") != "01JOBSYNC" {
			t.Errorf("headers %v do not name the job", h)
		}
	}
}

func TestDataSyncBadSignaturesAreRefused(t *testing.T) {
	t.Parallel()
	rc := newReceiver("the-real-secret")
	ts := httptest.NewServer(rc)
	defer ts.Close()

	wrong := newDataSync(t, DataSyncConfig{URL: ts.URL, Secret: []byte("not-the-secret")})
	old := newDataSync(t, DataSyncConfig{URL: ts.URL, Secret: []byte("the-real-secret")})
	old.now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
	for name, d := range map[string]*DataSync{"wrong secret": wrong, "old timestamp": old} {
		t.Run(name, func(t *testing.T) {
			_, err := d.Run(context.Background(), syncJob("j1", map[string]any{"a": 1.0}))
			if err == nil || IsRetryable(err) || !strings.Contains(err.Error(), "401") {
				t.Errorf("err = %v (retryable %v), want a permanent 401", err, IsRetryable(err))
			}
		})
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.refused != 2 || len(rc.applied) != 0 {
		t.Errorf("receiver refused %d and applied %d, want 2 and 0", rc.refused, len(rc.applied))
	}
}

func TestDataSyncStatusClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code      int
		retryable bool
	}{
		{http.StatusBadRequest, false},
		{http.StatusNotFound, false},
		{http.StatusConflict, false},
		{http.StatusRequestTimeout, true},
		{http.StatusTooManyRequests, true},
		{http.StatusInternalServerError, true},
		{http.StatusServiceUnavailable, true},
	} {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			rc := newReceiver("s")
			rc.status = tc.code
			ts := httptest.NewServer(rc)
			defer ts.Close()
			_, err := newDataSync(t, DataSyncConfig{URL: ts.URL, Secret: []byte("s")}).
				Run(context.Background(), syncJob("j", map[string]any{}))
			if err == nil || IsRetryable(err) != tc.retryable {
				t.Errorf("err = %v (retryable %v), want retryable=%v", err, IsRetryable(err), tc.retryable)
			}
		})
	}
}

func TestDataSyncDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	inner := newReceiver("s")
	elsewhere := httptest.NewServer(inner)
	defer elsewhere.Close()
	ts := httptest.NewServer(http.RedirectHandler(elsewhere.URL, http.StatusTemporaryRedirect))
	defer ts.Close()

	_, err := newDataSync(t, DataSyncConfig{URL: ts.URL, Secret: []byte("s")}).
		Run(context.Background(), syncJob("j", map[string]any{}))
	if err == nil || IsRetryable(err) {
		t.Errorf("err = %v (retryable %v), want a permanent failure", err, IsRetryable(err))
	}
	if n := len(inner.seen); n != 0 {
		t.Errorf("redirect target called %d times", n)
	}
}

func TestDataSyncPayloadURLAllowList(t *testing.T) {
	t.Parallel()
	rc := newReceiver("s")
	ts := httptest.NewServer(rc)
	defer ts.Close()
	d := newDataSync(t, DataSyncConfig{
		AllowedPrefixes: []string{ts.URL + "/hooks/acme", "https://partner.example.com/"},
		Outbound:        loopbackAllowed(t),
		Secret:          []byte("s"),
	})

	if _, err := d.Run(context.Background(), syncJob("ok", map[string]any{"url": ts.URL + "/hooks/acme/orders"})); err != nil {
		t.Fatalf("allowed url: %v", err)
	}
	for _, bad := range []string{
		ts.URL + "/hooks/acmecorp",                // not on a segment boundary
		ts.URL + "/hooks/acme/../../admin",        // climbs out
		ts.URL + "/hooks/acme/%2e%2e/%2e%2e/x",    // climbs out, encoded
		"http://169.254.169.254/latest/meta-data", // metadata service
		"https://partner.example.com.evil.test/",  // host prefix trick
		"https://user:pw@partner.example.com/x",   // credentials
		"http://partner.example.com/x",            // other scheme
		"file:///etc/passwd",
		"",
	} {
		_, err := d.Run(context.Background(), syncJob("bad", map[string]any{"url": bad}))
		if err == nil || IsRetryable(err) {
			t.Errorf("url %q: err = %v (retryable %v), want a permanent refusal", bad, err, IsRetryable(err))
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.seen) != 1 {
		t.Errorf("receiver called %d times, want once (the allowed url)", len(rc.seen))
	}
}

func loopbackAllowed(t *testing.T) netguard.AllowList {
	t.Helper()
	a, err := netguard.ParseAllowList("127.0.0.1/32")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A payload's "url" under an allowed prefix still goes through the outbound
// guard: loopback is refused for good, before connecting, unless the
// operator allow-lists it, and the job says nothing about where the name
// led. The operator's own configured URL is not the tenant's choice.
func TestDataSyncPayloadURLGuard(t *testing.T) {
	t.Parallel()
	rc := newReceiver("s")
	ts := httptest.NewServer(rc)
	defer ts.Close()
	d := newDataSync(t, DataSyncConfig{URL: ts.URL + "/configured", AllowedPrefixes: []string{ts.URL + "/hooks/"}, Secret: []byte("s")})
	_, err := d.Run(context.Background(), syncJob("j", map[string]any{"url": ts.URL + "/hooks/acme"}))
	if err == nil || IsRetryable(err) || err.Error() != `data_sync: payload "url": destination not allowed` {
		t.Fatalf("err = %v (retryable %v), want a permanent refusal saying only that", err, IsRetryable(err))
	}
	if _, err := d.Run(context.Background(), syncJob("k", map[string]any{})); err != nil {
		t.Fatalf("configured url: %v", err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.seen) != 1 {
		t.Fatalf("receiver called %d times, want once (the configured url)", len(rc.seen))
	}
}

// An allow-listed payload URL that redirects fails for good; its target is
// never called.
func TestDataSyncPayloadURLRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	inner := newReceiver("s")
	elsewhere := httptest.NewServer(inner)
	defer elsewhere.Close()
	ts := httptest.NewServer(http.RedirectHandler(elsewhere.URL, http.StatusFound))
	defer ts.Close()
	d := newDataSync(t, DataSyncConfig{AllowedPrefixes: []string{ts.URL + "/"}, Outbound: loopbackAllowed(t), Secret: []byte("s")})
	_, err := d.Run(context.Background(), syncJob("j", map[string]any{"url": ts.URL + "/x"}))
	if err == nil || IsRetryable(err) {
		t.Errorf("err = %v (retryable %v), want a permanent failure", err, IsRetryable(err))
	}
	inner.mu.Lock()
	defer inner.mu.Unlock()
	if n := len(inner.seen); n != 0 {
		t.Errorf("redirect target called %d times", n)
	}
}

func TestDataSyncRefusesWithoutSecretOrTarget(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]DataSyncConfig{
		"no secret": {URL: "http://127.0.0.1:1/x"},
		"no target": {Secret: []byte("s")},
	} {
		_, err := newDataSync(t, cfg).Run(context.Background(), syncJob("j", map[string]any{}))
		if err == nil || IsRetryable(err) {
			t.Errorf("%s: err = %v (retryable %v), want permanent", name, err, IsRetryable(err))
		}
	}
	if _, err := NewDataSync(DataSyncConfig{AllowedPrefixes: []string{"ftp://x/"}}); err == nil {
		t.Error("NewDataSync accepted a non-http prefix")
	}
}

func TestDataSyncUnreachableIsRetryable(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close() // nothing listens there now
	_, err := newDataSync(t, DataSyncConfig{URL: url, Secret: []byte("s")}).
		Run(context.Background(), syncJob("j", map[string]any{}))
	if err == nil || !IsRetryable(err) {
		t.Errorf("err = %v (retryable %v), want retryable", err, IsRetryable(err))
	}
}
