// Command audit serves echopilot.audit.v1.AuditService: the tamper-evident
// audit log of every tenant, with signed checkpoints and proofs.
package main

import (
	"fmt"
	"os"

	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/services/audit/app"
)

func main() {
	if err := service.Run(os.Args[1:], app.Spec()); err != nil {
		fmt.Fprintln(os.Stderr, "audit:", err)
		os.Exit(1)
	}
}
