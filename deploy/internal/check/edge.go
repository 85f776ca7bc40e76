package check

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
)

// edgeRole is the role of the only callers a GRPCRoute may let in from
// outside: edge workers. Tenant and admin RPCs go through the REST
// gateway, with its rate limits and its audit of every call.
const edgeRole = "worker"

// edge stands for the Gateway API implementation's data plane, in the namespace
// gateway-system that components/edge-workers' NetworkPolicy admits; it
// joins the network rules beside Prometheus and the outside world.
var edge = endpoint{name: "the edge Gateway (namespace gateway-system)", namespace: "gateway-system",
	nsLabels: map[string]string{"kubernetes.io/metadata.name": "gateway-system"}}

// edgeMethods are the methods whose policy requires role worker, by
// gRPC service, read from the compiled descriptors.
func edgeMethods() map[string][]string {
	out := map[string][]string{}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				pol, _ := proto.GetExtension(md.Options(), authv1.E_Policy).(*authv1.Policy)
				if slices.Contains(pol.GetRequiredRoles(), edgeRole) {
					out[string(sd.FullName())] = append(out[string(sd.FullName())], string(md.Name()))
				}
			}
		}
		return true
	})
	return out
}

// edgeRoutes: a GRPCRoute lets the Internet in, so it matches exactly
// named worker methods, on an HTTPS listener, to the Service of the
// deployable that serves them on its gRPC port; and where that port
// requires client certificates, the Gateway presents one of the suite's and
// verifies the backend against the suite's CA.
func (c *checker) edgeRoutes() {
	allowed := edgeMethods()
	for _, r := range c.objs.GRPCRoutes {
		obj := "GRPCRoute/" + r.Name
		gws := c.routeParents(obj, r)
		backends := map[string]bool{} // deployables the matched methods belong to
		for ri, rule := range r.Spec.Rules {
			if len(rule.Matches) == 0 {
				c.fail(obj, "rule %d has no matches: it routes every method of every service", ri)
			}
			for _, m := range rule.Matches {
				mm := m.Method
				if mm == nil || mm.Service == nil || mm.Method == nil {
					c.fail(obj, "rule %d: a match without a service and method matches every method", ri)
					continue
				}
				if mm.Type != nil && *mm.Type != gatewayv1.GRPCMethodMatchExact {
					c.fail(obj, "rule %d: method match type %s: must be Exact, the methods are listed one by one", ri, *mm.Type)
					continue
				}
				if !slices.Contains(allowed[*mm.Service], *mm.Method) {
					c.fail(obj, "exposes %s/%s, which is not a worker method (no required role %s): only %s may leave the cluster",
						*mm.Service, *mm.Method, edgeRole, describeMethods(allowed))
				}
				if dep := c.servingDeployable(*mm.Service); dep != "" {
					backends[dep] = true
				}
			}
			for _, b := range rule.BackendRefs {
				c.routeBackend(obj, b.BackendObjectReference, r.Namespace, backends, gws)
			}
		}
	}
}

func describeMethods(m map[string][]string) string {
	var out []string
	for _, svc := range sortedKeys(m) {
		for _, meth := range m[svc] {
			out = append(out, svc+"/"+meth)
		}
	}
	return strings.Join(out, ", ")
}

// servingDeployable is the deployable whose proto package declares svc.
func (c *checker) servingDeployable(svc string) string {
	for _, n := range c.repo.Names() {
		if slices.Contains(c.repo.Deployables[n].GRPCServices, svc) {
			return n
		}
	}
	return ""
}

// routeParents: every parent is a Gateway in the render whose listener
// terminates TLS: worker tokens must not cross the Internet in clear.
func (c *checker) routeParents(obj string, r *gatewayv1.GRPCRoute) []*gatewayv1.Gateway {
	var out []*gatewayv1.Gateway
	for _, ref := range r.Spec.ParentRefs {
		ns := r.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		var gw *gatewayv1.Gateway
		for _, g := range c.objs.Gateways {
			if g.Namespace == ns && g.Name == string(ref.Name) {
				gw = g
			}
		}
		if (ref.Kind != nil && *ref.Kind != "Gateway") || gw == nil {
			c.fail(obj, "parentRef %s/%s is not a Gateway in the render", ns, ref.Name)
			continue
		}
		out = append(out, gw)
		for _, l := range gw.Spec.Listeners {
			if ref.SectionName != nil && l.Name != *ref.SectionName {
				continue
			}
			if l.Protocol != gatewayv1.HTTPSProtocolType || l.TLS == nil ||
				(l.TLS.Mode != nil && *l.TLS.Mode != gatewayv1.TLSModeTerminate) || len(l.TLS.CertificateRefs) == 0 {
				c.fail(obj, "Gateway %s listener %s is %s without a terminated TLS certificate: worker tokens would cross the Internet in clear", gw.Name, l.Name, l.Protocol)
			}
		}
	}
	return out
}

// routeBackend: the backend is the Service of the deployable serving the
// matched methods, on the port that leads to its gRPC port.
func (c *checker) routeBackend(obj string, b gatewayv1.BackendObjectReference, ns string, deps map[string]bool, gws []*gatewayv1.Gateway) {
	if (b.Group != nil && *b.Group != "") || (b.Kind != nil && *b.Kind != "Service") {
		c.fail(obj, "backendRef %s is not a Service", b.Name)
		return
	}
	var svc *corev1.Service
	for _, s := range c.objs.Services {
		if s.Namespace == ns && s.Name == string(b.Name) {
			svc = s
		}
	}
	if svc == nil {
		c.fail(obj, "backendRef Service %s is not in the render", b.Name)
		return
	}
	for _, dep := range sortedKeys(deps) {
		var d = c.deploymentNamed(dep)
		if d == nil || len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			c.fail(obj, "backendRef Service %s does not select the pods of %s, which serves the methods it matches", svc.Name, dep)
			continue
		}
		main, port := mainContainer(d), int32(0)
		if b.Port != nil {
			port = int32(*b.Port)
		}
		ok := false
		for _, sp := range svc.Spec.Ports {
			ok = ok || (sp.Port == port && targetPortName(sp, main) == "grpc")
		}
		if !ok {
			c.fail(obj, "backendRef %s:%d is not the port of Service %s to %s's grpc port %d", svc.Name, port, svc.Name, dep, ports(main)["grpc"])
		}
		if p := c.pods[dep]; p != nil && servesTLS(p.env) {
			c.backendTLS(obj, svc, dep, gws)
		}
	}
}

// backendTLS: a TLS backend that requires client certificates needs the
// Gateway to present one from a Certificate in the render, and a
// BackendTLSPolicy that verifies the backend against a CA for a name its
// certificate holds.
func (c *checker) backendTLS(obj string, svc *corev1.Service, dep string, gws []*gatewayv1.Gateway) {
	for _, gw := range gws {
		var ref *gatewayv1.SecretObjectReference
		if gw.Spec.TLS != nil && gw.Spec.TLS.Backend != nil {
			ref = gw.Spec.TLS.Backend.ClientCertificateRef
		}
		if ref == nil || !slices.ContainsFunc(c.objs.Certificates, func(ct *Certificate) bool {
			return ct.Namespace == gw.Namespace && ct.Spec.SecretName == string(ref.Name)
		}) {
			c.fail(obj, "Gateway %s presents no client certificate from a Certificate in the render (spec.tls.backend.clientCertificateRef): %s requires one", gw.Name, dep)
		}
	}
	var names []string
	for _, ct := range c.objs.Certificates {
		if slices.Contains(ct.Spec.URIs, serviceURIPrefix+dep) {
			names = ct.Spec.DNSNames
		}
	}
	for _, p := range c.objs.BackendTLSPolicies {
		if p.Namespace != svc.Namespace || !slices.ContainsFunc(p.Spec.TargetRefs, func(t gatewayv1.LocalPolicyTargetReferenceWithSectionName) bool {
			return t.Kind == "Service" && string(t.Name) == svc.Name
		}) {
			continue
		}
		if len(p.Spec.Validation.CACertificateRefs) == 0 {
			c.fail(obj, "BackendTLSPolicy %s verifies %s against no CA of ours", p.Name, svc.Name)
		}
		if !slices.Contains(names, string(p.Spec.Validation.Hostname)) {
			c.fail(obj, "BackendTLSPolicy %s verifies hostname %s, which %s's certificate does not name", p.Name, p.Spec.Validation.Hostname, dep)
		}
		return
	}
	c.fail(obj, "no BackendTLSPolicy targets Service %s: the Gateway would dial %s's TLS port in cleartext", svc.Name, dep)
}

func (c *checker) deploymentNamed(name string) *appsv1.Deployment {
	for _, d := range c.objs.Deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// edgeRouted reports whether a GRPCRoute forwards to dst's pods: then the
// edge Gateway must reach its gRPC port, and otherwise must not.
func (c *checker) edgeRouted(dst string) bool {
	for _, r := range c.objs.GRPCRoutes {
		for _, rule := range r.Spec.Rules {
			for _, b := range rule.BackendRefs {
				for _, s := range c.objs.Services {
					d := c.deploymentNamed(dst)
					if s.Namespace == r.Namespace && s.Name == string(b.Name) && d != nil && len(s.Spec.Selector) > 0 &&
						labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
						return true
					}
				}
			}
		}
	}
	return false
}
