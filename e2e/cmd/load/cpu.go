package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/echopilot/echopilot/e2e/internal/promscrape"
)

// cpuMetric is the Prometheus process collector's CPU counter: user and
// system time of the process, from /proc (10 ms ticks on Linux).
const cpuMetric = "process_cpu_seconds_total"

// server is one process whose CPU a phase reports.
type server struct {
	name       string
	metricsURL string // Prometheus text exposition with cpuMetric
}

// selfName stands for the load command itself (its own rusage): the client
// shares the cores with the servers.
const selfName = "load client"

// sampleCPU reads each server's cpuMetric, and the load command's own CPU.
func sampleCPU(ctx context.Context, servers []server) (map[string]float64, error) {
	out := make(map[string]float64, len(servers)+1)
	for _, s := range servers {
		v, err := scrapeCPU(ctx, s.metricsURL)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		out[s.name] = v
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return nil, err
	}
	out[selfName] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return out, nil
}

func scrapeCPU(ctx context.Context, url string) (float64, error) {
	fams, err := promscrape.Get(ctx, url)
	if err != nil {
		return 0, err
	}
	v, ok := fams.Sum(cpuMetric, nil)
	if !ok {
		return 0, errors.New(cpuMetric + " not found")
	}
	return v, nil
}

// cpuPer10k is each process's CPU seconds per 10,000 requests between two
// samples.
func cpuPer10k(before, after map[string]float64, requests int64) map[string]float64 {
	out := make(map[string]float64, len(after))
	if requests == 0 {
		return out
	}
	for name, v := range after {
		out[name] = (v - before[name]) / float64(requests) * 10000
	}
	return out
}
