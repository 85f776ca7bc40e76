package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// envRequireBrowser makes the browser test fail, instead of skip, when no
// Chromium is found (CI sets it; .ci/run installs Chromium).
const envRequireBrowser = "ECHOPILOT_REQUIRE_BROWSER"

// envArtifacts names where tests leave files for people to look at.
const envArtifacts = "ECHOPILOT_ARTIFACTS_DIR"

// findChromium returns a Chromium or Chrome binary, or "".
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func artifactsDir(t *testing.T, sub string) string {
	t.Helper()
	dir := filepath.Join("artifacts", sub)
	if d := os.Getenv(envArtifacts); d != "" {
		dir = filepath.Join(d, sub)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// TestConsoleInBrowser drives the operator console in headless Chromium
// against the real binaries: sign in with a pasted token, open every page
// (htmx loaded under the strict CSP, with no CSP violation), cancel a job
// through its confirmation, redeliver a dead webhook delivery to a
// receiver on loopback, and save a screenshot of each page.
// requireChromium is the Chromium binary; without one the test skips, or
// fails when envRequireBrowser is set (CI).
func requireChromium(t *testing.T) string {
	t.Helper()
	chromium := findChromium()
	if chromium == "" {
		if os.Getenv(envRequireBrowser) != "" {
			t.Fatalf("%s is set but no chromium binary is on PATH (apt-get install -y chromium)", envRequireBrowser)
		}
		t.Skip("no chromium on PATH: skipping the console browser test (apt-get install -y chromium; CI sets " + envRequireBrowser + "=1)")
	}
	return chromium
}

func TestConsoleInBrowser(t *testing.T) {
	chromium := requireChromium(t)
	// Audit delivers to the test's receiver on 127.0.0.1, and gives a
	// delivery up after two quick attempts (the suite's fast retries).
	s := startWithEnv(t, "required", nil, allowLoopbackReceivers, "ECHOPILOT_WEBHOOK_MAX_ATTEMPTS=2")
	admin := s.token(t, "default", "admin")
	var jobs []string
	for i, typ := range []string{"report_gen", "summarize", "report_gen"} {
		code, body := s.call(t, "POST", "/api/queue/enqueue", admin, nil, fmt.Sprintf(`{"type":%q,"payload":{"n":%d},"priority":"high"}`, typ, i))
		if code != http.StatusOK {
			t.Fatalf("enqueue: %d %v", code, body)
		}
		jobs = append(jobs, body["job_id"].(string))
	}
	if code, body := s.call(t, "POST", "/api/audit/entries", admin, nil, `{"entries":[{"event_type":"console_check","user":"e2e","action":"look","resource":"console"}]}`); code != http.StatusOK {
		t.Fatalf("audit entry: %d %v", code, body)
	}
	if code, body := s.call(t, "POST", "/api/growth/referral/create", admin, nil, `{"referrer_id":"alice","campaign":"spring"}`); code != http.StatusOK {
		t.Fatalf("referral: %d %v", code, body)
	}

	b := newConsoleBrowser(t, chromium, s.GatewayURL)
	step, shot, text := b.step, b.shot, b.text

	// Signing in.
	step("login page", chromedp.Navigate(s.GatewayURL+"/console/login"), chromedp.WaitVisible(chromedp.CSS("#token")))
	shot("login")
	step("bad token", chromedp.SetValue(chromedp.CSS("#token"), "not-a-token"), chromedp.Click(chromedp.CSS("form button")),
		chromedp.WaitVisible(chromedp.CSS("p.error")))
	step("sign in", chromedp.SetValue(chromedp.CSS("#token"), admin), chromedp.Click(chromedp.CSS("form button")),
		chromedp.WaitVisible(chromedp.CSS("header nav")))

	pages := []struct{ name, path, want string }{
		{"overview", "/console/", "Requests per minute"},
		{"queue", "/console/queue", "report_gen"},
		{"queue-queued", "/console/queue?status=queued", "summarize"},
		{"job", "/console/queue/jobs/" + jobs[0], "Lease holder"},
		{"workers", "/console/workers", "Workers"},
		{"audit", "/console/audit", "console_check"},
		{"webhooks-empty", "/console/webhooks", "Delivery attempts"},
		{"finops", "/console/finops", "Margin"},
		{"growth", "/console/growth", "alice"},
		{"tenants", "/console/tenants", "Access decisions"},
	}
	for _, p := range pages {
		step(p.name, chromedp.Navigate(s.GatewayURL+p.path), chromedp.WaitVisible(chromedp.CSS("main h1")))
		if got := text(); !strings.Contains(got, p.want) {
			t.Fatalf("%s lacks %q:\n%s", p.path, p.want, got)
		}
		shot(p.name)
	}
	// htmx is loaded and boosts the page (under the CSP).
	loaded, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`typeof htmx === "object" && document.body.getAttribute("hx-boost") === "true"`))
	if err != nil || !loaded {
		t.Fatalf("htmx not loaded: %v %v", loaded, err)
	}

	// Cancel a job: job page, its action link, the confirmation (htmx's
	// hx-confirm dialog is accepted), then the job shows cancelled.
	step("job page", chromedp.Navigate(s.GatewayURL+"/console/queue/jobs/"+jobs[1]), chromedp.WaitVisible(chromedp.CSS("a.button")))
	step("cancel link", chromedp.Click(chromedp.CSS("a.button")), chromedp.WaitVisible(chromedp.CSS("button.danger")))
	shot("confirm-cancel")
	step("confirm", chromedp.Click(chromedp.CSS("button.danger")), chromedp.WaitVisible(chromedp.CSS("p.notice.ok")))
	if got := text(); !strings.Contains(got, "Cancel job: done.") || !strings.Contains(got, "cancelled") {
		t.Fatalf("after cancel:\n%s", got)
	}
	shot("job-cancelled")
	code, body := s.call(t, "GET", "/api/queue/jobs/"+jobs[1], admin, nil, "")
	if job, _ := body["job"].(map[string]any); code != http.StatusOK || job["status"] != "cancelled" {
		t.Fatalf("job after the console cancelled it: %d %v", code, body)
	}

	// Redeliver a webhook delivery: a receiver that answers 500 until it
	// is fixed, a high entry whose delivery dies, then the console's
	// Redeliver on it, and the receiver gets it.
	var hookMu sync.Mutex
	hookFailing, hookGot := true, 0
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hookMu.Lock()
		defer hookMu.Unlock()
		if hookFailing {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		hookGot++
	}))
	defer rcv.Close()
	code, body = s.call(t, "POST", "/api/audit/endpoints", admin, nil, fmt.Sprintf(`{"url":%q}`, rcv.URL+"/hook"))
	if code != http.StatusOK {
		t.Fatalf("endpoint: %d %v", code, body)
	}
	endpoint := dig(body, "endpoint", "endpoint_id").(string)
	if code, body := s.call(t, "POST", "/api/audit/entries", admin, nil, `{"entries":[{"event_type":"console_hook","user":"e2e","action":"ring","resource":"console","severity":"high"}]}`); code != http.StatusOK {
		t.Fatalf("audit entry: %d %v", code, body)
	}
	waitFor(t, 60*time.Second, "a dead webhook delivery", func() bool {
		_, body := s.call(t, "GET", "/api/audit/deliveries?endpoint_id="+endpoint, admin, nil, "")
		atts, _ := body["attempts"].([]any)
		return len(atts) > 0 && dig(atts[0].(map[string]any), "outcome") == "dead"
	})
	hookMu.Lock()
	hookFailing = false
	hookMu.Unlock()
	redeliver := `a.button[href*="redeliver_delivery"]`
	step("webhooks with a dead delivery", chromedp.Navigate(s.GatewayURL+"/console/webhooks"), chromedp.WaitVisible(chromedp.CSS(redeliver)))
	if got := text(); !strings.Contains(got, endpoint) || !strings.Contains(got, "dead") || !strings.Contains(got, "enabled") {
		t.Fatalf("webhooks page:\n%s", got)
	}
	shot("webhooks-dead")
	step("redeliver link", chromedp.Click(chromedp.CSS(redeliver)), chromedp.WaitVisible(chromedp.CSS("button.danger")))
	shot("confirm-redeliver")
	step("confirm redeliver", chromedp.Click(chromedp.CSS("button.danger")), chromedp.WaitVisible(chromedp.CSS("p.notice.ok")))
	if got := text(); !strings.Contains(got, "Redeliver: done.") {
		t.Fatalf("after redeliver:\n%s", got)
	}
	waitFor(t, 30*time.Second, "the receiver got the redelivery", func() bool {
		hookMu.Lock()
		defer hookMu.Unlock()
		return hookGot == 1
	})
	waitFor(t, 30*time.Second, "the redelivery recorded", func() bool {
		_, body := s.call(t, "GET", "/api/audit/deliveries?endpoint_id="+endpoint, admin, nil, "")
		atts, _ := body["attempts"].([]any)
		return len(atts) > 0 && dig(atts[0].(map[string]any), "outcome") == "delivered"
	})
	step("webhooks after redelivery", chromedp.Navigate(s.GatewayURL+"/console/webhooks?endpoint="+endpoint), chromedp.WaitVisible(chromedp.CSS("td.ok.outcome")))
	shot("webhooks")

	// Signing out ends the session.
	step("sign out", chromedp.Click(chromedp.CSS(`form[action="/console/logout"] button`)), chromedp.WaitVisible(chromedp.CSS("#token")))

	b.finish()
}
