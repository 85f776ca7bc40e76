// Command tenancy serves echopilot.tenancy.v1.TenancyService: the tenant
// registry and the access-decision statistics of the whole suite.
package main

import (
	"fmt"
	"os"

	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/services/tenancy/app"
)

func main() {
	if err := service.Run(os.Args[1:], app.Spec()); err != nil {
		fmt.Fprintln(os.Stderr, "tenancy:", err)
		os.Exit(1)
	}
}
