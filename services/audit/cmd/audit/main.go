// Command audit serves echopilot.audit.v1.AuditService: the tamper-evident
// audit log of every tenant, with signed checkpoints and proofs.
//
//	audit            serve
//	audit migrate    apply the migrations and exit
//	audit keygen     print a new checkpoint signing key and its verifier key
package main

import (
	"fmt"
	"os"

	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/services/audit/app"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "audit:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "keygen" {
		return app.Keygen(os.Stdout)
	}
	return service.Run(args, app.Spec())
}
