package service

import (
	"context"
	"os"
	"testing"
)

// TestPrintConfigStartsNothing: --print-config is a clean exit before the
// database (the default SQLite file would appear in the working directory),
// the listeners and Setup.
func TestPrintConfigStartsNothing(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	spec := Spec{
		Name: "printer", GRPCAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
		Setup: func(context.Context, *Runtime) error {
			t.Error("Setup ran")
			return nil
		},
	}
	if err := RunContext(t.Context(), []string{"--print-config"}, spec, Overrides{}); err != nil {
		t.Fatalf("RunContext = %v, want a clean exit", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s was created: something started", e.Name())
	}
}
