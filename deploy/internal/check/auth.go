package check

import (
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The variables that say how a deployable verifies tokens and who it is
// towards its peers (platform/service's bind, gateway/cmd/gateway).
const (
	envAuthMode       = "ECHOPILOT_AUTH_MODE"
	envGRPCAddr       = "ECHOPILOT_GRPC_ADDR"
	envHS256          = "ECHOPILOT_JWT_HS256_SECRET"
	envPublicKeys     = "ECHOPILOT_JWT_PUBLIC_KEYS"
	envJWKS           = "ECHOPILOT_JWKS_URL"
	envIssuer         = "ECHOPILOT_JWT_ISSUER"
	envAudience       = "ECHOPILOT_JWT_AUDIENCE"
	envTokenFile      = "ECHOPILOT_SERVICE_TOKEN_FILE"
	envAllowOptional  = "ECHOPILOT_ALLOW_OPTIONAL_AUTH_ON_NETWORK"
	envAllowUnbound   = "ECHOPILOT_ALLOW_UNBOUND_TOKENS"
	envReflection     = "ECHOPILOT_GRPC_REFLECTION"
	envRateLimitRead  = "ECHOPILOT_RATE_LIMIT_READ"
	envRateLimitWrite = "ECHOPILOT_RATE_LIMIT_WRITE"
)

// verification is how a deployable verifies tokens. Every deployable must
// verify alike: a token the gateway charges to a tenant is one the
// services accept, and a service's identity token is one its peers accept.
var verification = []string{envHS256, envPublicKeys, envJWKS, envIssuer, envAudience}

// localSwitches relax authentication for local runs; production sets none.
var localSwitches = []string{envAllowOptional, envAllowUnbound, envReflection}

// set reports whether the binary sees key as set: present, and not empty
// (platform/config treats an empty value as unset). A Secret's value that
// is not in the render counts as set.
func set(env map[string]envVar, key string) bool {
	v, ok := env[key]
	return ok && (!v.known || v.value != "")
}

// enabled reports whether a bool variable is true as platform/config
// parses it.
func enabled(env map[string]envVar, key string) bool {
	v, ok := env[key]
	if !ok || !v.known {
		return false
	}
	b, err := strconv.ParseBool(v.value)
	return err == nil && b
}

// auth holds each deployable to the start-up checks its binary makes, so
// that a manifest the binary would refuse never reaches a cluster as a
// crash-looping pod, and to having an identity towards its peers.
func (c *checker) auth(obj string, dep *Deployable, env map[string]envVar) {
	keys := set(env, envHS256) || set(env, envPublicKeys) || set(env, envJWKS)
	if dep.Gateway {
		if rateLimited(env) && !keys {
			c.fail(obj, "the gateway refuses to start: its rate limits tell tenants apart by verified tokens, and it has no %s, %s or %s (or set %s=0 and %s=0)",
				envHS256, envPublicKeys, envJWKS, envRateLimitRead, envRateLimitWrite)
		}
	} else {
		c.serviceAuth(obj, env, keys)
	}
	if !set(env, envTokenFile) && !set(env, envHS256) {
		c.fail(obj, "no service identity (%s, or %s to mint one): the peers it calls would refuse its calls", envTokenFile, envHS256)
	}
}

// serviceAuth mirrors platform/service: a verifier needs a key source;
// auth mode optional serves anonymous callers, so beyond loopback only when
// allowed; auth mode required binds tokens to an issuer and audience
// unless allowed not to.
func (c *checker) serviceAuth(obj string, env map[string]envVar, keys bool) {
	if !keys {
		c.fail(obj, "the service refuses to start: no %s, %s or %s to verify tokens with", envHS256, envPublicKeys, envJWKS)
	}
	mode := "required"
	if v, ok := env[envAuthMode]; ok && v.known && v.value != "" {
		mode = v.value
	}
	switch mode {
	case "optional":
		addr := env[envGRPCAddr].value // unset: the default, every interface
		if !enabled(env, envAllowOptional) && !loopback(addr) {
			c.fail(obj, "the service refuses to start: auth mode optional on %q, not a loopback address, without %s=true",
				addr, envAllowOptional)
		}
	case "required":
		if !enabled(env, envAllowUnbound) && (!set(env, envIssuer) || !set(env, envAudience)) {
			c.fail(obj, "the service refuses to start: auth mode required without %s and %s accepts tokens issued for anyone (set both)",
				envIssuer, envAudience)
		}
	default:
		c.fail(obj, "the service refuses to start: %s=%q: want optional or required", envAuthMode, mode)
	}
}

// loopback mirrors service.IsLoopbackAddr.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// rateLimited: the gateway's limits are on unless both rates are 0.
func rateLimited(env map[string]envVar) bool {
	for _, k := range []string{envRateLimitRead, envRateLimitWrite} {
		v, ok := env[k]
		if !ok || !v.known || v.value == "" {
			return true // the defaults are on
		}
		if n, err := strconv.Atoi(v.value); err != nil || n != 0 {
			return true
		}
	}
	return false
}

// sameVerification: every deployable verifies tokens as the first one does.
func (c *checker) sameVerification() {
	var ref *pod
	for _, d := range c.objs.Deployments {
		p := c.pods[d.Name]
		if p == nil {
			continue
		}
		if ref == nil {
			ref = p
			continue
		}
		for _, k := range verification {
			if got, want := describeVar(p.env, k), describeVar(ref.env, k); got != want {
				c.fail("Deployment/"+p.name, "verifies tokens unlike %s: %s is %s, %s's is %s (a token one accepts the other would refuse)",
					ref.name, k, got, ref.name, want)
			}
		}
	}
}

func describeVar(env map[string]envVar, key string) string {
	v, ok := env[key]
	switch {
	case !ok || (v.known && v.value == ""):
		return "unset"
	case !v.known:
		return "from " + v.source
	case secretLike(key):
		return "the value of " + v.source // compare secrets without printing them
	}
	return strconv.Quote(v.value)
}

// production: each deployable's identity is a token mounted for it alone
// (ECHOPILOT_SERVICE_TOKEN_FILE on a read-only Secret or projected volume,
// mounted as a directory so rotations reach it), no HS256 secret (whoever
// holds it mints any identity, admins' included), and none of the local
// switches. It returns the Secret the token comes from.
func (c *checker) production(obj string, d *appsv1.Deployment, main *corev1.Container, env map[string]envVar) string {
	if set(env, envHS256) {
		c.fail(obj, "production: %s is set: whoever holds it can mint any identity, services' and admins' alike; verify the identity provider's tokens only",
			envHS256)
	}
	for _, k := range localSwitches {
		if enabled(env, k) {
			c.fail(obj, "production: %s=true is a switch for local runs", k)
		}
	}
	if v := env[envAuthMode]; v.known && v.value == "optional" {
		c.fail(obj, "production: auth mode optional serves anonymous callers")
	}
	v, ok := env[envTokenFile]
	if !ok || !v.known || v.value == "" {
		c.fail(obj, "production: no %s: mount the deployable's own identity token (components/service-identity)", envTokenFile)
		return ""
	}
	file := v.value
	if !path.IsAbs(file) {
		c.fail(obj, "production: %s=%q must be an absolute path", envTokenFile, file)
		return ""
	}
	var mount *corev1.VolumeMount
	for i := range main.VolumeMounts {
		m := &main.VolumeMounts[i]
		if strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") && (mount == nil || len(m.MountPath) > len(mount.MountPath)) {
			mount = m
		}
		if m.MountPath == file && m.SubPath != "" {
			mount = m // a file mounted on its own: reported below
		}
	}
	if mount == nil {
		c.fail(obj, "production: %s %s is on no volume mount of container %s", envTokenFile, file, main.Name)
		return ""
	}
	if mount.SubPath != "" || mount.SubPathExpr != "" {
		c.fail(obj, "production: the identity token is mounted with subPath: the kubelet never updates such a mount, so a rotated token would not reach the pod")
	}
	if !mount.ReadOnly {
		c.fail(obj, "production: the identity token's volume %s must be mounted read-only", mount.Name)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(file, strings.TrimSuffix(mount.MountPath, "/")), "/")
	var vol *corev1.Volume
	for i := range d.Spec.Template.Spec.Volumes {
		if d.Spec.Template.Spec.Volumes[i].Name == mount.Name {
			vol = &d.Spec.Template.Spec.Volumes[i]
		}
	}
	switch {
	case vol == nil:
		c.fail(obj, "production: no volume %s for the identity token", mount.Name)
	case vol.Secret != nil:
		if !projects(vol.Secret.Items, rel) {
			c.fail(obj, "production: Secret volume %s does not project the token file %s", vol.Name, rel)
		}
		return vol.Secret.SecretName
	case vol.Projected != nil:
		for _, src := range vol.Projected.Sources {
			switch {
			case src.ServiceAccountToken != nil && src.ServiceAccountToken.Path == rel:
				if src.ServiceAccountToken.Audience == "" {
					c.fail(obj, "production: the projected service-account token has no audience: it would be one for the Kubernetes API, sent to every peer")
				}
				return ""
			case src.Secret != nil && projects(src.Secret.Items, rel):
				return src.Secret.Name
			}
		}
		c.fail(obj, "production: projected volume %s does not provide the token file %s", vol.Name, rel)
	default:
		c.fail(obj, "production: the identity token must come from a Secret or a projected token volume, not volume %s", vol.Name)
	}
	return ""
}

// projects: a Secret volume with items shows only those; without, every key.
func projects(items []corev1.KeyToPath, rel string) bool {
	if len(items) == 0 {
		return !strings.Contains(rel, "/")
	}
	for _, it := range items {
		if it.Path == rel {
			return true
		}
	}
	return false
}

// ownIdentities: no two deployables share an identity Secret.
func (c *checker) ownIdentities() {
	owner := map[string]string{}
	for _, d := range c.objs.Deployments {
		p := c.pods[d.Name]
		if p == nil || p.identitySecret == "" {
			continue
		}
		key := p.namespace + "/" + p.identitySecret
		if first, ok := owner[key]; ok {
			c.fail("Deployment/"+d.Name, "production: its identity comes from Secret %s, as %s's does: each deployable has its own (subject service:<name>)",
				p.identitySecret, first)
			continue
		}
		owner[key] = d.Name
	}
}
