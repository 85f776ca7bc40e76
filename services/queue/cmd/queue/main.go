// Command queue serves echopilot.queue.v1.QueueService: the priority job
// queue that edge workers lease jobs from.
package main

import (
	"fmt"
	"os"

	"github.com/echopilot/echopilot/platform/service"
	"github.com/echopilot/echopilot/services/queue/app"
)

func main() {
	if err := service.Run(os.Args[1:], app.Spec()); err != nil {
		fmt.Fprintln(os.Stderr, "queue:", err)
		os.Exit(1)
	}
}
