package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/echopilot/echopilot/platform/devstack"
	"github.com/echopilot/echopilot/platform/store"
)

// `tenancy migrate` applies the schema and exits, as a Kubernetes Job runs it.
func TestMigrateSubcommand(t *testing.T) {
	for _, svc := range devstack.Services() {
		t.Run(svc.Name, func(t *testing.T) {
			dbPath := filepath.Join(t.TempDir(), svc.Name+".db")
			cmd := exec.Command(filepath.Join(binDir, svc.Name), "migrate", "--database-url=sqlite://"+dbPath)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s migrate: %v\n%s", svc.Name, err, out)
			}
			db, err := store.Open(context.Background(), "sqlite://"+dbPath)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var tables int
			if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).Scan(&tables); err != nil {
				t.Fatal(err)
			}
			if tables < 2 { // the version table and at least one of the service's
				t.Fatalf("%s migrate created %d tables", svc.Name, tables)
			}
			// A second run finds nothing to do and still succeeds.
			if out, err := exec.Command(filepath.Join(binDir, svc.Name), "migrate", "--database-url=sqlite://"+dbPath).CombinedOutput(); err != nil {
				t.Fatalf("second migrate: %v\n%s", err, out)
			}
		})
	}
}
