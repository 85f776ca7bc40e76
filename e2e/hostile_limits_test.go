package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/echopilot/echopilot/platform/identity"
)

// Attacks on the gateway's capacity (issue 13, findings 5 and 6), against
// the real binaries.

// limitedEnv are the limits of the flood test: small, so a flood meets
// them at once on a loaded test machine, and a cache time short enough
// to see a registry change within the test.
var limitedEnv = []string{
	"ECHOPILOT_RATE_LIMIT_READ=20", "ECHOPILOT_RATE_LIMIT_READ_BURST=40",
	"ECHOPILOT_RATE_LIMIT_WRITE=10", "ECHOPILOT_RATE_LIMIT_WRITE_BURST=20",
	"ECHOPILOT_RATE_LIMIT_CACHE_TTL=500ms", "ECHOPILOT_RATE_LIMIT_REFUSAL_DELAY=100ms",
}

// limitReply is what a flood request saw.
type limitReply struct {
	status                 int
	retryAfter, policy, rl string
	reason                 string
	took                   time.Duration
	err                    error
}

func limitGet(client *http.Client, url, token string) limitReply {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return limitReply{err: err}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return limitReply{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := limitReply{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), took: time.Since(start),
		policy: resp.Header.Get("RateLimit-Policy"), rl: resp.Header.Get("RateLimit")}
	var body map[string]any
	if json.Unmarshal(raw, &body) == nil {
		r.reason = errReason(body)
	}
	return r
}

// Finding 5: 2,400 requests of one tenant in a few seconds were all served.
// Now tenant A's flood is refused with 429 past its budget, a flood of
// forged tokens naming tenant B is charged to the attacker's address, and
// tenant B, asking at its normal pace meanwhile, is served every time.
func TestHostileLimitsOneTenantFlood(t *testing.T) {
	s := startWithEnv(t, "required", nil, limitedEnv...)
	url := s.GatewayURL + "/api/tenant/info"
	tokA, tokB := s.token(t, "tenant-a", "user"), s.token(t, "tenant-b", "user")
	forged, err := identity.MintHS256([]byte("not-the-stack-secret-0123456789abcdef"),
		identity.Claims{Subject: "mallory", TenantID: "tenant-b", Roles: []string{"user"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

	const floodFor = 3 * time.Second
	stop := time.Now().Add(floodFor)
	var (
		mu            sync.Mutex
		flood, forges []limitReply
		wg            sync.WaitGroup
	)
	run := func(token string, into *[]limitReply) {
		for time.Now().Before(stop) {
			r := limitGet(client, url, token)
			mu.Lock()
			*into = append(*into, r)
			mu.Unlock()
		}
	}
	for range 6 {
		wg.Go(func() { run(tokA, &flood) })
	}
	for range 2 {
		wg.Go(func() { run(forged, &forges) })
	}
	// Tenant B at 10 requests/s, half its budget, during the flood.
	var bees []limitReply
	wg.Go(func() {
		for time.Now().Before(stop) {
			bees = append(bees, limitGet(client, url, tokB))
			time.Sleep(100 * time.Millisecond)
		}
	})
	wg.Wait()

	var served, refused int
	for _, r := range flood {
		switch {
		case r.err != nil:
			t.Fatalf("flood request failed: %v", r.err)
		case r.status == http.StatusOK:
			served++
		case r.status == http.StatusTooManyRequests:
			refused++
			if n, err := strconv.Atoi(r.retryAfter); err != nil || n < 1 {
				t.Fatalf("429 with Retry-After %q", r.retryAfter)
			}
			if r.reason != "RATE_LIMITED" || r.policy != `"tenant-read";q=40;w=2` || !strings.HasPrefix(r.rl, `"tenant-read";r=0;t=`) {
				t.Fatalf("429: reason %q, RateLimit-Policy %q, RateLimit %q", r.reason, r.policy, r.rl)
			}
			// Held for the refusal delay: a flood that retries at once
			// cannot spend the gateway's CPU on refusals.
			if r.took < 45*time.Millisecond {
				t.Fatalf("a 429 answered after %v, before the refusal delay (100ms ± 50%%)", r.took)
			}
		default:
			t.Fatalf("flood request answered %d", r.status)
		}
	}
	// At most the burst plus the rate over the flood (and a second's slack).
	if limit := 40 + 20*int(floodFor/time.Second+1); refused == 0 || served > limit {
		t.Fatalf("tenant A: %d served, %d refused; want at most %d served", served, refused, limit)
	}
	forgedRefused := 0
	for _, r := range forges {
		if r.err == nil && r.policy != `"address-read";q=40;w=2` {
			t.Fatalf("a forged token naming tenant-b was charged to %q (status %d)", r.policy, r.status)
		}
		if r.status == http.StatusTooManyRequests {
			forgedRefused++
		}
	}
	if forgedRefused == 0 {
		t.Errorf("%d forged-token requests, none refused", len(forges))
	}
	var worst time.Duration
	for i, r := range bees {
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("tenant B's request %d during the flood: %d %v %s", i, r.status, r.err, r.reason)
		}
		worst = max(worst, r.took)
	}
	// Generous: this is about B being served at all, not a benchmark
	// (e2e/cmd/floodload measures the latency).
	if len(bees) < 10 || worst > 2*time.Second {
		t.Fatalf("tenant B: %d requests, slowest %v", len(bees), worst)
	}
	t.Logf("tenant A: %d served, %d refused; forged tokens: %d sent, %d refused; tenant B: %d served, slowest %v",
		served, refused, len(forges), forgedRefused, len(bees), worst)
}

// A platform admin lowers one tenant's limits in the registry; the gateway
// reads them from tenancy with its own service identity and applies them.
func TestHostileLimitsRegistryOverride(t *testing.T) {
	s := startWithEnv(t, "required", nil, limitedEnv...)
	admin := s.token(t, identity.DefaultTenant, identity.RoleAdmin)
	code, body := s.call(t, "POST", "/api/tenants", admin, nil, `{"tenant_id":"small-co"}`)
	if code != http.StatusOK {
		t.Fatalf("create tenant: %d %v", code, body)
	}
	code, body = s.call(t, "PATCH", "/api/tenants/small-co", admin, nil, `{"rate_limit_read_per_second":1,"rate_limit_read_burst":3}`)
	if tn, _ := body["tenant"].(map[string]any); code != http.StatusOK || tn["rate_limit_read_burst"] != float64(3) {
		t.Fatalf("set limits: %d %v", code, body)
	}
	tok := s.token(t, "small-co", "user")
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := limitGet(http.DefaultClient, s.GatewayURL+"/api/tenant/info", tok)
		if r.policy == `"tenant-read";q=3;w=3` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("small-co's own limits never applied: %q", r.policy)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var statuses []int
	for range 5 {
		statuses = append(statuses, limitGet(http.DefaultClient, s.GatewayURL+"/api/tenant/info", tok).status)
	}
	if !slices.Contains(statuses, http.StatusTooManyRequests) {
		t.Fatalf("5 quick reads at 1/s burst 3: %v", statuses)
	}
	// Other tenants keep the deployment's limits.
	if r := limitGet(http.DefaultClient, s.GatewayURL+"/api/tenant/info", s.token(t, "big-co", "user")); r.policy != `"tenant-read";q=40;w=2` {
		t.Fatalf("big-co's policy %q", r.policy)
	}
}

// Finding 6 (part): no read timeouts let slow clients hold connections, and
// /metrics was served on the public API port.
func TestHostileLimitsServerHygiene(t *testing.T) {
	s := startWithEnv(t, "optional", nil,
		"ECHOPILOT_HTTP_READ_HEADER_TIMEOUT=1s", "ECHOPILOT_HTTP_READ_TIMEOUT=2s")
	addr := strings.TrimPrefix(s.GatewayURL, "http://")

	t.Run("slow headers are cut off", func(t *testing.T) {
		conn := dialGateway(t, addr)
		start := time.Now()
		closed := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, conn) // returns when the server closes
			closed <- err
		}()
		_, _ = io.WriteString(conn, "GET /api/tenant/info HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
		trickle(t, conn, closed) // the headers never end
		if took := time.Since(start); took < 800*time.Millisecond || took > 5*time.Second {
			t.Fatalf("closed after %v, want about the 1s header timeout", took)
		}
	})

	t.Run("slow bodies are cut off", func(t *testing.T) {
		conn := dialGateway(t, addr)
		start := time.Now()
		answered := make(chan error, 1)
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					err = errors.New("served")
				}
			}
			answered <- err
		}()
		_, _ = io.WriteString(conn, "POST /api/tenants HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
		// 50 more bytes at most: the body never ends.
		if err := trickle(t, conn, answered); (err != nil && err.Error() == "served") || time.Since(start) > 6*time.Second {
			t.Fatalf("slow body: %v after %v, want an answer or a close at about the 2s read timeout", err, time.Since(start))
		}
	})

	t.Run("metrics only on the admin port", func(t *testing.T) {
		s.call(t, "GET", "/api/tenant/info", "", nil, "") // something to count
		code, body := s.call(t, "GET", "/metrics", "", nil, "")
		if code != http.StatusNotFound || errReason(body) != "PATH_NOT_FOUND" || body["ok"] != false {
			t.Fatalf("/metrics on the API port: %d %v", code, body)
		}
		_, doc := s.call(t, "GET", "/openapi.json", "", nil, "")
		if paths, _ := doc["paths"].(map[string]any); paths == nil || paths["/metrics"] != nil {
			t.Fatal("/openapi.json lists /metrics (or no paths)")
		}
		for path, want := range map[string]string{
			"/metrics": "echopilot_gateway_request_duration_seconds",
			"/healthz": "ok",
		} {
			resp, err := http.Get(s.GatewayAdminURL + path)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), want) {
				t.Fatalf("admin %s: %d %s", path, resp.StatusCode, fmt.Sprintf("%.300s", raw))
			}
		}
	})
}

func dialGateway(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// trickle writes a byte to conn every 200 ms until done says the server
// ended the exchange, and returns what done said; it fails t when the
// server lets it go on for 10 s.
func trickle(t *testing.T, conn net.Conn, done <-chan error) error {
	t.Helper()
	for range 50 {
		select {
		case err := <-done:
			return err
		case <-time.After(200 * time.Millisecond):
			_, _ = conn.Write([]byte(" "))
		}
	}
	t.Fatal("a client trickling its request held its connection for 10 s")
	return nil
}
