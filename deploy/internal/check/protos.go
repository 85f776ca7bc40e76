package check

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	// The generated packages register their file descriptors: what the
	// health checks must name comes from the compiled protos, not from
	// reading .proto source. A new service adds its package here.
	_ "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
)

// protoServices returns the full names of the gRPC services in the proto
// package echopilot.<name>.v1, sorted.
func protoServices(name string) ([]string, error) {
	pkg := protoreflect.FullName("echopilot." + name + ".v1")
	var out []string
	protoregistry.GlobalFiles.RangeFilesByPackage(pkg, func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			out = append(out, string(fd.Services().Get(i).FullName()))
		}
		return true
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("no gRPC service in proto package %s: is its gen package imported in deploy/internal/check/protos.go?", pkg)
	}
	slices.Sort(out)
	return out, nil
}
