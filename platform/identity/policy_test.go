package identity

import (
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
	// Every generated service package must be imported here so that its
	// RPCs are registered and checked; TestGeneratedPackagesImported fails
	// when one is missing.
	_ "github.com/echopilot/echopilot/gen/go/echopilot/audit/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/finops/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/growth/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/queue/v1"
	_ "github.com/echopilot/echopilot/gen/go/echopilot/tenancy/v1"
)

func TestGeneratedRPCsHavePolicies(t *testing.T) {
	if err := CheckPolicies(protoregistry.GlobalFiles); err != nil {
		t.Fatal(err)
	}
}

// TestGeneratedPackagesImported keeps TestGeneratedRPCsHavePolicies honest
// as services are added to gen/.
func TestGeneratedPackagesImported(t *testing.T) {
	files, err := filepath.Glob("../../gen/go/echopilot/*/*/*_grpc.pb.go") // packages with services
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no generated code found under ../../gen/go/echopilot")
	}
	for _, f := range files {
		rel, _ := filepath.Rel("../../gen/go", filepath.Dir(f))
		pkg := protoreflect.FullName(strings.ReplaceAll(filepath.ToSlash(rel), "/", "."))
		if protoregistry.GlobalFiles.NumFilesByPackage(pkg) == 0 {
			t.Errorf("package %s is generated but not imported by policy_test.go", pkg)
		}
	}
}

func TestCheckPoliciesFindsProblems(t *testing.T) {
	read := &authv1.Policy{Access: authv1.Access_ACCESS_READ}
	cases := []struct {
		name   string
		bare   *authv1.Policy // nil: no option at all
		reason string
	}{
		{"missing", nil, "no policy option"},
		{"unspecified access", &authv1.Policy{AllowedTenants: []string{"acme"}}, "ACCESS_UNSPECIFIED"},
		{"public with roles", &authv1.Policy{Public: true, RequiredRoles: []string{RoleAdmin}}, "would be ignored"},
		{"invalid allowed tenant", &authv1.Policy{Access: authv1.Access_ACCESS_WRITE, AllowedTenants: []string{"Default"}}, `"Default"`},
		{"public with services", &authv1.Policy{Public: true, AllowedServices: []string{"queue"}}, "would be ignored"},
		{"service role without services", &authv1.Policy{Access: authv1.Access_ACCESS_WRITE, RequiredRoles: []string{RoleService}}, "lists no allowed_services"},
		{"invalid service name", &authv1.Policy{Access: authv1.Access_ACCESS_WRITE, AllowedServices: []string{"Queue Svc"}}, `"Queue Svc"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			policies := map[string]*authv1.Policy{"Watch": read}
			if tc.bare != nil {
				policies["Bare"] = tc.bare
			}
			err := CheckPolicies(registry(t, probeFile(t, policies)))
			if err == nil {
				t.Fatal("CheckPolicies accepted a bad policy")
			}
			msg := err.Error()
			if !strings.Contains(msg, probeService+".Bare: ") || !strings.Contains(msg, tc.reason) {
				t.Errorf("error %q does not name Bare and %q", msg, tc.reason)
			}
			if strings.Contains(msg, "Watch") {
				t.Errorf("error %q names Watch, whose policy is fine", msg)
			}
		})
	}
}

func TestCheckPoliciesAcceptsGoodPolicies(t *testing.T) {
	files := registry(t, probeFile(t, map[string]*authv1.Policy{
		"Bare":  {Public: true},
		"Watch": {Access: authv1.Access_ACCESS_WRITE, AllowedTenants: []string{DefaultTenant}, RequiredRoles: []string{RoleAdmin}},
	}))
	if err := CheckPolicies(files); err != nil {
		t.Fatal(err)
	}
}

func TestCheckPoliciesNeedsRPCs(t *testing.T) {
	if err := CheckPolicies(new(protoregistry.Files)); err == nil {
		t.Fatal("CheckPolicies passed an empty registry")
	}
}
