package check

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// envVar is one variable of a container's environment, as the kubelet sets it.
type envVar struct {
	value  string
	known  bool   // false for a Secret that is not in the render (production's)
	secret bool   // comes from a Secret
	source string // for messages: "a literal", "ConfigMap x", "Secret x"
}

// containerEnv resolves c's environment in the kubelet's order: envFrom
// sources in turn, then env, a later one replacing an earlier. A reference
// to a ConfigMap that is not in the render is a problem (it is part of the
// overlay, and a missing one keeps the pod from starting); a Secret may live
// outside git.
func (o *Objects) containerEnv(ns string, c corev1.Container) (map[string]envVar, []string) {
	env := map[string]envVar{}
	var problems []string
	for _, src := range c.EnvFrom {
		switch {
		case src.ConfigMapRef != nil:
			cm := o.configMap(ns, src.ConfigMapRef.Name)
			if cm == nil {
				problems = append(problems, fmt.Sprintf("container %s: envFrom ConfigMap %s is not in the render", c.Name, src.ConfigMapRef.Name))
				continue
			}
			for k, v := range cm.Data {
				env[src.Prefix+k] = envVar{value: v, known: true, source: "ConfigMap " + cm.Name}
			}
		case src.SecretRef != nil:
			if s := o.secret(ns, src.SecretRef.Name); s != nil {
				for k, v := range secretData(s) {
					env[src.Prefix+k] = envVar{value: v, known: true, secret: true, source: "Secret " + s.Name}
				}
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = envVar{value: e.Value, known: true, source: "a literal"}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v := envVar{secret: true, source: "Secret " + ref.Name}
			if s := o.secret(ns, ref.Name); s != nil {
				val, ok := secretData(s)[ref.Key]
				if !ok {
					problems = append(problems, fmt.Sprintf("container %s: %s: Secret %s has no key %q", c.Name, e.Name, ref.Name, ref.Key))
				}
				v.value, v.known = val, ok
			}
			env[e.Name] = v
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm := o.configMap(ns, ref.Name)
			if cm == nil {
				problems = append(problems, fmt.Sprintf("container %s: %s: ConfigMap %s is not in the render", c.Name, e.Name, ref.Name))
				continue
			}
			val, ok := cm.Data[ref.Key]
			env[e.Name] = envVar{value: val, known: ok, source: "ConfigMap " + ref.Name}
		default: // field and resource references: values only the cluster knows
			env[e.Name] = envVar{source: "a field reference"}
		}
	}
	return env, problems
}

func (o *Objects) configMap(ns, name string) *corev1.ConfigMap {
	for _, cm := range o.ConfigMaps {
		if cm.Namespace == ns && cm.Name == name {
			return cm
		}
	}
	return nil
}

func (o *Objects) secret(ns, name string) *corev1.Secret {
	for _, s := range o.Secrets {
		if s.Namespace == ns && s.Name == name {
			return s
		}
	}
	return nil
}

// secretData is a Secret's values as the API server stores them: data,
// with stringData written over it.
func secretData(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}
