package period

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestDays(t *testing.T) {
	for in, want := range map[int32]int{0: DefaultDays, 1: 1, 30: 30, MaxDays: MaxDays} {
		if got, err := Days(in, "x.echopilot"); err != nil || got != want {
			t.Errorf("Days(%d) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []int32{-1, MaxDays + 1, 1 << 30} {
		_, err := Days(in, "x.echopilot")
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("Days(%d) = %v, want INVALID_ARGUMENT", in, err)
		}
	}
}
