package deploy

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/echopilot/echopilot/deploy/internal/check"
)

// tlsBrokenCases break components/service-tls and components/edge-workers
// in the production render, one thing at a time.
func tlsBrokenCases() []brokenCase {
	return []brokenCase{
		// Certificates (cert-manager objects, decoded into local types).
		{name: "prod: misspelt Certificate field", overlay: "prod", docs: func(docs [][]byte) [][]byte {
			return editDoc(docs, "Certificate", "queue", func(m map[string]any) {
				m["spec"].(map[string]any)["renewbefore"] = "48h"
			})
		}, want: `unknown field "spec.renewbefore"`},
		{name: "prod: self-signed Issuer", overlay: "prod", docs: func(docs [][]byte) [][]byte {
			return editDoc(docs, "Issuer", "echopilot-ca", func(m map[string]any) {
				m["spec"] = map[string]any{"selfSigned": map[string]any{}}
			})
		}, want: `unknown field "spec.selfSigned"`},
		{name: "prod: ClusterIssuer", overlay: "prod", docs: func(docs [][]byte) [][]byte {
			return append(docs, []byte("apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: any\nspec: {}\n"))
		}, want: "kind ClusterIssuer.cert-manager.io is not one this repository deploys"},
		{name: "prod: deployable without a Certificate", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			o.Certificates = without(t, o.Certificates, "growth")
		}, want: "Deployment/growth: no Certificate names spiffe://echopilot/service/growth"},
		{name: "prod: Certificate naming another deployable", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.Certificates, "finops").Spec.URIs = []string{"spiffe://echopilot/service/audit"}
		}, want: "Certificate/finops: its URI SAN names audit, but its Secret finops-tls is mounted by finops"},
		{name: "prod: edge Gateway's certificate naming a service", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.Certificates, "edge-gateway").Spec.URIs = []string{"spiffe://echopilot/service/queue"}
		}, want: "Deployment/queue: 2 Certificates name spiffe://echopilot/service/queue"},
		{name: "prod: Certificate from an Issuer not in the render", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.Certificates, "audit").Spec.IssuerRef.Name = "letsencrypt"
		}, want: "Certificate/audit: issuerRef names Issuer letsencrypt, which is not in the render"},
		{name: "prod: private key kept on renewal", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.Certificates, "tenancy").Spec.PrivateKey.RotationPolicy = "Never"
		}, want: "Certificate/tenancy: privateKey.rotationPolicy must be Always"},
		{name: "prod: renewBefore not shorter than duration", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.Certificates, "tenancy").Spec.RenewBefore = "200h"
		}, want: "Certificate/tenancy: renewBefore 200h0m0s must be shorter than duration 168h0m0s"},
		{name: "prod: server certificate without server auth", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			c := named(t, o.Certificates, "audit")
			c.Spec.Usages = slices.DeleteFunc(c.Spec.Usages, func(u string) bool { return u == "server auth" })
		}, want: "Deployment/audit: Certificate audit: usages lack server auth"},
		{name: "prod: certificate without the headless Service's name", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			c := named(t, o.Certificates, "tenancy")
			c.Spec.DNSNames = slices.DeleteFunc(c.Spec.DNSNames, func(n string) bool { return n == "tenancy-headless" })
		}, want: `Deployment/tenancy: Certificate tenancy: dnsNames lack "tenancy-headless"`},

		// Mounts and settings.
		{name: "prod: certificate Secret not mounted", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			secretVolumeOf(t, o, "growth", "growth-tls").Secret.SecretName = "growth-certs"
		}, want: "Deployment/growth: Secret growth-tls of Certificate growth is not mounted into container growth"},
		{name: "prod: certificate mounted writable", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			mountOf(t, o, "queue", "tls").ReadOnly = false
		}, want: "Deployment/queue: the TLS volume tls must be mounted read-only"},
		{name: "prod: certificate through subPath", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			mountOf(t, o, "gateway", "tls").SubPath = "tls.crt"
		}, want: "Deployment/gateway: the TLS volume tls is mounted with subPath"},
		{name: "prod: certificate file outside the mount", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			setEnv(mainOf(t, o, "queue"), "ECHOPILOT_TLS_CERT_FILE", "/etc/tls/tls.crt")
		}, want: "Deployment/queue: ECHOPILOT_TLS_CERT_FILE=/etc/tls/tls.crt: want /etc/echopilot/tls/tls.crt"},
		{name: "prod: key file naming the certificate", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			setEnv(mainOf(t, o, "finops"), "ECHOPILOT_TLS_KEY_FILE", "/etc/echopilot/tls/tls.crt")
		}, want: "Deployment/finops: ECHOPILOT_TLS_KEY_FILE=/etc/echopilot/tls/tls.crt: want /etc/echopilot/tls/tls.key"},
		{name: "prod: no CA file", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			m := mainOf(t, o, "gateway")
			m.Env = slices.DeleteFunc(m.Env, func(e corev1.EnvVar) bool { return e.Name == "ECHOPILOT_TLS_CA_FILE" })
		}, want: "Deployment/gateway: ECHOPILOT_TLS_CA_FILE is not set"},
		{name: "prod: client certificates not required", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			setEnv(mainOf(t, o, "growth"), "ECHOPILOT_TLS_CLIENT_AUTH", "none")
		}, want: "Deployment/growth: ECHOPILOT_TLS_CLIENT_AUTH must be require"},
		{name: "prod: no service TLS at all", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			o.Certificates = nil
			for _, d := range o.Deployments {
				m := &d.Spec.Template.Spec.Containers[0]
				m.Env = slices.DeleteFunc(m.Env, func(e corev1.EnvVar) bool { return e.Name == "ECHOPILOT_TLS_CERT_FILE" })
			}
		}, want: "overlay: production: no service TLS"},
		{name: "prod: native gRPC probe against the TLS port", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			s := "echopilot.queue.v1.QueueService"
			mainOf(t, o, "queue").ReadinessProbe.ProbeHandler = corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9104, Service: &s}}
		}, want: "Deployment/queue: container queue: readinessProbe is a native gRPC probe against its TLS port"},
		{name: "prod: cleartext appProtocol on a TLS port", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			h2c := "kubernetes.io/h2c"
			named(t, o.Services, "queue").Spec.Ports[0].AppProtocol = &h2c
		}, want: "Deployment/queue: Service queue port 9104 has appProtocol kubernetes.io/h2c"},

		// The edge: worker RPCs only, over TLS, to the queue's gRPC port.
		{name: "prod: edge route exposes a tenant RPC", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			m := "EnqueueJob"
			edgeRoute(t, o).Spec.Rules[0].Matches[1].Method.Method = &m
		}, want: "GRPCRoute/edge-workers: exposes echopilot.queue.v1.QueueService/EnqueueJob, which is not a worker method"},
		{name: "prod: edge route match without a method", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			edgeRoute(t, o).Spec.Rules[0].Matches[0].Method.Method = nil
		}, want: "GRPCRoute/edge-workers: rule 0: a match without a service and method matches every method"},
		{name: "prod: edge route without matches", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			edgeRoute(t, o).Spec.Rules[0].Matches = nil
		}, want: "GRPCRoute/edge-workers: rule 0 has no matches"},
		{name: "prod: edge route by regular expression", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			re := gatewayv1.GRPCMethodMatchRegularExpression
			edgeRoute(t, o).Spec.Rules[0].Matches[0].Method.Type = &re
		}, want: "method match type RegularExpression: must be Exact"},
		{name: "prod: edge route to another service", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			b := &edgeRoute(t, o).Spec.Rules[0].BackendRefs[0]
			b.Name, b.Port = "tenancy", ptr(gatewayv1.PortNumber(9101))
		}, want: "GRPCRoute/edge-workers: backendRef Service tenancy does not select the pods of queue"},
		{name: "prod: edge route to the metrics port", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			edgeRoute(t, o).Spec.Rules[0].BackendRefs[0].Port = ptr(gatewayv1.PortNumber(9204))
		}, want: "GRPCRoute/edge-workers: backendRef queue:9204 is not the port of Service queue to queue's grpc port 9104"},
		{name: "prod: edge listener in cleartext", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			l := &named(t, o.Gateways, "edge-workers").Spec.Listeners[0]
			l.Protocol, l.TLS = gatewayv1.HTTPProtocolType, nil
		}, want: "GRPCRoute/edge-workers: Gateway edge-workers listener workers is HTTP without a terminated TLS certificate"},
		{name: "prod: edge Gateway without a client certificate", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.Gateways, "edge-workers").Spec.TLS = nil
		}, want: "GRPCRoute/edge-workers: Gateway edge-workers presents no client certificate"},
		{name: "prod: edge Gateway dials the queue in cleartext", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			o.BackendTLSPolicies = without(t, o.BackendTLSPolicies, "edge-workers-queue")
		}, want: "GRPCRoute/edge-workers: no BackendTLSPolicy targets Service queue"},
		{name: "prod: edge Gateway verifies a name the queue does not have", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.BackendTLSPolicies, "edge-workers-queue").Spec.Validation.Hostname = "queue.example.com"
		}, want: "BackendTLSPolicy edge-workers-queue verifies hostname queue.example.com, which queue's certificate does not name"},
		{name: "prod: edge Gateway blocked from the queue", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			o.NetworkPolicies = without(t, o.NetworkPolicies, "edge-workers")
		}, want: "blocks the edge Gateway (namespace gateway-system) → queue:9104 (grpc), which it needs"},
		{name: "prod: edge Gateway let in on every port", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.NetworkPolicies, "edge-workers").Spec.Ingress[0].Ports = nil
		}, want: "lets the edge Gateway (namespace gateway-system) reach queue:9204 (metrics)"},
		{name: "dev: edge Gateway let in without a route", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.NetworkPolicies, "finops").Spec.Ingress[0].From = append(named(t, o.NetworkPolicies, "finops").Spec.Ingress[0].From,
				nsPeer("gateway-system"))
		}, want: "lets the edge Gateway (namespace gateway-system) reach finops:9102 (grpc)"},
	}
}

func edgeRoute(t *testing.T, o *check.Objects) *gatewayv1.GRPCRoute {
	return named(t, o.GRPCRoutes, "edge-workers")
}

func ptr[T any](v T) *T { return &v }

func setEnv(c *corev1.Container, name, value string) {
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i].Value = value
			return
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}

func mountOf(t *testing.T, o *check.Objects, deployment, volume string) *corev1.VolumeMount {
	t.Helper()
	m := mainOf(t, o, deployment)
	for i := range m.VolumeMounts {
		if m.VolumeMounts[i].Name == volume {
			return &m.VolumeMounts[i]
		}
	}
	t.Fatalf("container %s has no mount %s", deployment, volume)
	return nil
}

func secretVolumeOf(t *testing.T, o *check.Objects, deployment, secret string) *corev1.Volume {
	t.Helper()
	vols := deploymentOf(t, o, deployment).Spec.Template.Spec.Volumes
	for i := range vols {
		if vols[i].Secret != nil && vols[i].Secret.SecretName == secret {
			return &vols[i]
		}
	}
	t.Fatalf("Deployment %s mounts no Secret %s", deployment, secret)
	return nil
}

func nsPeer(ns string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}}
}
