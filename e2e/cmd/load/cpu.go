package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	// No Accept header: promhttp answers in the text format.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return parseCPUSeconds(resp.Body)
}

// parseCPUSeconds finds cpuMetric's sample in a Prometheus text exposition.
// The process collector gives it no labels; one with labels is refused
// rather than guessed at.
func parseCPUSeconds(r io.Reader) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, cpuMetric)
		if !ok || rest == "" {
			continue
		}
		if rest[0] == '{' {
			return 0, fmt.Errorf("%s has labels: %q", cpuMetric, line)
		}
		if rest[0] != ' ' && rest[0] != '\t' {
			continue // a longer name with this prefix
		}
		f := strings.Fields(rest) // value, then an optional timestamp
		if len(f) == 0 {
			return 0, fmt.Errorf("no value: %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", cpuMetric, err)
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New(cpuMetric + " not found")
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
