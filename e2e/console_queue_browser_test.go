package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestConsoleQueueRepairsInBrowser drives the console's queue repairs in
// headless Chromium against the real binaries: a dead job (leased and
// failed by a worker through the REST API) shows its attempts and is
// retried from its page through the confirmation; a bulk cancel by filter
// shows the dry run's count before it runs; a job type is paused from the
// queue page; a ticked job is cancelled. Each change is checked through the REST API, and the job
// page, the bulk confirmation and the queue page are saved as screenshots.
func TestConsoleQueueRepairsInBrowser(t *testing.T) {
	chromium := requireChromium(t)
	s := startSuite(t, "required")
	admin, worker := s.token(t, "default", "admin"), s.token(t, "default", "worker")
	must := func(method, path, token, body string) map[string]any {
		t.Helper()
		code, res := s.call(t, method, path, token, nil, body)
		if code != http.StatusOK {
			t.Fatalf("%s %s %s = %d %v", method, path, body, code, res)
		}
		return res
	}
	// A job that dies on its first attempt: leased and failed as a worker.
	dead := must("POST", "/api/queue/enqueue", admin, `{"type":"data_sync","max_attempts":1,"payload":{"table":"orders"}}`)["job_id"].(string)
	leases, _ := must("POST", "/api/queue/lease", worker, `{"worker_id":"edge-7","types":["data_sync"]}`)["leases"].([]any)
	if len(leases) != 1 {
		t.Fatalf("lease: %v", leases)
	}
	must("POST", "/api/queue/jobs/"+dead+"/fail", worker,
		fmt.Sprintf(`{"worker_id":"edge-7","lease_token":%v,"error":"upstream 502 from the warehouse"}`, leases[0].(map[string]any)["lease_token"]))
	if job := must("GET", "/api/queue/jobs/"+dead, admin, "")["job"].(map[string]any); job["status"] != "dead" {
		t.Fatalf("job after its only attempt failed: %v", job)
	}
	// Jobs to cancel by filter, and one the filter leaves.
	for i := range 4 {
		must("POST", "/api/queue/enqueue", admin, fmt.Sprintf(`{"type":"nightly_export","priority":"low","payload":{"n":%d}}`, i))
	}
	keep := must("POST", "/api/queue/enqueue", admin, `{"type":"report_gen","priority":"low"}`)["job_id"].(string)

	b := newConsoleBrowser(t, chromium, s.GatewayURL)
	b.signIn(admin)

	// The dead job's page: its attempt, then retry through the confirmation.
	b.step("job page", chromedp.Navigate(s.GatewayURL+"/console/queue/jobs/"+dead), chromedp.WaitVisible(chromedp.CSS("#attempts")))
	if got := b.text(); !strings.Contains(got, "edge-7") || !strings.Contains(got, "upstream 502 from the warehouse") || !strings.Contains(got, "Retry job…") {
		t.Fatalf("the dead job's page:\n%s", got)
	}
	b.shot("queue-job-dead")
	b.step("retry link", chromedp.Click(chromedp.CSS(`a.button[href*="retry_job"]`)), chromedp.WaitVisible(chromedp.CSS("button.danger")))
	b.step("confirm retry", chromedp.Click(chromedp.CSS("button.danger")), chromedp.WaitVisible(chromedp.CSS("p.notice.ok")))
	if got := b.text(); !strings.Contains(got, "Retry job: done.") || !strings.Contains(got, "e2e-default at") {
		t.Fatalf("after the retry:\n%s", got)
	}
	b.shot("queue-job-retried")
	if job := must("GET", "/api/queue/jobs/"+dead, admin, "")["job"].(map[string]any); job["status"] != "queued" || job["retried_by"] != "e2e-default" || job["attempts"] != 1.0 {
		t.Fatalf("job after the console retried it: %v", job)
	}

	// Bulk cancel by filter: the confirmation shows the dry run's count.
	b.step("queue page", chromedp.Navigate(s.GatewayURL+"/console/queue"), chromedp.WaitVisible(chromedp.CSS("#bulk")))
	b.step("bulk form",
		chromedp.SetValue(chromedp.CSS(`#bulk select[name="op"]`), "cancel"),
		chromedp.SetValue(chromedp.CSS(`#bulk input[name="type"]`), "nightly_export"),
		chromedp.SetValue(chromedp.CSS(`#bulk select[name="priority"]`), "low"),
		chromedp.Click(chromedp.CSS(`#bulk input[name="statuses"][value="queued"]`)),
		chromedp.Click(chromedp.CSS("#bulk button")),
		chromedp.WaitVisible(chromedp.CSS("#bulk-count")))
	if got := b.text(); !strings.Contains(got, "This will cancel 4 jobs (at most 1000 per call).") {
		t.Fatalf("the bulk confirmation:\n%s", got)
	}
	if code, body := s.call(t, "GET", "/api/queue/jobs?type=nightly_export&status=queued", admin, nil, ""); code != http.StatusOK || len(body["jobs"].([]any)) != 4 {
		t.Fatalf("the dry run changed jobs: %d %v", code, body)
	}
	b.shot("queue-bulk-confirm")
	b.step("confirm bulk", chromedp.Click(chromedp.CSS("button.danger")), chromedp.WaitVisible(chromedp.CSS("#done")))
	if got := b.text(); !strings.Contains(got, "Bulk cancel by filter: 4 jobs cancelled of 4 matching; 0 remaining.") {
		t.Fatalf("after the bulk cancel:\n%s", got)
	}
	jobs := must("GET", "/api/queue/jobs?type=nightly_export", admin, "")["jobs"].([]any)
	if len(jobs) != 4 {
		t.Fatalf("nightly_export jobs: %v", jobs)
	}
	for _, j := range jobs {
		if j := j.(map[string]any); j["status"] != "cancelled" || j["cancelled_by"] != "e2e-default" {
			t.Fatalf("a job the bulk cancel matched: %v", j)
		}
	}
	if job := must("GET", "/api/queue/jobs/"+keep, admin, "")["job"].(map[string]any); job["status"] != "queued" {
		t.Fatalf("a job outside the filter: %v", job)
	}

	// Cancel a selection of the page's jobs: tick one, one confirmation.
	b.step("select a job", chromedp.Navigate(s.GatewayURL+"/console/queue"), chromedp.WaitVisible(chromedp.CSS("#selection")),
		chromedp.Click(chromedp.CSS(`#selection input[value="`+keep+`"]`)),
		chromedp.Click(chromedp.CSS(`#selection button[value="cancel"]`)),
		chromedp.WaitVisible(chromedp.CSS("#selection-count")))
	if got := b.text(); !strings.Contains(got, "This will cancel 1 of the 1 selected jobs") || !strings.Contains(got, keep) {
		t.Fatalf("the selection's confirmation:\n%s", got)
	}
	b.step("confirm selection", chromedp.Click(chromedp.CSS("button.danger")), chromedp.WaitVisible(chromedp.CSS("#done")))
	if got := b.text(); !strings.Contains(got, "Selected jobs: 1 cancelled, 0 skipped") {
		t.Fatalf("after the selection's cancel:\n%s", got)
	}
	if job := must("GET", "/api/queue/jobs/"+keep, admin, "")["job"].(map[string]any); job["status"] != "cancelled" {
		t.Fatalf("the selected job: %v", job)
	}

	// Pause a job type from the queue page; it shows among the paused types.
	b.step("queue page again", chromedp.Navigate(s.GatewayURL+"/console/queue"), chromedp.WaitVisible(chromedp.CSS("#paused")))
	b.step("pause form",
		chromedp.SetValue(chromedp.CSS(`#paused input[name="job_type"]`), "data_sync"),
		chromedp.Click(chromedp.CSS(`#paused form button`)),
		chromedp.WaitVisible(chromedp.CSS("button.danger")))
	b.step("confirm pause", chromedp.Click(chromedp.CSS("button.danger")), chromedp.WaitVisible(chromedp.CSS("#done")))
	if got := b.text(); !strings.Contains(got, "data_sync is paused") || !strings.Contains(got, "Resume…") {
		t.Fatalf("after the pause:\n%s", got)
	}
	if types := must("GET", "/api/queue/paused-types", admin, "")["paused_types"].([]any); len(types) != 1 || types[0].(map[string]any)["job_type"] != "data_sync" {
		t.Fatalf("paused types: %v", types)
	}
	b.shot("queue-repairs")
	b.finish()
}

// consoleBrowser is a headless Chromium on the console that records
// script errors and CSP violations and accepts htmx's hx-confirm dialogs.
type consoleBrowser struct {
	t        *testing.T
	ctx      context.Context
	url      string
	shots    string
	mu       sync.Mutex
	problems []string
}

func newConsoleBrowser(t *testing.T, chromium, gatewayURL string) *consoleBrowser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	b := &consoleBrowser{t: t, ctx: ctx, url: gatewayURL, shots: artifactsDir(t, "console")}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if text := m.String(); m.IsException() || strings.Contains(text, "Content Security Policy") || strings.Contains(text, "Refused to") {
				b.mu.Lock()
				b.problems = append(b.problems, text)
				b.mu.Unlock()
			}
		}
	}()
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			go func() {
				_ = chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
					_, err := cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
					return err
				}))
			}()
		}
	}()
	return b
}

// step runs actions within 30 seconds, or fails with the page's HTML.
func (b *consoleBrowser) step(name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		html, _ := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("body")))
		b.t.Fatalf("%s: %v\n%s", name, err, html)
	}
}

// shot saves a full-page screenshot as name.png in the artifacts folder.
func (b *consoleBrowser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// text is the page's visible text.
func (b *consoleBrowser) text() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

func (b *consoleBrowser) signIn(token string) {
	b.t.Helper()
	b.step("sign in", chromedp.Navigate(b.url+"/console/login"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SetValue(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("form button")),
		chromedp.WaitVisible(chromedp.CSS("header nav")))
}

// finish fails the test on any script error or CSP violation seen.
func (b *consoleBrowser) finish() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Fatalf("the browser reported problems:\n%s", strings.Join(b.problems, "\n"))
	}
	b.t.Logf("screenshots in %s", b.shots)
}
