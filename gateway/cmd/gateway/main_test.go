package main

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/echopilot/echopilot/gateway/internal/gateway"
	"github.com/echopilot/echopilot/platform/config"
)

// TestPrintConfigDeclaresBackends: --print-config names every backend and
// lists the variable each one's address comes from, and run stops there.
func TestPrintConfigDeclaresBackends(t *testing.T) {
	var s settings
	l, _ := loader(&s)
	var out strings.Builder
	l.Stdout = &out
	if err := l.Parse([]string{"--print-config"}); !errors.Is(err, config.ErrPrinted) {
		t.Fatalf("Parse = %v, want ErrPrinted", err)
	}
	var desc struct {
		Settings []config.Setting `json:"settings"`
		Facts    struct {
			Backends []string `json:"backends"`
		} `json:"facts"`
	}
	if err := json.Unmarshal([]byte(out.String()), &desc); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, b := range gateway.Backends() {
		want = append(want, b.Name)
	}
	if !slices.Equal(desc.Facts.Backends, want) {
		t.Fatalf("backends = %q, want %q", desc.Facts.Backends, want)
	}
	for _, b := range want {
		key := "ECHOPILOT_" + strings.ToUpper(b) + "_ADDR"
		if !slices.ContainsFunc(desc.Settings, func(s config.Setting) bool { return s.Env == key && s.Flag == b+"-addr" }) {
			t.Errorf("no setting %s (--%s-addr)", key, b)
		}
	}
	if err := run([]string{"--print-config"}); err != nil {
		t.Fatalf("run(--print-config) = %v, want a clean exit", err)
	}
}
