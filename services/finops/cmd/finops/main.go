// Command finops serves echopilot.finops.v1.FinOpsService: revenue from
// Stripe, AI cost from completed queue jobs, infrastructure from a rate
// card, and profitability per tenant.
package main

import (
	"fmt"
	"os"

	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/services/finops/app"
)

func main() {
	if err := service.Run(os.Args[1:], app.Spec()); err != nil {
		fmt.Fprintln(os.Stderr, "finops:", err)
		os.Exit(1)
	}
}
