package check

import (
	"path"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The TLS settings of the binaries (platform/service, gateway/cmd/gateway).
const (
	envTLSCert       = "ECHOPILOT_TLS_CERT_FILE"
	envTLSKey        = "ECHOPILOT_TLS_KEY_FILE"
	envTLSCA         = "ECHOPILOT_TLS_CA_FILE"
	envTLSClientAuth = "ECHOPILOT_TLS_CLIENT_AUTH"
)

// tlsFiles: each file variable and the key cert-manager writes it under
// in the Certificate's Secret.
var tlsFiles = []struct{ env, key string }{
	{envTLSCert, "tls.crt"}, {envTLSKey, "tls.key"}, {envTLSCA, "ca.crt"},
}

// serviceURIPrefix is how a certificate names a deployable
// (platform/tlsconfig reads it as the peer's identity).
const serviceURIPrefix = "spiffe://echopilot/service/"

// servesTLS: the binary serves (a service) or dials (the gateway) with a
// certificate.
func servesTLS(env map[string]envVar) bool { return set(env, envTLSCert) }

// certificateRules holds every Certificate to what a rotation without
// downtime and a meaningful identity need, and returns the Certificates
// by the deployable their URI SAN names.
func (c *checker) certificateRules() map[string][]*Certificate {
	byName := map[string][]*Certificate{}
	for _, cert := range c.objs.Certificates {
		obj := "Certificate/" + cert.Name
		s := &cert.Spec
		ref := s.IssuerRef
		if (ref.Kind != "" && ref.Kind != "Issuer") || (ref.Group != "" && ref.Group != certManagerGroup) ||
			!slices.ContainsFunc(c.objs.Issuers, func(i *Issuer) bool { return i.Namespace == cert.Namespace && i.Name == ref.Name }) {
			c.fail(obj, "issuerRef names %s %s, which is not in the render: only the namespace's own Issuer signs the suite's certificates", or(ref.Kind, "Issuer"), ref.Name)
		}
		if s.SecretName == "" {
			c.fail(obj, "no secretName")
		}
		dur, err1 := time.ParseDuration(s.Duration)
		renew, err2 := time.ParseDuration(s.RenewBefore)
		switch {
		case err1 != nil || err2 != nil:
			c.fail(obj, "duration %q and renewBefore %q must both be set (cert-manager's defaults are 90 days)", s.Duration, s.RenewBefore)
		case renew >= dur:
			c.fail(obj, "renewBefore %v must be shorter than duration %v, or it renews on every reconcile", renew, dur)
		}
		if s.PrivateKey == nil || s.PrivateKey.RotationPolicy != "Always" {
			c.fail(obj, "privateKey.rotationPolicy must be Always: a renewal that keeps the key does not recover from its leak")
		}
		if !slices.Contains(s.Usages, "client auth") {
			c.fail(obj, "usages lack client auth: its holder could not present it to a peer that requires client certificates")
		}
		var names []string
		for _, u := range s.URIs {
			if n, ok := strings.CutPrefix(u, serviceURIPrefix); ok {
				names = append(names, n)
			}
		}
		switch {
		case len(names) > 1 || (len(names) == 1 && len(s.URIs) > 1):
			c.fail(obj, "URI SANs %q: a certificate names one identity (the peers ignore an ambiguous one)", s.URIs)
		case len(names) == 1:
			byName[names[0]] = append(byName[names[0]], cert)
			if c.repo.Deployables[names[0]] == nil {
				c.fail(obj, "its URI SAN names %s, which the repository does not deploy", names[0])
			}
		}
	}
	return byName
}

// serviceTLS: when the suite uses TLS (production always does), every
// deployable has a Certificate of its own, mounted as a directory the
// binary reads it from, and the services require client certificates.
func (c *checker) serviceTLS() {
	byName := c.certificateRules()
	inUse := len(c.objs.Certificates) > 0
	for _, p := range c.pods {
		inUse = inUse || servesTLS(p.env)
	}
	if !inUse {
		if c.pol.Production {
			c.fail("overlay", "production: no service TLS: calls between the deployables, tokens included, cross the pod network in clear (add components/service-tls)")
		}
		return
	}
	// Each Certificate's Secret is its deployable's, and mounted by it alone.
	for _, cert := range c.objs.Certificates {
		for _, d := range c.objs.Deployments {
			owner := ""
			if n, ok := strings.CutPrefix(firstOr(cert.Spec.URIs, ""), serviceURIPrefix); ok {
				owner = n
			}
			if d.Namespace == cert.Namespace && secretVolume(d, cert.Spec.SecretName) != nil && d.Name != owner {
				if owner == "" {
					c.fail("Certificate/"+cert.Name, "its Secret %s is mounted by %s, but its URI SAN names no deployable", cert.Spec.SecretName, d.Name)
				} else {
					c.fail("Certificate/"+cert.Name, "its URI SAN names %s, but its Secret %s is mounted by %s", owner, cert.Spec.SecretName, d.Name)
				}
			}
		}
	}
	for _, d := range c.objs.Deployments {
		dep, p := c.repo.Deployables[d.Name], c.pods[d.Name]
		if dep == nil || p == nil {
			continue
		}
		obj := "Deployment/" + d.Name
		certs := byName[d.Name]
		switch {
		case len(certs) == 0:
			c.fail(obj, "no Certificate names %s%s: its peers could not verify it", serviceURIPrefix, d.Name)
			continue
		case len(certs) > 1:
			c.fail(obj, "%d Certificates name %s%s: one Secret, one identity", len(certs), serviceURIPrefix, d.Name)
		}
		cert := certs[0]
		c.tlsMount(obj, d, cert, p.env)
		if dep.Gateway {
			continue
		}
		if !slices.Contains(cert.Spec.Usages, "server auth") {
			c.fail(obj, "Certificate %s: usages lack server auth: its gRPC port serves with it", cert.Name)
		}
		if v := p.env[envTLSClientAuth]; !v.known || v.value != "require" {
			c.fail(obj, "%s must be require: without client certificates anyone on the pod network may call it, and service tokens are not bound to the peer", envTLSClientAuth)
		}
		c.tlsNames(obj, d, cert)
	}
}

// tlsMount: the Certificate's Secret is a read-only directory mount (a
// subPath mount never sees a renewal), and the file variables name its
// files in it.
func (c *checker) tlsMount(obj string, d *appsv1.Deployment, cert *Certificate, env map[string]envVar) {
	secret := cert.Spec.SecretName
	vol := secretVolume(d, secret)
	main := mainContainer(d)
	var mount *corev1.VolumeMount
	if vol != nil {
		for i := range main.VolumeMounts {
			if main.VolumeMounts[i].Name == vol.Name {
				mount = &main.VolumeMounts[i]
			}
		}
	}
	if mount == nil {
		c.fail(obj, "Secret %s of Certificate %s is not mounted into container %s", secret, cert.Name, main.Name)
		return
	}
	if !mount.ReadOnly {
		c.fail(obj, "the TLS volume %s must be mounted read-only", mount.Name)
	}
	if mount.SubPath != "" || mount.SubPathExpr != "" {
		c.fail(obj, "the TLS volume %s is mounted with subPath: a renewed certificate would never reach the container", mount.Name)
	}
	for _, f := range tlsFiles {
		v, ok := env[f.env]
		want := path.Join(mount.MountPath, projectedPath(vol.Secret.Items, f.key))
		switch {
		case !ok || !v.known || v.value == "":
			c.fail(obj, "%s is not set: it reads the Certificate's %s from %s", f.env, f.key, want)
		case v.value != want:
			c.fail(obj, "%s=%s: want %s, the key %s of Secret %s as mounted at %s", f.env, v.value, want, f.key, secret, mount.MountPath)
		}
	}
}

// projectedPath is where a Secret volume puts key ("" when its items
// leave it out, which makes the path the mount directory itself).
func projectedPath(items []corev1.KeyToPath, key string) string {
	if len(items) == 0 {
		return key
	}
	for _, it := range items {
		if it.Key == key {
			return it.Path
		}
	}
	return ""
}

// tlsNames: a peer verifies the name it dials, so the certificate names
// every Service of the pods (short, with namespace, and .svc).
func (c *checker) tlsNames(obj string, d *appsv1.Deployment, cert *Certificate) {
	main := mainContainer(d)
	for _, s := range c.objs.Services {
		if s.Namespace != d.Namespace || len(s.Spec.Selector) == 0 ||
			!labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			continue
		}
		for _, sp := range s.Spec.Ports {
			if targetPortName(sp, main) != "grpc" {
				continue
			}
			if sp.AppProtocol != nil && *sp.AppProtocol == "kubernetes.io/h2c" {
				c.fail(obj, "Service %s port %d has appProtocol kubernetes.io/h2c, but the gRPC port serves TLS: a Gateway would dial it in cleartext", s.Name, sp.Port)
			}
			for _, n := range []string{s.Name, s.Name + "." + s.Namespace, s.Name + "." + s.Namespace + ".svc"} {
				if !slices.Contains(cert.Spec.DNSNames, n) {
					c.fail(obj, "Certificate %s: dnsNames lack %q: a client dialling Service %s fails to verify it", cert.Name, n, s.Name)
				}
			}
		}
	}
}

// secretVolume is d's volume of Secret name, nil when it has none.
func secretVolume(d *appsv1.Deployment, name string) *corev1.Volume {
	for i, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == name {
			return &d.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
