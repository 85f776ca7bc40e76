package worker

import (
	"os"
	"runtime/debug"

	queuev1 "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
)

// describe is what the worker tells the queue's registry of itself.
func describe(cfg Config) *queuev1.WorkerInfo {
	info := &queuev1.WorkerInfo{Version: cfg.Version, Host: cfg.Host, Concurrency: int32(cfg.Concurrency)}
	if info.Version == "" {
		info.Version = buildVersion()
	}
	if info.Host == "" {
		// Without a hostname the worker still works; the registry shows "".
		info.Host, _ = os.Hostname()
	}
	return info
}

// buildVersion is the main module's version, or for a binary built from a
// checkout its VCS revision ("+dirty" with uncommitted changes), or "devel".
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value[:min(len(s.Value), 12)]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev == "" {
		return "devel"
	}
	return rev + dirty
}
