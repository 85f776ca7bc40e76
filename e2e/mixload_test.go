package e2e

import (
	"testing"
	"time"

	"github.com/echopilot/echopilot/e2e/internal/mixload"
)

// A short run of the mixed load: every path answers, none fails, and no
// process's memory runs away. (`make load` runs it for 60 s and reports the
// figures; this test only checks correctness.)
func TestMixedLoadHasNoErrors(t *testing.T) {
	s := startSuite(t, "required")
	stack := mixload.Stack{GatewayURL: s.GatewayURL, UserToken: s.token(t, "acme", "user"),
		AdminToken: s.token(t, "default", "admin"), StripeSecret: stripeSecret}
	mixload.Run(t.Context(), stack, 8, time.Second) // warm-up
	before := map[string]int64{}
	for name, p := range s.Procs {
		v, err := mixload.RSS(p.Pid())
		if err != nil {
			t.Fatal(err)
		}
		before[name] = v
	}
	rep := mixload.Run(t.Context(), stack, 8, 4*time.Second)
	t.Log("\n" + rep.String())
	for _, p := range rep.Paths {
		if p.Requests == 0 || p.Errors > 0 {
			t.Errorf("%s: %d requests, %d errors (first: %s)", p.Path, p.Requests, p.Errors, p.FirstError)
		}
	}
	for name, p := range s.Procs {
		after, err := mixload.RSS(p.Pid())
		if err != nil {
			t.Fatal(err)
		}
		if after > 2*before[name]+64<<20 {
			t.Errorf("%s grew from %d to %d bytes resident in 4 s", name, before[name], after)
		}
	}
}
