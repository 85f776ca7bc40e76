package gateway

import (
	"net/http"
	"sync"
	"time"

	"github.com/echopilot/echopilot/gateway/internal/console"
)

// trafficMinutes is how far back the gateway's own request counters reach.
const trafficMinutes = 60

// traffic counts the API's requests and errors (5xx) per minute over the
// last hour, for the console's overview: a ring of minute buckets, each
// reset when its minute comes round again. Prometheus has the full
// picture; this is what one replica saw, without a query language.
type traffic struct {
	mu      sync.Mutex
	buckets [trafficMinutes]minuteBucket
	now     func() time.Time
}

type minuteBucket struct {
	minute           int64 // Unix minute the counts belong to
	requests, errors int64
}

func newTraffic() *traffic { return &traffic{now: time.Now} }

func (t *traffic) record(code int) {
	m := t.now().Unix() / 60
	t.mu.Lock()
	b := &t.buckets[m%trafficMinutes]
	if b.minute != m {
		*b = minuteBucket{minute: m}
	}
	b.requests++
	if code >= 500 {
		b.errors++
	}
	t.mu.Unlock()
}

// snapshot returns the last hour, oldest minute first.
func (t *traffic) snapshot() console.Traffic {
	now := t.now().Unix() / 60
	out := console.Traffic{Minutes: make([]console.MinuteCount, trafficMinutes)}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range trafficMinutes {
		m := now - trafficMinutes + 1 + int64(i)
		mc := console.MinuteCount{Start: time.Unix(m*60, 0).UTC()}
		if b := t.buckets[((m%trafficMinutes)+trafficMinutes)%trafficMinutes]; b.minute == m {
			mc.Requests, mc.Errors = b.requests, b.errors
		}
		out.Minutes[i] = mc
		out.Requests += mc.Requests
		out.Errors += mc.Errors
	}
	return out
}

// count records every API request's status in t.
func (t *traffic) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		t.record(sw.code)
	})
}
