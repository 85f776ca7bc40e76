// Command growth serves echopilot.growth.v1.GrowthService: referral codes,
// click / signup / conversion / refund tracking, commissions, the
// leaderboard and the CSV payout export.
package main

import (
	"fmt"
	"os"

	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/services/growth/app"
)

func main() {
	if err := service.Run(os.Args[1:], app.Spec()); err != nil {
		fmt.Fprintln(os.Stderr, "growth:", err)
		os.Exit(1)
	}
}
