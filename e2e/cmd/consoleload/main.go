// Command consoleload measures the operator console's pages on a large
// database: it starts a throwaway stack of the real binaries (SQLite, or
// PostgreSQL when ECHOPILOT_DATABASE_URL is set), seeds one tenant with
// -jobs queued jobs and -entries audit entries through the REST API, signs
// in to the console as the platform admin and as the tenant's user, and
// then asks each page -requests times, one request at a time, reporting
// p50/p95/p99 per page. It exits 1 when a page answers other than 200 or
// its p95 is above -p95.
//
//	go run ./e2e/cmd/consoleload                          # 100,000 jobs, 1,000,000 entries
//	go run ./e2e/cmd/consoleload -jobs 2000 -entries 20000 # a quick look
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/echopilot/echopilot/e2e/internal/localstack"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "consoleload:", err)
		os.Exit(1)
	}
}

const tenant = "acme"

func run() error {
	jobs := flag.Int("jobs", 100_000, "queued jobs to seed")
	entries := flag.Int("entries", 1_000_000, "audit entries to seed")
	requests := flag.Int("requests", 200, "measured requests per page")
	limit := flag.Duration("p95", 100*time.Millisecond, "most a page's p95 may be")
	flag.Parse()
	ctx := context.Background()

	st, err := localstack.Start(ctx, localstack.NoRateLimits...)
	if err != nil {
		return err
	}
	defer st.Close()
	userToken, err := st.Token(tenant, "user")
	if err != nil {
		return err
	}
	adminToken, err := st.Token("default", "admin")
	if err != nil {
		return err
	}
	api := client{base: st.GatewayURL, token: userToken, http: &http.Client{Timeout: time.Minute}}

	start := time.Now()
	if err := seedAudit(api, *entries); err != nil {
		return err
	}
	auditTime := time.Since(start)
	jobID, err := seedJobs(api, *jobs)
	if err != nil {
		return err
	}
	fmt.Printf("console pages, %s, %d jobs and %d audit entries of tenant %s (seeded in %v and %v through the REST API)\n",
		st.Backend, *jobs, *entries, tenant, auditTime.Round(time.Second), (time.Since(start) - auditTime).Round(time.Second))

	admin, err := signIn(st.GatewayURL, adminToken)
	if err != nil {
		return err
	}
	user, err := signIn(st.GatewayURL, userToken)
	if err != nil {
		return err
	}
	pages := []struct {
		who  string
		c    *http.Client
		path string
	}{
		{"admin", admin, "/console/"},
		{"admin", admin, "/console/queue?tenant=" + tenant},
		{"admin", admin, "/console/queue?status=queued&tenant=" + tenant},
		{"user", user, "/console/queue/jobs/" + url.PathEscape(jobID)},
		{"user", user, "/console/workers"},
		{"user", user, "/console/audit"},
		{"admin", admin, "/console/audit?tenant=" + tenant},
		{"user", user, "/console/webhooks"},
		{"admin", admin, "/console/finops"},
		{"user", user, "/console/growth"},
		{"admin", admin, "/console/tenants"},
	}
	fmt.Printf("\n%-6s %-45s %8s %8s %8s  (ms, %d requests each, one at a time, after 5 unmeasured)\n",
		"as", "page", "p50", "p95", "p99", *requests)
	var failed []string
	for _, p := range pages {
		var took []time.Duration
		for i := range *requests + 5 {
			t0 := time.Now()
			code, body, err := getPage(p.c, st.GatewayURL+p.path)
			d := time.Since(t0)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("%s as %s: %d %v\n%s", p.path, p.who, code, err, clip(body))
			}
			if i >= 5 {
				took = append(took, d)
			}
		}
		slices.Sort(took)
		q := func(f float64) time.Duration { return took[int(f*float64(len(took)-1))] }
		fmt.Printf("%-6s %-45s %8.1f %8.1f %8.1f\n", p.who, p.path, ms(q(0.5)), ms(q(0.95)), ms(q(0.99)))
		if q(0.95) > *limit {
			failed = append(failed, p.path)
		}
	}
	if failed != nil {
		return fmt.Errorf("p95 above %v: %s", *limit, strings.Join(failed, ", "))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func clip(b []byte) string { return string(b[:min(len(b), 500)]) }

// client calls the REST API as one tenant's user.
type client struct {
	base, token string
	http        *http.Client
}

func (c client) post(path, body string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("POST %s: %d %s", path, res.StatusCode, clip(out))
	}
	return out, err
}

// parallel runs n calls of fn over 8 workers, stopping at the first error.
func parallel(n int, fn func(i int) error) error {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				mu.Lock()
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// seedAudit appends n entries in calls of 1,000, then reads the log once
// (its first read verifies it whole; the pages measure the reads after).
func seedAudit(c client, n int) error {
	const batch = 1000
	calls := (n + batch - 1) / batch
	err := parallel(calls, func(i int) error {
		var b bytes.Buffer
		b.WriteString(`{"entries":[`)
		for j := range min(batch, n-i*batch) {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"event_type":"load.seed","user":"u%d","action":"write","resource":"r%d","severity":"low"}`, j, i)
		}
		b.WriteString(`]}`)
		_, err := c.post("/api/audit/entries", b.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("seed audit: %w", err)
	}
	req, err := http.NewRequest(http.MethodGet, c.base+"/api/audit/chain?limit=10", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("first chain read: %d", res.StatusCode)
	}
	return nil
}

var jobIDPattern = regexp.MustCompile(`"job_id"\s*:\s*"([^"]+)"`)

// seedJobs enqueues n jobs and returns one of their ids.
func seedJobs(c client, n int) (string, error) {
	var id atomic.Value
	err := parallel(n, func(i int) error {
		out, err := c.post("/api/queue/enqueue", fmt.Sprintf(`{"type":"report_gen","priority":"%s","idempotency_key":"seed-%d"}`,
			[]string{"low", "normal", "high"}[i%3], i))
		if err == nil && i == n/2 {
			if m := jobIDPattern.FindSubmatch(out); m != nil {
				id.Store(string(m[1]))
			}
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("seed jobs: %w", err)
	}
	s, _ := id.Load().(string)
	if s == "" {
		return "", errors.New("seed jobs: no job id in the answers")
	}
	return s, nil
}

// signIn signs in to the console with token, as a browser does (the login
// form's CSRF token and cookie, then the session cookie), and returns a
// client that carries the session.
func signIn(base, token string) (*http.Client, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	c := &http.Client{Jar: jar, Timeout: time.Minute}
	_, page, err := getPage(c, base+"/console/login")
	if err != nil {
		return nil, err
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		return nil, errors.New("sign in: no CSRF token on the login page")
	}
	res, err := c.PostForm(base+"/console/login", url.Values{"csrf": {string(m[1])}, "token": {token}, "next": {"/console/"}})
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || bytes.Contains(body, []byte(`name="token"`)) {
		return nil, fmt.Errorf("sign in: %d\n%s", res.StatusCode, clip(body))
	}
	return c, nil
}

func getPage(c *http.Client, u string) (int, []byte, error) {
	res, err := c.Get(u)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}
