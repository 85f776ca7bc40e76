package mixload

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/echopilot/echopilot/platform/loadtest"
)

// PacedReport is the outcome of RunPaced: every request's latency together
// and how the requests ended.
type PacedReport struct {
	Sent, OK, Limited, Failed int
	P50, P99, Max             time.Duration
	// FirstError describes the first failure other than a 429.
	FirstError string
}

func (r PacedReport) String() string {
	return fmt.Sprintf("%d requests: %d ok, %d refused (429), %d failed; p50 %.2f ms, p99 %.2f ms, max %.2f ms",
		r.Sent, r.OK, r.Limited, r.Failed, ms(r.P50), ms(r.P99), ms(r.Max))
}

// RunPaced sends the mix at a steady rate per second for duration, each
// request on its own goroutine, so a slow answer does not delay the next
// send (open loop: what one tenant's steady traffic looks like, whatever
// the gateway's speed). Latencies are of the requests answered 200.
func RunPaced(ctx context.Context, s Stack, rate float64, duration time.Duration) PacedReport {
	mix := ops()
	var wheel []int
	for i, o := range mix {
		for range o.weight {
			wheel = append(wheel, i)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	var (
		mu  sync.Mutex
		lat loadtest.Latencies
		rep PacedReport
		wg  sync.WaitGroup
	)
	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	stop := time.After(duration)
	for n := int64(0); ; n++ {
		select {
		case <-ctx.Done():
		case <-stop:
		case <-tick.C:
			i := wheel[int(n)%len(wheel)]
			wg.Go(func() {
				req, err := mix[i].req(s, n)
				status, took := 0, time.Duration(0)
				if err == nil {
					start := time.Now()
					var res *http.Response
					if res, err = client.Do(req.WithContext(ctx)); err == nil {
						_, _ = io.Copy(io.Discard, res.Body)
						res.Body.Close()
						status, took = res.StatusCode, time.Since(start)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				rep.Sent++
				switch {
				case err == nil && status == http.StatusOK:
					rep.OK++
					lat.Add(took)
				case err == nil && status == http.StatusTooManyRequests:
					rep.Limited++
				default:
					rep.Failed++
					if rep.FirstError == "" {
						rep.FirstError = fmt.Sprintf("%s: status %d, %v", mix[i].name, status, err)
					}
				}
			})
			continue
		}
		break
	}
	wg.Wait()
	rep.P50, rep.P99, rep.Max = lat.Quantile(0.5), lat.Quantile(0.99), lat.Quantile(1)
	return rep
}
