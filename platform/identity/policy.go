package identity

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
)

// CheckPolicies returns an error naming every RPC of an echopilot.* package in
// files whose (echopilot.auth.v1.policy) option is missing or unusable. Every
// service's tests call it with protoregistry.GlobalFiles after importing their
// generated packages; finding no such RPC at all is an error too, so the
// check cannot pass by accident.
func CheckPolicies(files *protoregistry.Files) error {
	var problems []string
	rpcs := 0
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), "echopilot.") {
			return true
		}
		for i := range fd.Services().Len() {
			methods := fd.Services().Get(i).Methods()
			for j := range methods.Len() {
				m := methods.Get(j)
				rpcs++
				if p := policyProblem(policyOf(m)); p != "" {
					problems = append(problems, fmt.Sprintf("%s: %s", m.FullName(), p))
				}
			}
		}
		return true
	})
	if rpcs == 0 {
		return errors.New("check policies: no RPC of an echopilot.* package is registered")
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("check policies: %d RPCs lack a usable (echopilot.auth.v1.policy) option:\n\t%s",
			len(problems), strings.Join(problems, "\n\t"))
	}
	return nil
}

// policyProblem says what is wrong with p, "" when nothing is.
func policyProblem(p *authv1.Policy) string {
	switch {
	case p == nil:
		return "no policy option"
	case p.GetPublic() && (len(p.GetAllowedTenants()) > 0 || len(p.GetRequiredRoles()) > 0 || len(p.GetAllowedServices()) > 0):
		return "public, so its allowed_tenants, required_roles and allowed_services would be ignored"
	case !declared(p):
		return "access is ACCESS_UNSPECIFIED and the method is not public"
	}
	for _, t := range p.GetAllowedTenants() {
		if !ValidTenant(t) {
			return fmt.Sprintf("allowed tenant %q is not a valid tenant id", t)
		}
	}
	if slices.Contains(p.GetRequiredRoles(), RoleService) && len(p.GetAllowedServices()) == 0 {
		return "requires role \"service\" but lists no allowed_services"
	}
	for _, s := range p.GetAllowedServices() {
		if !ValidTenant(s) { // the same alphabet: lower-case, digits, '-', '_'
			return fmt.Sprintf("allowed service %q is not a valid service name", s)
		}
	}
	return ""
}

// policyOf returns m's declared policy, nil when it has none.
func policyOf(m protoreflect.MethodDescriptor) *authv1.Policy {
	opts, ok := m.Options().(*descriptorpb.MethodOptions)
	if !ok || !proto.HasExtension(opts, authv1.E_Policy) {
		return nil
	}
	p, _ := proto.GetExtension(opts, authv1.E_Policy).(*authv1.Policy)
	return p
}

// findMethod resolves a full gRPC method name ("/pkg.Service/Method"), nil
// when files does not know it.
func findMethod(files *protoregistry.Files, fullMethod string) protoreflect.MethodDescriptor {
	service, method, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return nil
	}
	d, err := files.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return nil
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil
	}
	return sd.Methods().ByName(protoreflect.Name(method))
}
