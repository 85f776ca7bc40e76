package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/echopilot/echopilot/deploy/internal/check"
)

// brokenCase breaks one thing in a good render; the checks must reject it
// with a message that contains want.
type brokenCase struct {
	name    string
	overlay string                               // "dev" unless set
	docs    func([][]byte) [][]byte              // edits the YAML (what strict decoding sees)
	objs    func(t *testing.T, o *check.Objects) // edits the decoded objects
	want    string
}

func TestRejectsBrokenManifests(t *testing.T) {
	repo := loadRepo(t)
	fsys := filesys.MakeFsOnDisk()
	good := map[string][][]byte{}
	for name, pol := range policies {
		good[name] = renderDocs(t, fsys, "overlays/"+name)
		// Each case below must fail because of its break alone.
		if vs := check.Overlay(decode(t, good[name]), repo, pol); len(vs) > 0 {
			t.Fatalf("overlays/%s is not clean to start with: %v", name, vs)
		}
	}

	for _, tc := range slices.Concat(brokenCases(), tlsBrokenCases(), monitoringBrokenCases()) {
		t.Run(tc.name, func(t *testing.T) {
			overlay := tc.overlay
			if overlay == "" {
				overlay = "dev"
			}
			docs := slices.Clone(good[overlay])
			if tc.docs != nil {
				docs = tc.docs(docs)
			}
			var got []string
			objs, err := check.Decode(docs)
			if err != nil {
				got = append(got, err.Error())
			} else {
				if tc.objs != nil {
					tc.objs(t, objs)
				}
				for _, v := range check.Overlay(objs, repo, policies[overlay]) {
					got = append(got, v.String())
				}
			}
			if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, tc.want) }) {
				t.Errorf("not rejected with %q; got %d messages:\n%s", tc.want, len(got), strings.Join(got, "\n"))
			}
		})
	}
}

func brokenCases() []brokenCase {
	return []brokenCase{
		// Probes.
		{name: "missing readiness probe", objs: func(t *testing.T, o *check.Objects) {
			mainOf(t, o, "tenancy").ReadinessProbe = nil
		}, want: "Deployment/tenancy: container tenancy has no readinessProbe"},
		{name: "probe on a named port", objs: func(t *testing.T, o *check.Objects) {
			mainOf(t, o, "gateway").ReadinessProbe.HTTPGet.Port = intstr.FromString("http")
		}, want: `readinessProbe on named port "http"`},
		{name: "gRPC probe without service", objs: func(t *testing.T, o *check.Objects) {
			mainOf(t, o, "tenancy").LivenessProbe.GRPC.Service = nil
		}, want: `livenessProbe must set grpc.service to echopilot.tenancy.v1.TenancyService`},
		{name: "gRPC probe naming another service", objs: func(t *testing.T, o *check.Objects) {
			s := "echopilot.audit.v1.AuditService"
			mainOf(t, o, "tenancy").StartupProbe.GRPC.Service = &s
		}, want: `startupProbe must set grpc.service to echopilot.tenancy.v1.TenancyService`},
		{name: "gRPC probe on another port", objs: func(t *testing.T, o *check.Objects) {
			mainOf(t, o, "queue").ReadinessProbe.GRPC.Port = 9204
		}, want: "readinessProbe asks port 9204, not the grpc port 9104"},
		{name: "TCP probe instead of gRPC", objs: func(t *testing.T, o *check.Objects) {
			mainOf(t, o, "finops").StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
				TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9102)}}}
		}, want: "startupProbe must be a native gRPC probe"},

		// Shutdown.
		{name: "grace period not longer than preStop + drain + stop", objs: func(t *testing.T, o *check.Objects) {
			grace := int64(30)
			deploymentOf(t, o, "audit").Spec.Template.Spec.TerminationGracePeriodSeconds = &grace
		}, want: "terminationGracePeriodSeconds 30s must exceed preStop 5s + drain 5s + shutdown timeout 20s = 30s"},
		{name: "no preStop sleep", objs: func(t *testing.T, o *check.Objects) {
			mainOf(t, o, "audit").Lifecycle = nil
		}, want: "container audit: no preStop sleep"},

		// Resources.
		{name: "no limits", objs: func(t *testing.T, o *check.Objects) {
			mainOf(t, o, "finops").Resources.Limits = nil
		}, want: "container finops: no resources.limits.memory"},
		{name: "no limits on the migration", objs: func(t *testing.T, o *check.Objects) {
			deploymentOf(t, o, "finops").Spec.Template.Spec.InitContainers[0].Resources.Limits = nil
		}, want: "container migrate: no resources.limits.cpu"},

		// Security context.
		{name: "runAsNonRoot false", objs: func(t *testing.T, o *check.Objects) {
			f := false
			deploymentOf(t, o, "queue").Spec.Template.Spec.SecurityContext.RunAsNonRoot = &f
		}, want: "container queue: runAsNonRoot must be true"},
		{name: "writable root filesystem", objs: func(t *testing.T, o *check.Objects) {
			f := false
			mainOf(t, o, "queue").SecurityContext.ReadOnlyRootFilesystem = &f
		}, want: "container queue: readOnlyRootFilesystem must be true"},
		{name: "capabilities not dropped", objs: func(t *testing.T, o *check.Objects) {
			mainOf(t, o, "growth").SecurityContext.Capabilities.Drop = nil
		}, want: "container growth: capabilities must drop ALL"},
		{name: "capability added", objs: func(t *testing.T, o *check.Objects) {
			mainOf(t, o, "growth").SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		}, want: "container growth: capabilities must add none"},
		{name: "missing seccomp profile", objs: func(t *testing.T, o *check.Objects) {
			deploymentOf(t, o, "gateway").Spec.Template.Spec.SecurityContext.SeccompProfile = nil
		}, want: "container gateway: seccompProfile must be RuntimeDefault"},
		{name: "service-account token mounted", objs: func(t *testing.T, o *check.Objects) {
			yes := true
			deploymentOf(t, o, "tenancy").Spec.Template.Spec.AutomountServiceAccountToken = &yes
		}, want: "Deployment/tenancy: automountServiceAccountToken must be false"},
		{name: "service-account token left to the default", objs: func(t *testing.T, o *check.Objects) {
			deploymentOf(t, o, "tenancy").Spec.Template.Spec.AutomountServiceAccountToken = nil
		}, want: "Deployment/tenancy: automountServiceAccountToken must be false"},
		// Our rules say nothing of privileged: the upstream evaluator must catch it.
		{name: "privileged container", objs: func(t *testing.T, o *check.Objects) {
			yes := true
			mainOf(t, o, "audit").SecurityContext.Privileged = &yes
		}, want: `Deployment/audit: pod security restricted: privileged (container "audit" must not set securityContext.privileged=true)`},
		{name: "host network", objs: func(t *testing.T, o *check.Objects) {
			deploymentOf(t, o, "audit").Spec.Template.Spec.HostNetwork = true
		}, want: "pod security restricted: host namespaces"},

		// Companions.
		{name: "no PodDisruptionBudget", objs: func(t *testing.T, o *check.Objects) {
			o.PDBs = without(t, o.PDBs, "audit")
		}, want: "Deployment/audit: no PodDisruptionBudget selects its pods"},
		{name: "no HorizontalPodAutoscaler", objs: func(t *testing.T, o *check.Objects) {
			o.HPAs = without(t, o.HPAs, "growth")
		}, want: "Deployment/growth: no HorizontalPodAutoscaler scales it"},
		{name: "replicas next to the HPA", objs: func(t *testing.T, o *check.Objects) {
			n := int32(3)
			deploymentOf(t, o, "growth").Spec.Replicas = &n
		}, want: "Deployment/growth: spec.replicas is set"},
		{name: "no headless Service", objs: func(t *testing.T, o *check.Objects) {
			o.Services = without(t, o.Services, "tenancy-headless")
		}, want: "Deployment/tenancy: no headless Service tenancy-headless"},
		{name: "headless twin with a cluster IP", objs: func(t *testing.T, o *check.Objects) {
			for _, s := range o.Services {
				if s.Name == "queue-headless" {
					s.Spec.ClusterIP = ""
				}
			}
		}, want: "Service queue-headless must be headless"},
		{name: "no ClusterIP Service", objs: func(t *testing.T, o *check.Objects) {
			o.Services = without(t, o.Services, "finops")
		}, want: "Deployment/finops: no ClusterIP Service finops"},

		// Images.
		{name: ":latest tag", objs: func(t *testing.T, o *check.Objects) {
			mainOf(t, o, "queue").Image = "echopilot/queue:latest"
		}, want: "image echopilot/queue:latest uses the :latest tag"},
		{name: "no tag", objs: func(t *testing.T, o *check.Objects) {
			deploymentOf(t, o, "queue").Spec.Template.Spec.InitContainers[0].Image = "echopilot/queue"
		}, want: "container migrate: image echopilot/queue has no tag or digest"},

		// Strict decoding.
		{name: "unknown field", docs: func(docs [][]byte) [][]byte {
			return editDoc(docs, "Deployment", "tenancy", func(m map[string]any) {
				m["spec"].(map[string]any)["replicaz"] = 2
			})
		}, want: `unknown field "spec.replicaz"`},
		{name: "misspelt nested field", docs: func(docs [][]byte) [][]byte {
			return editDoc(docs, "Deployment", "audit", func(m map[string]any) {
				pod := m["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
				pod["automountServiceAcountToken"] = false
			})
		}, want: `unknown field "spec.template.spec.automountServiceAcountToken"`},
		{name: "a kind the checks do not know", docs: func(docs [][]byte) [][]byte {
			return append(docs, []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: stray\nspec:\n  containers: []\n"))
		}, want: "*v1.Pod is not one this repository deploys"},

		// Migrations and configuration.
		{name: "no migration init container", objs: func(t *testing.T, o *check.Objects) {
			deploymentOf(t, o, "queue").Spec.Template.Spec.InitContainers = nil
		}, want: "Deployment/queue: no migration init container"},
		{name: "owner URL in the service container", objs: func(t *testing.T, o *check.Objects) {
			m := mainOf(t, o, "queue")
			m.Env = append(m.Env, deploymentOf(t, o, "queue").Spec.Template.Spec.InitContainers[0].Env...)
		}, want: "container queue holds ECHOPILOT_MIGRATE_DATABASE_URL"},
		{name: "secret as a literal", objs: func(t *testing.T, o *check.Objects) {
			m := mainOf(t, o, "finops")
			m.Env = append(m.Env, corev1.EnvVar{Name: "ECHOPILOT_STRIPE_WEBHOOK_SECRET", Value: "whsec_oops"})
		}, want: "container finops: ECHOPILOT_STRIPE_WEBHOOK_SECRET comes from a literal: secrets come from Secrets"},
		{name: "misspelt variable", objs: func(t *testing.T, o *check.Objects) {
			configMapOf(t, o, "tenancy-config").Data["ECHOPILOT_AUDIT_ADRR"] = "dns:///audit-headless:9103"
		}, want: "container tenancy: sets ECHOPILOT_AUDIT_ADRR, which tenancy's code never reads"},
		{name: "peer dialled through its ClusterIP Service", objs: func(t *testing.T, o *check.Objects) {
			configMapOf(t, o, "queue-config").Data["ECHOPILOT_FINOPS_ADDR"] = "finops:9102"
		}, want: `ECHOPILOT_FINOPS_ADDR="finops:9102": want "dns:///finops-headless:9102"`},
		{name: "gateway backend left at its local default", objs: func(t *testing.T, o *check.Objects) {
			delete(configMapOf(t, o, "gateway-config").Data, "ECHOPILOT_QUEUE_ADDR")
		}, want: "the gateway dials queue, but ECHOPILOT_QUEUE_ADDR is not set"},
		{name: "missing ConfigMap", objs: func(t *testing.T, o *check.Objects) {
			o.ConfigMaps = slices.DeleteFunc(o.ConfigMaps, func(c *corev1.ConfigMap) bool { return strings.HasPrefix(c.Name, "echopilot-common-") })
		}, want: "envFrom ConfigMap echopilot-common-"},
		{name: "no max connection age", objs: func(t *testing.T, o *check.Objects) {
			delete(configMapOf(t, o, "echopilot-common").Data, "ECHOPILOT_MAX_CONNECTION_AGE")
		}, want: "ECHOPILOT_MAX_CONNECTION_AGE must be set and positive"},
		{name: "SQLite with two replicas", objs: func(t *testing.T, o *check.Objects) {
			for _, h := range o.HPAs {
				if h.Name == "tenancy" {
					h.Spec.MaxReplicas = 2
				}
			}
		}, want: "Deployment/tenancy: SQLite is a file in the pod: a second replica would be a second database"},
		{name: "SQLite on the read-only root", objs: func(t *testing.T, o *check.Objects) {
			m := mainOf(t, o, "tenancy")
			m.VolumeMounts = slices.DeleteFunc(m.VolumeMounts, func(v corev1.VolumeMount) bool { return v.MountPath == "/data" })
		}, want: "container tenancy: SQLite file /data/tenancy.db is not on a writable volume mount"},
		{name: "namespace without Pod Security", objs: func(t *testing.T, o *check.Objects) {
			o.Namespaces[0].Labels = nil
		}, want: `label pod-security.kubernetes.io/enforce must be "restricted"`},

		// Inventory: the repository's deployables, no more, no fewer.
		{name: "a service without a Deployment", objs: func(t *testing.T, o *check.Objects) {
			o.Deployments = without(t, o.Deployments, "growth")
		}, want: "overlay: no Deployment for growth, which the repository builds (services/growth)"},

		// Network policies.
		{name: "no default deny", objs: func(t *testing.T, o *check.Objects) {
			o.NetworkPolicies = without(t, o.NetworkPolicies, "default-deny")
		}, want: "no default-deny NetworkPolicy"},
		{name: "a path nobody calls", objs: func(t *testing.T, o *check.Objects) {
			np := named(t, o.NetworkPolicies, "audit")
			np.Spec.Ingress[0].From = append(np.Spec.Ingress[0].From, peerPods("queue"))
			np = named(t, o.NetworkPolicies, "queue")
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{peerPods("audit")}})
		}, want: "lets queue reach audit:9103 (grpc), which it does not call"},
		{name: "a peer blocked", objs: func(t *testing.T, o *check.Objects) {
			np := named(t, o.NetworkPolicies, "queue")
			np.Spec.Egress = np.Spec.Egress[:1] // tenancy only, finops gone
		}, want: "blocks queue → finops:9102 (grpc), which it needs"},
		{name: "gateway blocked", objs: func(t *testing.T, o *check.Objects) {
			np := named(t, o.NetworkPolicies, "growth")
			np.Spec.Ingress = np.Spec.Ingress[1:] // metrics only
		}, want: "blocks gateway → growth:9105 (grpc), which it needs"},
		{name: "services open to the world", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.NetworkPolicies, "finops").Spec.Ingress[0].From = nil
		}, want: "lets outside the cluster reach finops:9102 (grpc)"},
		{name: "DNS blocked", objs: func(t *testing.T, o *check.Objects) {
			o.NetworkPolicies = without(t, o.NetworkPolicies, "allow-dns")
		}, want: "blocks tenancy → kube-dns UDP 53"},

		// Authentication: what the binaries refuse at start, and identities.
		{name: "optional auth on the network without the dev switch", objs: func(t *testing.T, o *check.Objects) {
			delete(configMapOf(t, o, "echopilot-common").Data, "ECHOPILOT_ALLOW_OPTIONAL_AUTH_ON_NETWORK")
		}, want: `Deployment/tenancy: the service refuses to start: auth mode optional on ":9101", not a loopback address`},
		{name: "gateway rate limits with no key to verify tokens", objs: func(t *testing.T, o *check.Objects) {
			m := mainOf(t, o, "gateway")
			m.EnvFrom = slices.DeleteFunc(m.EnvFrom, func(e corev1.EnvFromSource) bool { return e.SecretRef != nil })
		}, want: "Deployment/gateway: the gateway refuses to start: its rate limits tell tenants apart by verified tokens"},
		{name: "no service identity", objs: func(t *testing.T, o *check.Objects) {
			m := mainOf(t, o, "finops")
			m.EnvFrom = slices.DeleteFunc(m.EnvFrom, func(e corev1.EnvFromSource) bool {
				return e.SecretRef != nil && strings.HasPrefix(e.SecretRef.Name, "echopilot-auth-")
			})
			m.Env = append(m.Env, corev1.EnvVar{Name: "ECHOPILOT_JWT_PUBLIC_KEYS", Value: "/keys/idp.pem"})
		}, want: "Deployment/finops: no service identity (ECHOPILOT_SERVICE_TOKEN_FILE, or ECHOPILOT_JWT_HS256_SECRET to mint one)"},
		{name: "prod: required auth without an audience", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			delete(configMapOf(t, o, "echopilot-idp").Data, "ECHOPILOT_JWT_AUDIENCE")
		}, want: "Deployment/audit: the service refuses to start: auth mode required without ECHOPILOT_JWT_ISSUER and ECHOPILOT_JWT_AUDIENCE"},
		{name: "prod: gateway verifies tokens for another audience", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			m := mainOf(t, o, "gateway")
			m.Env = append(m.Env, corev1.EnvVar{Name: "ECHOPILOT_JWT_AUDIENCE", Value: "someone-else"})
		}, want: `Deployment/gateway: verifies tokens unlike tenancy: ECHOPILOT_JWT_AUDIENCE is "someone-else", tenancy's is "echopilot"`},
		{name: "prod: no identity token file", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			m := mainOf(t, o, "queue")
			m.Env = slices.DeleteFunc(m.Env, func(e corev1.EnvVar) bool { return e.Name == "ECHOPILOT_SERVICE_TOKEN_FILE" })
		}, want: "Deployment/queue: production: no ECHOPILOT_SERVICE_TOKEN_FILE"},
		{name: "prod: identity token on no mount", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			m := mainOf(t, o, "finops")
			m.VolumeMounts = slices.DeleteFunc(m.VolumeMounts, func(v corev1.VolumeMount) bool { return v.Name == "identity" })
		}, want: "Deployment/finops: production: ECHOPILOT_SERVICE_TOKEN_FILE /var/run/echopilot/identity/token is on no volume mount"},
		{name: "prod: identity token through subPath", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			identityMount(t, o, "gateway").SubPath = "token"
		}, want: "Deployment/gateway: production: the identity token is mounted with subPath"},
		{name: "prod: identity token writable", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			identityMount(t, o, "growth").ReadOnly = false
		}, want: "Deployment/growth: production: the identity token's volume identity must be mounted read-only"},
		{name: "prod: identity token from an emptyDir", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			for i, v := range deploymentOf(t, o, "tenancy").Spec.Template.Spec.Volumes {
				if v.Name == "identity" {
					deploymentOf(t, o, "tenancy").Spec.Template.Spec.Volumes[i].VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
				}
			}
		}, want: "Deployment/tenancy: production: the identity token must come from a Secret or a projected token volume"},
		{name: "prod: two deployables share an identity", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			for _, v := range deploymentOf(t, o, "growth").Spec.Template.Spec.Volumes {
				if v.Name == "identity" {
					v.Secret.SecretName = "tenancy-identity"
				}
			}
		}, want: "Deployment/growth: production: its identity comes from Secret tenancy-identity, as tenancy's does"},
		{name: "prod: HS256 secret beside the identity provider", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			m := mainOf(t, o, "audit")
			m.Env = append(m.Env, corev1.EnvVar{Name: "ECHOPILOT_JWT_HS256_SECRET", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "echopilot-auth"}, Key: "hs256"}}})
		}, want: "Deployment/audit: production: ECHOPILOT_JWT_HS256_SECRET is set: whoever holds it can mint any identity"},
		{name: "prod: gRPC reflection on", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			configMapOf(t, o, "echopilot-common").Data["ECHOPILOT_GRPC_REFLECTION"] = "true"
		}, want: "Deployment/queue: production: ECHOPILOT_GRPC_REFLECTION=true is a switch for local runs"},
		{name: "prod: unbound tokens allowed", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			configMapOf(t, o, "echopilot-common").Data["ECHOPILOT_ALLOW_UNBOUND_TOKENS"] = "true"
		}, want: "Deployment/tenancy: production: ECHOPILOT_ALLOW_UNBOUND_TOKENS=true is a switch for local runs"},

		// The gateway's admin port (/metrics) stays off the public API.
		{name: "admin port in the Service the Ingress uses", objs: func(t *testing.T, o *check.Objects) {
			s := named(t, o.Services, "gateway")
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "metrics", Port: 9280, TargetPort: intstr.FromString("metrics")})
		}, want: `Deployment/gateway: Service gateway, which the Ingress routes to, exposes port 9280 (container port "metrics")`},
		{name: "admin port on a load balancer", objs: func(t *testing.T, o *check.Objects) {
			s := named(t, o.Services, "gateway-metrics")
			s.Spec.ClusterIP, s.Spec.Type = "", corev1.ServiceTypeLoadBalancer
		}, want: `Deployment/gateway: Service gateway-metrics (LoadBalancer) exposes port 9280 (container port "metrics") outside the cluster`},
		{name: "admin port open to the world", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.NetworkPolicies, "gateway").Spec.Ingress[1].From = nil
		}, want: "lets outside the cluster reach gateway:9280 (metrics)"},
		{name: "admin port closed to Prometheus", objs: func(t *testing.T, o *check.Objects) {
			np := named(t, o.NetworkPolicies, "gateway")
			np.Spec.Ingress = np.Spec.Ingress[:1]
		}, want: "blocks Prometheus (namespace monitoring) → gateway:9280 (metrics), which it needs"},
		{name: "prod: gateway's admin port not scraped", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			o.Services = without(t, o.Services, "gateway-metrics")
		}, want: "Deployment/gateway: no ServiceMonitor endpoint scrapes its metrics port 9280"},

		// Production.
		{name: "prod: a single replica", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			one := int32(1)
			o.HPAs[0].Spec.MinReplicas = &one
		}, want: "HorizontalPodAutoscaler minReplicas 1: this overlay runs at least 2 replicas"},
		{name: "prod: database blocked", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			o.NetworkPolicies = without(t, o.NetworkPolicies, "allow-postgres")
		}, want: "blocks tenancy → its PostgreSQL database"},
		{name: "prod: JWKS blocked", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			o.NetworkPolicies = without(t, o.NetworkPolicies, "allow-https")
		}, want: "blocks audit → its JWKS URL https://auth.example.com/.well-known/jwks.json (TCP 443)"},
		{name: "prod: egress open on every port", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.NetworkPolicies, "allow-https").Spec.Egress[0].Ports = nil
		}, want: "lets growth reach outside the cluster on any port"},
		{name: "prod: HTTPS egress to every address", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			named(t, o.NetworkPolicies, "allow-https").Spec.Egress[0].To = nil
		}, want: "NetworkPolicy/allow-https: HTTPS egress to every address, the cluster's own and its private network included"},
		{name: "prod: HTTPS egress into the private ranges", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			b := named(t, o.NetworkPolicies, "allow-https").Spec.Egress[0].To[0].IPBlock
			b.Except = slices.DeleteFunc(b.Except, func(c string) bool { return c == "169.254.0.0/16" })
		}, want: "NetworkPolicy/allow-https: ipBlock 0.0.0.0/0 lets HTTPS reach 169.254.0.0/16, which the outbound guard refuses"},
		{name: "prod: ServiceMonitor port that matches nothing", overlay: "prod", objs: func(t *testing.T, o *check.Objects) {
			o.ServiceMonitors[0].Spec.Endpoints[0].Port = "metrix"
		}, want: `endpoint port "metrix" is a port of no Service it selects`},
	}
}

// TestRejectsBaseForMissingService adds a base (and a Dockerfile) for a
// service the repository does not have, in an in-memory copy of deploy/,
// and renders it for real.
func TestRejectsBaseForMissingService(t *testing.T) {
	repo := loadRepo(t)
	mem := copyToMemory(t, ".", "/deploy")
	for _, f := range []string{"kustomization.yaml", "serviceaccount.yaml", "deployment.yaml", "service.yaml", "pdb.yaml", "hpa.yaml"} {
		b := readMem(t, mem, "/deploy/base/growth/"+f)
		writeMem(t, mem, "/deploy/base/billing/"+f, strings.ReplaceAll(b, "growth", "billing"))
	}
	writeMem(t, mem, "/deploy/docker/billing.Dockerfile",
		strings.ReplaceAll(readMem(t, mem, "/deploy/docker/growth.Dockerfile"), "growth", "billing"))
	k := readMem(t, mem, "/deploy/overlays/dev/kustomization.yaml")
	writeMem(t, mem, "/deploy/overlays/dev/kustomization.yaml",
		strings.Replace(k, "  - ../../base/gateway\n", "  - ../../base/gateway\n  - ../../base/billing\n", 1))

	var got []string
	for _, v := range check.Overlay(decode(t, renderDocs(t, mem, "/deploy/overlays/dev")), repo, policies["dev"]) {
		got = append(got, v.String())
	}
	for _, v := range check.Layout(mem, "/deploy", repo) {
		got = append(got, v.String())
	}
	for _, want := range []string{
		"Deployment/billing: no services/billing/cmd/billing (or gateway/cmd/gateway) in the repository",
		"base/billing: a base for a service that does not exist",
		"docker/billing.Dockerfile: a Dockerfile for a service that does not exist",
	} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("not rejected with %q; got:\n%s", want, strings.Join(got, "\n"))
		}
	}
}

// TestRejectsBrokenDockerfiles breaks the good tenancy Dockerfile one way at a time.
func TestRejectsBrokenDockerfiles(t *testing.T) {
	repo := loadRepo(t)
	src, err := os.ReadFile("docker/tenancy.Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	good := string(src)
	dep := repo.Deployables["tenancy"]
	if msgs := check.Dockerfile(good, dep, repo.GoVersion); len(msgs) > 0 {
		t.Fatalf("docker/tenancy.Dockerfile is not clean to start with: %v", msgs)
	}
	runtime, _, _ := strings.Cut(good[strings.LastIndex(good, "\nFROM ")+1:], "\n")
	for _, tc := range []struct{ name, old, new, want string }{
		{"runtime base not pinned", runtime, "FROM gcr.io/distroless/static-debian12:nonroot",
			"FROM gcr.io/distroless/static-debian12:nonroot is not pinned by digest"},
		{"runtime base not distroless", runtime, "FROM alpine:3.22@sha256:" + strings.Repeat("a", 64),
			"is not gcr.io/distroless/static-debian12:nonroot"},
		{"sibling module not copied", "COPY services/audit/ services/audit/\n", "",
			"does not COPY services/audit, which the GOWORK=off build of services/tenancy needs"},
		{"another Go", "golang:1.26.8-", "golang:1.25.0-", "build stage golang:1.25.0-"},
		{"built another way", "deploy/build.sh tenancy /out", "cd services/tenancy && go build -o /out/tenancy ./cmd/tenancy",
			"does not RUN deploy/build.sh tenancy"},
		{"root user", "USER 65532:65532", "USER 0", "numeric non-root USER"},
		{"named user", "USER 65532:65532", "USER nonroot", "numeric non-root USER"},
		{"single stage", runtime, "", "must be multi-stage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := strings.Replace(good, tc.old, tc.new, 1)
			if broken == good {
				t.Fatalf("%q is not in the Dockerfile", tc.old)
			}
			msgs := check.Dockerfile(broken, dep, repo.GoVersion)
			if !slices.ContainsFunc(msgs, func(s string) bool { return strings.Contains(s, tc.want) }) {
				t.Errorf("not rejected with %q; got %q", tc.want, msgs)
			}
		})
	}
}

// --- helpers ---

func deploymentOf(t *testing.T, o *check.Objects, name string) *appsv1.Deployment {
	return named(t, o.Deployments, name)
}

func mainOf(t *testing.T, o *check.Objects, name string) *corev1.Container {
	t.Helper()
	d := deploymentOf(t, o, name)
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container %s", name, name)
	return nil
}

// identityMount is the identity token's mount in a Deployment's main container.
func identityMount(t *testing.T, o *check.Objects, name string) *corev1.VolumeMount {
	t.Helper()
	m := mainOf(t, o, name)
	for i := range m.VolumeMounts {
		if m.VolumeMounts[i].Name == "identity" {
			return &m.VolumeMounts[i]
		}
	}
	t.Fatalf("container %s has no identity mount", name)
	return nil
}

// configMapOf finds a generated ConfigMap by its name before the hash suffix.
func configMapOf(t *testing.T, o *check.Objects, name string) *corev1.ConfigMap {
	t.Helper()
	for _, c := range o.ConfigMaps {
		if strings.HasPrefix(c.Name, name+"-") {
			return c
		}
	}
	t.Fatalf("no ConfigMap %s-<hash>", name)
	return nil
}

func named[T interface{ GetName() string }](t *testing.T, items []T, name string) T {
	t.Helper()
	for _, it := range items {
		if it.GetName() == name {
			return it
		}
	}
	t.Fatalf("no object named %s", name)
	var zero T
	return zero
}

func without[T interface{ GetName() string }](t *testing.T, items []T, name string) []T {
	t.Helper()
	named(t, items, name) // the case must remove something that is there
	return slices.DeleteFunc(slices.Clone(items), func(it T) bool { return it.GetName() == name })
}

func peerPods(name string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": name}}}
}

// editDoc edits the YAML of one object as a plain map, so a case can write
// what the API types cannot hold (an unknown field).
func editDoc(docs [][]byte, kind, name string, edit func(map[string]any)) [][]byte {
	out := slices.Clone(docs)
	for i, d := range out {
		var m map[string]any
		if err := yaml.Unmarshal(d, &m); err != nil {
			panic(err)
		}
		meta, _ := m["metadata"].(map[string]any)
		if m["kind"] != kind || meta["name"] != name {
			continue
		}
		edit(m)
		b, err := yaml.Marshal(m)
		if err != nil {
			panic(err)
		}
		out[i] = b
		return out
	}
	panic("no " + kind + "/" + name + " in the render")
}

// copyToMemory copies the tree at dir into an in-memory filesystem at root.
func copyToMemory(t *testing.T, dir, root string) filesys.FileSystem {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.ToSlash(filepath.Join(root, p)), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	return mem
}

func readMem(t *testing.T, fs filesys.FileSystem, p string) string {
	t.Helper()
	b, err := fs.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeMem(t *testing.T, fs filesys.FileSystem, p, s string) {
	t.Helper()
	if err := fs.WriteFile(p, []byte(s)); err != nil {
		t.Fatal(err)
	}
}
