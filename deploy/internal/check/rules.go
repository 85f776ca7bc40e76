package check

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psapi "k8s.io/pod-security-admission/api"
	psa "k8s.io/pod-security-admission/policy"
)

// Policy is what the overlays may differ in.
type Policy struct {
	// MinReplicas is the least minReplicas every HPA must keep (production
	// runs several replicas of everything).
	MinReplicas int32
	// Production holds the overlay to production's identity rules: each
	// deployable calls its peers with a token mounted for it alone, no
	// HS256 secret anyone could mint any identity with, and none of the
	// switches made for local runs (see production in auth.go).
	Production bool
}

// Violation is one broken rule, on one object.
type Violation struct {
	Object string // Kind/name, or "overlay"
	Msg    string
}

func (v Violation) String() string { return v.Object + ": " + v.Msg }

// Defaults of the binaries, used when the manifests leave them unset.
const (
	defaultStopTimeout = 20 * time.Second // ECHOPILOT_SHUTDOWN_TIMEOUT; the gateway's is fixed at this
	defaultGrace       = 30               // terminationGracePeriodSeconds
)

// Overlay checks one rendered overlay against the repository.
func Overlay(objs *Objects, repo *Repo, pol Policy) []Violation {
	c := &checker{objs: objs, repo: repo, pol: pol, pods: map[string]*pod{}}
	evaluator, err := psa.NewEvaluator(psa.DefaultChecks(), nil)
	if err != nil {
		c.fail("overlay", "pod security evaluator: %v", err)
		return c.out
	}
	c.psa = evaluator
	c.namespaces()
	c.inventory()
	for _, d := range objs.Deployments {
		c.deployment(d)
	}
	for _, cj := range objs.CronJobs {
		c.cronJob(cj)
	}
	c.sameVerification()
	c.ownIdentities()
	c.serviceTLS()
	c.edgeRoutes()
	c.network()
	c.serviceMonitors()
	c.monitoring()
	return c.out
}

type checker struct {
	objs *Objects
	repo *Repo
	pol  Policy
	psa  psa.Evaluator
	// pods are the checked Deployments' pods by name, for the network rules.
	pods map[string]*pod
	out  []Violation
}

// pod is what the network rules need to know of a Deployment's pods.
type pod struct {
	name, namespace string
	labels          map[string]string
	ports           map[string]int32 // the main container's ports by name
	env             map[string]envVar
	gateway         bool
	sqlite          bool
	// identitySecret is the Secret its identity token comes from (production).
	identitySecret string
}

func (c *checker) fail(obj, format string, args ...any) {
	c.out = append(c.out, Violation{Object: obj, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) namespaces() {
	if len(c.objs.Namespaces) == 0 {
		c.fail("overlay", "no Namespace object: nothing makes the API server enforce Pod Security")
	}
	for _, ns := range c.objs.Namespaces {
		if ns.Labels[psapi.EnforceLevelLabel] != string(psapi.LevelRestricted) {
			c.fail("Namespace/"+ns.Name, "label %s must be %q", psapi.EnforceLevelLabel, psapi.LevelRestricted)
		}
	}
}

// inventory: the overlay deploys exactly the repository's deployables.
func (c *checker) inventory() {
	have := map[string]bool{}
	for _, d := range c.objs.Deployments {
		have[d.Name] = true
		if c.repo.Deployables[d.Name] == nil {
			c.fail("Deployment/"+d.Name, "no services/%[1]s/cmd/%[1]s (or gateway/cmd/gateway) in the repository: a base for a service that does not exist", d.Name)
		}
	}
	for _, name := range c.repo.Names() {
		if !have[name] {
			c.fail("overlay", "no Deployment for %s, which the repository builds (%s)", name, c.repo.Deployables[name].Module)
		}
	}
}

func (c *checker) deployment(d *appsv1.Deployment) {
	obj := "Deployment/" + d.Name
	dep := c.repo.Deployables[d.Name] // nil: reported by inventory; the generic rules still apply
	spec := &d.Spec.Template.Spec
	main := mainContainer(d)
	if main == nil {
		c.fail(obj, "no container named %s", d.Name)
		return
	}
	if d.Spec.Replicas != nil {
		c.fail(obj, "spec.replicas is set: the HPA owns the count, and every apply would reset it")
	}
	c.podSecurity(obj, &d.Spec.Template)
	c.securityContexts(obj, spec)
	for _, ct := range allContainers(spec) {
		c.resources(obj, ct)
		c.image(obj, ct)
	}
	env := c.env(obj, d.Namespace, *main)
	p := &pod{name: d.Name, namespace: d.Namespace, labels: d.Spec.Template.Labels, ports: ports(main), env: env, gateway: dep != nil && dep.Gateway}
	c.pods[d.Name] = p
	c.probes(obj, dep, main, servesTLS(env))
	c.shutdown(obj, spec, main, env)
	c.pdb(obj, d)
	if dep != nil {
		c.envRules(obj, d, dep, env)
		c.services(obj, d, dep, main)
		c.auth(obj, dep, env)
		if c.pol.Production {
			p.identitySecret = c.production(obj, d, main, env)
		}
		if dep.Gateway {
			c.gatewayExposure(obj, d)
		} else {
			p.sqlite = c.migration(obj, d, main, env)
		}
	}
	c.hpa(obj, d, p.sqlite)
}

// mainContainer is the container named like its Deployment.
func mainContainer(d *appsv1.Deployment) *corev1.Container {
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == d.Name {
			return c
		}
	}
	return nil
}

func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	var out []*corev1.Container
	for i := range spec.InitContainers {
		out = append(out, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	return out
}

func ports(c *corev1.Container) map[string]int32 {
	out := map[string]int32{}
	for _, p := range c.Ports {
		out[p.Name] = p.ContainerPort
	}
	return out
}

// podSecurity runs the upstream Pod Security Admission evaluator, the code
// the API server itself runs, at the "restricted" level.
func (c *checker) podSecurity(obj string, tmpl *corev1.PodTemplateSpec) {
	lv := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	agg := psa.AggregateCheckResults(c.psa.EvaluatePod(lv, &tmpl.ObjectMeta, &tmpl.Spec))
	if !agg.Allowed {
		c.fail(obj, "pod security restricted: %s", agg.ForbiddenDetail())
	}
}

// securityContexts holds every container to our own, explicit rules:
// stricter than "restricted" (which lets readOnlyRootFilesystem and the
// service-account token be) and reported per container.
func (c *checker) securityContexts(obj string, spec *corev1.PodSpec) {
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		c.fail(obj, "automountServiceAccountToken must be false: the pod would carry an API token it never uses")
	}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	for _, ct := range allContainers(spec) {
		sc := ct.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		if nonRoot := firstSet(sc.RunAsNonRoot, psc.RunAsNonRoot); nonRoot == nil || !*nonRoot {
			c.fail(obj, "container %s: runAsNonRoot must be true", ct.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			c.fail(obj, "container %s: readOnlyRootFilesystem must be true", ct.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			c.fail(obj, "container %s: allowPrivilegeEscalation must be false", ct.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			c.fail(obj, "container %s: capabilities must drop ALL", ct.Name)
		} else if len(sc.Capabilities.Add) > 0 {
			c.fail(obj, "container %s: capabilities must add none, adds %v", ct.Name, sc.Capabilities.Add)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			c.fail(obj, "container %s: seccompProfile must be RuntimeDefault", ct.Name)
		}
	}
}

func firstSet(vs ...*bool) *bool {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

// resources: requests let the scheduler and the HPA work; limits keep one
// pod from starving its node.
func (c *checker) resources(obj string, ct *corev1.Container) {
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := ct.Resources.Requests[r]
		lim, hasLim := ct.Resources.Limits[r]
		if !hasReq {
			c.fail(obj, "container %s: no resources.requests.%s", ct.Name, r)
		}
		if !hasLim {
			c.fail(obj, "container %s: no resources.limits.%s", ct.Name, r)
		}
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			c.fail(obj, "container %s: resources.requests.%s %s exceeds the limit %s", ct.Name, r, req.String(), lim.String())
		}
	}
}

// image: a tag names a version; "latest" or none names whatever was pushed last.
func (c *checker) image(obj string, ct *corev1.Container) {
	name, digest, _ := strings.Cut(ct.Image, "@")
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		tag = name[i+1:]
	}
	switch {
	case tag == "latest":
		c.fail(obj, "container %s: image %s uses the :latest tag", ct.Name, ct.Image)
	case tag == "" && digest == "":
		c.fail(obj, "container %s: image %s has no tag or digest, which means :latest", ct.Name, ct.Image)
	}
}

func (c *checker) env(obj, ns string, ct corev1.Container) map[string]envVar {
	env, problems := c.objs.containerEnv(ns, ct)
	for _, p := range problems {
		c.fail(obj, "%s", p)
	}
	return env
}

// probes: services answer native gRPC health checks for their own service
// name (NOT_SERVING as soon as shutdown begins); the gateway answers HTTP
// /health. Ports are numbers: a gRPC probe only takes a number, and a
// renamed port must not silently break a probe. A service whose gRPC port
// serves TLS is probed by TCP on it instead: the kubelet's gRPC probe
// speaks plaintext, presents no client certificate, and would fail.
func (c *checker) probes(obj string, dep *Deployable, main *corev1.Container, tls bool) {
	for _, pr := range []struct {
		field string
		probe *corev1.Probe
	}{
		{"startupProbe", main.StartupProbe},
		{"readinessProbe", main.ReadinessProbe},
		{"livenessProbe", main.LivenessProbe},
	} {
		p := pr.probe
		if p == nil {
			c.fail(obj, "container %s has no %s", main.Name, pr.field)
			continue
		}
		if port, ok := probePort(p); ok && port.Type == intstr.String {
			c.fail(obj, "container %s: %s on named port %q: use the number", main.Name, pr.field, port.StrVal)
		}
		if dep == nil {
			continue
		}
		if dep.Gateway {
			want := ports(main)["http"]
			if p.HTTPGet == nil || p.HTTPGet.Path != "/health" || p.HTTPGet.Port.IntValue() != int(want) {
				c.fail(obj, "container %s: %s must be httpGet /health on port %d", main.Name, pr.field, want)
			}
			continue
		}
		if tls {
			if p.GRPC != nil {
				c.fail(obj, "container %s: %s is a native gRPC probe against its TLS port: the kubelet's probe speaks plaintext and would fail; use tcpSocket", main.Name, pr.field)
			} else if want := ports(main)["grpc"]; p.TCPSocket == nil || p.TCPSocket.Port.IntValue() != int(want) {
				c.fail(obj, "container %s: %s must be tcpSocket on the grpc port %d (the port serves TLS)", main.Name, pr.field, want)
			}
			continue
		}
		if p.GRPC == nil {
			c.fail(obj, "container %s: %s must be a native gRPC probe", main.Name, pr.field)
			continue
		}
		if want := ports(main)["grpc"]; p.GRPC.Port != want {
			c.fail(obj, "container %s: %s asks port %d, not the grpc port %d", main.Name, pr.field, p.GRPC.Port, want)
		}
		got := ""
		if p.GRPC.Service != nil {
			got = *p.GRPC.Service
		}
		switch {
		case len(dep.GRPCServices) == 0:
			c.fail(obj, "container %s: %s asks for %q, but proto/echopilot/%s/v1 declares no service", main.Name, pr.field, got, dep.Name)
		case !slices.Contains(dep.GRPCServices, got):
			c.fail(obj, "container %s: %s must set grpc.service to %s (the health service's name for it), not %q",
				main.Name, pr.field, strings.Join(dep.GRPCServices, " or "), got)
		}
	}
}

func probePort(p *corev1.Probe) (intstr.IntOrString, bool) {
	switch {
	case p.HTTPGet != nil:
		return p.HTTPGet.Port, true
	case p.TCPSocket != nil:
		return p.TCPSocket.Port, true
	}
	return intstr.IntOrString{}, false
}

// shutdown: after SIGTERM a pod sleeps in preStop (endpoints and resolvers
// drop it), drains NOT_SERVING, then stops gracefully within its timeout.
// The grace period must cover all three, or SIGKILL cuts calls off.
func (c *checker) shutdown(obj string, spec *corev1.PodSpec, main *corev1.Container, env map[string]envVar) {
	var preStop time.Duration
	if main.Lifecycle == nil || main.Lifecycle.PreStop == nil || main.Lifecycle.PreStop.Sleep == nil {
		c.fail(obj, "container %s: no preStop sleep: Services would still route to a stopping pod", main.Name)
	} else {
		preStop = time.Duration(main.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	drain, err := durationEnv(env, "ECHOPILOT_SHUTDOWN_DRAIN", 0)
	if err != nil {
		c.fail(obj, "%v", err)
	}
	stop, err := durationEnv(env, "ECHOPILOT_SHUTDOWN_TIMEOUT", defaultStopTimeout)
	if err != nil {
		c.fail(obj, "%v", err)
	}
	grace := time.Duration(defaultGrace) * time.Second
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	if need := preStop + drain + stop; grace <= need {
		c.fail(obj, "terminationGracePeriodSeconds %v must exceed preStop %v + drain %v + shutdown timeout %v = %v",
			grace, preStop, drain, stop, need)
	}
}

func durationEnv(env map[string]envVar, key string, def time.Duration) (time.Duration, error) {
	v, ok := env[key]
	if !ok || !v.known {
		return def, nil
	}
	d, err := time.ParseDuration(v.value)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w", key, v.value, err)
	}
	return d, nil
}

func (c *checker) pdb(obj string, d *appsv1.Deployment) {
	for _, p := range c.objs.PDBs {
		if p.Namespace == d.Namespace && selects(p.Spec.Selector, d.Spec.Template.Labels) {
			return
		}
	}
	c.fail(obj, "no PodDisruptionBudget selects its pods")
}

func (c *checker) hpa(obj string, d *appsv1.Deployment, sqlite bool) {
	var h *autoscalingv2.HorizontalPodAutoscaler
	for _, x := range c.objs.HPAs {
		ref := x.Spec.ScaleTargetRef
		if x.Namespace == d.Namespace && ref.APIVersion == "apps/v1" && ref.Kind == "Deployment" && ref.Name == d.Name {
			h = x
		}
	}
	if h == nil {
		c.fail(obj, "no HorizontalPodAutoscaler scales it")
		return
	}
	minR := int32(1)
	if h.Spec.MinReplicas != nil {
		minR = *h.Spec.MinReplicas
	}
	if minR > h.Spec.MaxReplicas {
		c.fail(obj, "HorizontalPodAutoscaler minReplicas %d exceeds maxReplicas %d", minR, h.Spec.MaxReplicas)
	}
	if minR < c.pol.MinReplicas {
		c.fail(obj, "HorizontalPodAutoscaler minReplicas %d: this overlay runs at least %d replicas", minR, c.pol.MinReplicas)
	}
	if sqlite && h.Spec.MaxReplicas != 1 {
		c.fail(obj, "SQLite is a file in the pod: a second replica would be a second database (HPA maxReplicas %d, want 1)", h.Spec.MaxReplicas)
	}
}

// services: a ClusterIP Service (a stable name) and, for gRPC, its headless
// twin, whose DNS answer lists every pod so round_robin clients spread
// calls over all replicas.
func (c *checker) services(obj string, d *appsv1.Deployment, dep *Deployable, main *corev1.Container) {
	portName := "grpc"
	if dep.Gateway {
		portName = "http"
	}
	want := ports(main)[portName]
	c.service(obj, d, d.Name, false, portName, want)
	if !dep.Gateway {
		c.service(obj, d, d.Name+"-headless", true, portName, want)
	}
}

func (c *checker) service(obj string, d *appsv1.Deployment, name string, headless bool, portName string, port int32) {
	kind := "ClusterIP"
	if headless {
		kind = "headless"
	}
	var s *corev1.Service
	for _, x := range c.objs.Services {
		if x.Namespace == d.Namespace && x.Name == name {
			s = x
		}
	}
	switch {
	case s == nil:
		c.fail(obj, "no %s Service %s", kind, name)
		return
	case headless != (s.Spec.ClusterIP == corev1.ClusterIPNone):
		c.fail(obj, "Service %s must be %s", name, kind)
	}
	if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		c.fail(obj, "Service %s does not select its pods", name)
	}
	for _, p := range s.Spec.Ports {
		if p.Port == port && (p.TargetPort.StrVal == portName || p.TargetPort.IntVal == port) {
			return
		}
	}
	c.fail(obj, "Service %s has no port %d to the %s container port", name, port, portName)
}

var secretLikeRE = regexp.MustCompile(`SECRET|TOKEN|PASSWORD|DATABASE_URL|_KEY$`)

// secretLike: a variable that holds a secret. One ending in _FILE holds a
// path (ECHOPILOT_SERVICE_TOKEN_FILE): what it names is held to its own
// rules (production's token file comes from a Secret volume).
func secretLike(key string) bool {
	return secretLikeRE.MatchString(key) && !strings.HasSuffix(key, "_FILE")
}

// envRules: secrets come from Secrets; every ECHOPILOT_* variable is one
// the binary reads (a misspelt one is silently ignored); peers are dialled
// through their headless Services.
func (c *checker) envRules(obj string, d *appsv1.Deployment, dep *Deployable, mainEnv map[string]envVar) {
	for _, ct := range allContainers(&d.Spec.Template.Spec) {
		env := mainEnv
		if ct.Name != d.Name {
			env, _ = c.objs.containerEnv(d.Namespace, *ct) // its problems are reported by migration
		}
		for _, k := range sortedKeys(env) {
			v := env[k]
			if secretLike(k) && !v.secret {
				c.fail(obj, "container %s: %s comes from %s: secrets come from Secrets", ct.Name, k, v.source)
			}
			if strings.HasPrefix(k, "ECHOPILOT_") && !dep.EnvKeys[k] {
				c.fail(obj, "container %s: sets %s, which %s's code never reads", ct.Name, k, dep.Name)
			}
		}
	}
	for _, k := range sortedKeys(mainEnv) {
		peer := peerOf(k)
		if peer == "" || c.repo.Deployables[peer] == nil || c.repo.Deployables[peer].Gateway {
			continue
		}
		if want := c.peerAddr(peer); want != "" && mainEnv[k].value != want {
			c.fail(obj, "%s=%q: want %q, the headless Service, so round_robin reaches every replica", k, mainEnv[k].value, want)
		}
	}
	if dep.Gateway {
		for _, b := range dep.Backends {
			if _, ok := mainEnv[addrKey(b)]; !ok {
				c.fail(obj, "the gateway dials %s, but %s is not set: it would dial its local default", b, addrKey(b))
			}
		}
		return
	}
	if age, err := durationEnv(mainEnv, "ECHOPILOT_MAX_CONNECTION_AGE", 0); err != nil || age <= 0 {
		c.fail(obj, "ECHOPILOT_MAX_CONNECTION_AGE must be set and positive: clients re-resolve only when connections end")
	}
}

// peerOf returns "audit" for ECHOPILOT_AUDIT_ADDR, "" for other keys.
func peerOf(key string) string {
	name, ok := strings.CutPrefix(key, "ECHOPILOT_")
	if !ok {
		return ""
	}
	name, ok = strings.CutSuffix(name, "_ADDR")
	if !ok {
		return ""
	}
	return strings.ToLower(name)
}

// peerAddr is how a client must dial peer: dns:/// and its headless Service.
func (c *checker) peerAddr(peer string) string {
	for _, d := range c.objs.Deployments {
		if d.Name == peer {
			if m := mainContainer(d); m != nil {
				return fmt.Sprintf("dns:///%s-headless:%d", peer, ports(m)["grpc"])
			}
		}
	}
	return ""
}

// migration: an init container applies the migrations with the owner's
// URL; the service itself never holds it. It reports whether the service
// runs on SQLite (known only when the Secret is in the render, as in dev).
func (c *checker) migration(obj string, d *appsv1.Deployment, main *corev1.Container, env map[string]envVar) bool {
	spec := &d.Spec.Template.Spec
	var mig *corev1.Container
	for i := range spec.InitContainers {
		if slices.Equal(spec.InitContainers[i].Args, []string{"migrate"}) {
			mig = &spec.InitContainers[i]
		}
	}
	if mig == nil {
		c.fail(obj, "no migration init container (args [migrate])")
	} else if mig.Image != main.Image {
		c.fail(obj, "init container %s runs %s, the service %s: migrations must come from the same build", mig.Name, mig.Image, main.Image)
	}
	if _, ok := env["ECHOPILOT_MIGRATE_DATABASE_URL"]; ok {
		c.fail(obj, "container %s holds ECHOPILOT_MIGRATE_DATABASE_URL: only the migration may use the owner role", main.Name)
	}
	db, ok := env["ECHOPILOT_DATABASE_URL"]
	if !ok {
		c.fail(obj, "container %s: no ECHOPILOT_DATABASE_URL", main.Name)
	}
	sqlite := c.sqliteDir(obj, main, db)
	if mig != nil {
		menv := c.env(obj, d.Namespace, *mig)
		murl, ok := menv["ECHOPILOT_MIGRATE_DATABASE_URL"]
		if !ok || !murl.secret {
			c.fail(obj, "init container %s needs ECHOPILOT_MIGRATE_DATABASE_URL from a Secret (the owner role)", mig.Name)
		}
		sqlite = c.sqliteDir(obj, mig, murl) || sqlite
	}
	return sqlite
}

// sqliteDir: a SQLite URL's directory must be a writable mount, since the
// root filesystem is read-only. It reports whether url is SQLite.
func (c *checker) sqliteDir(obj string, ct *corev1.Container, url envVar) bool {
	file, ok := strings.CutPrefix(url.value, "sqlite://")
	if !url.known || !ok {
		return false
	}
	file, _, _ = strings.Cut(file, "?")
	if !path.IsAbs(file) {
		c.fail(obj, "container %s: SQLite path %q must be absolute: the working directory is the read-only root", ct.Name, file)
		return true
	}
	dir := path.Dir(file)
	for _, m := range ct.VolumeMounts {
		if !m.ReadOnly && (dir == m.MountPath || strings.HasPrefix(dir, strings.TrimSuffix(m.MountPath, "/")+"/")) {
			return true
		}
	}
	c.fail(obj, "container %s: SQLite file %s is not on a writable volume mount (the root filesystem is read-only)", ct.Name, file)
	return true
}

// serviceMonitors: every endpoint must find a Service port of its name, or
// it scrapes nothing and nobody notices; and where the overlay has
// ServiceMonitors, every deployable's metrics port is scraped by one.
func (c *checker) serviceMonitors() {
	for _, sm := range c.objs.ServiceMonitors {
		for _, ep := range sm.Spec.Endpoints {
			if !c.anyServicePort(sm.Namespace, &sm.Spec.Selector, ep.Port) {
				c.fail("ServiceMonitor/"+sm.Name, "endpoint port %q is a port of no Service it selects: nothing would be scraped", ep.Port)
			}
		}
	}
	if len(c.objs.ServiceMonitors) == 0 {
		return
	}
	for _, d := range c.objs.Deployments {
		p := c.pods[d.Name]
		if m := mainContainer(d); p == nil || m == nil || p.ports["metrics"] == 0 {
			continue
		}
		if !c.scraped(d) {
			c.fail("Deployment/"+d.Name, "no ServiceMonitor endpoint scrapes its metrics port %d: no Service it selects has a port of the endpoint's name to that port",
				p.ports["metrics"])
		}
	}
}

// scraped: some ServiceMonitor endpoint names a port of a Service it
// selects, that Service selects d's pods, and the port leads to their
// metrics port.
func (c *checker) scraped(d *appsv1.Deployment) bool {
	main := mainContainer(d)
	for _, sm := range c.objs.ServiceMonitors {
		for _, s := range c.objs.Services {
			if s.Namespace != sm.Namespace || s.Namespace != d.Namespace || !selects(&sm.Spec.Selector, s.Labels) ||
				len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				continue
			}
			for _, ep := range sm.Spec.Endpoints {
				for _, sp := range s.Spec.Ports {
					if sp.Name == ep.Port && targetPortName(sp, main) == "metrics" {
						return true
					}
				}
			}
		}
	}
	return false
}

// targetPortName is the name of the container port a Service port leads
// to ("" when it leads to none of main's ports).
func targetPortName(sp corev1.ServicePort, main *corev1.Container) string {
	switch {
	case sp.TargetPort.Type == intstr.String:
		return sp.TargetPort.StrVal
	case sp.TargetPort.IntVal == 0: // unset: the Service's own port number
		return portName(main, sp.Port)
	}
	return portName(main, sp.TargetPort.IntVal)
}

func portName(main *corev1.Container, number int32) string {
	for _, p := range main.Ports {
		if p.ContainerPort == number {
			return p.Name
		}
	}
	return ""
}

// gatewayExposure: the Service the Ingress routes to (the gateway's
// ClusterIP Service, named like it) carries the API port only, and no
// Service puts another gateway port (the admin port: /metrics) on a node
// port or a load balancer. Prometheus reaches the admin port through a
// Service of its own, headless.
func (c *checker) gatewayExposure(obj string, d *appsv1.Deployment) {
	main := mainContainer(d)
	for _, s := range c.objs.Services {
		if s.Namespace != d.Namespace || len(s.Spec.Selector) == 0 ||
			!labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			continue
		}
		for _, sp := range s.Spec.Ports {
			target := targetPortName(sp, main)
			if target == "http" {
				continue
			}
			switch {
			case s.Name == d.Name:
				c.fail(obj, "Service %s, which the Ingress routes to, exposes port %d (container port %q): only the API port belongs there; give Prometheus a headless Service of its own",
					s.Name, sp.Port, target)
			case s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer:
				c.fail(obj, "Service %s (%s) exposes port %d (container port %q) outside the cluster: only the API port may be public",
					s.Name, s.Spec.Type, sp.Port, target)
			}
		}
	}
}

func (c *checker) anyServicePort(ns string, sel *metav1.LabelSelector, port string) bool {
	for _, s := range c.objs.Services {
		if s.Namespace != ns || !selects(sel, s.Labels) {
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.Name == port {
				return true
			}
		}
	}
	return false
}

// selects reports whether a non-empty selector matches lbls.
func selects(sel *metav1.LabelSelector, lbls map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(lbls))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
