// Package check validates rendered manifests offline: strict decoding into
// the Kubernetes API types, the Pod Security "restricted" profile, and the
// rules this repository holds its deployables to.
package check

import (
	"errors"
	"fmt"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// Objects is one rendered overlay, every object decoded into its API type.
// A kind without a field here is refused by Decode, so nothing reaches a
// cluster unchecked.
type Objects struct {
	Namespaces      []*corev1.Namespace
	ServiceAccounts []*corev1.ServiceAccount
	ConfigMaps      []*corev1.ConfigMap
	Secrets         []*corev1.Secret
	Services        []*corev1.Service
	Deployments     []*appsv1.Deployment
	PDBs            []*policyv1.PodDisruptionBudget
	HPAs            []*autoscalingv2.HorizontalPodAutoscaler
	NetworkPolicies []*networkingv1.NetworkPolicy
	ServiceMonitors []*monitoringv1.ServiceMonitor
	// Alert and recording rules (components/monitoring).
	PrometheusRules []*monitoringv1.PrometheusRule
	// CronJobs and PVCs come from optional components (audit-monitor).
	CronJobs []*batchv1.CronJob
	PVCs     []*corev1.PersistentVolumeClaim
	// cert-manager's (components/service-tls), decoded into local types:
	// its Go module is not one this module may depend on.
	Issuers      []*Issuer
	Certificates []*Certificate
	// Gateway API (components/edge-workers).
	Gateways           []*gatewayv1.Gateway
	GRPCRoutes         []*gatewayv1.GRPCRoute
	BackendTLSPolicies []*gatewayv1.BackendTLSPolicy
}

// newDecoder returns the API server's own strict JSON/YAML decoding: an
// unknown or duplicated field is an error, not silently dropped as
// kubectl apply would drop it (a misspelled field is a setting that never
// took effect).
func newDecoder() (runtime.Decoder, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme,
		autoscalingv2.AddToScheme, networkingv1.AddToScheme, monitoringv1.AddToScheme, batchv1.AddToScheme,
		gatewayv1.Install,
	} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true}), nil
}

// Decode decodes every YAML document strictly. It reports every bad
// document, not only the first.
func Decode(docs [][]byte) (*Objects, error) {
	dec, err := newDecoder()
	if err != nil {
		return nil, err
	}
	objs := &Objects{}
	var errs []error
	for i, doc := range docs {
		if strings.HasPrefix(apiVersion(doc), certManagerGroup+"/") {
			if err := objs.addCertManager(doc); err != nil {
				errs = append(errs, fmt.Errorf("document %d (%s): %w", i, describe(doc), err))
			}
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d (%s): %w", i, describe(doc), err))
			continue
		}
		if err := objs.add(obj); err != nil {
			errs = append(errs, fmt.Errorf("document %d (%s): %w", i, gvk.Kind, err))
		}
	}
	return objs, errors.Join(errs...)
}

func (o *Objects) add(obj runtime.Object) error {
	switch v := obj.(type) {
	case *corev1.Namespace:
		o.Namespaces = append(o.Namespaces, v)
	case *corev1.ServiceAccount:
		o.ServiceAccounts = append(o.ServiceAccounts, v)
	case *corev1.ConfigMap:
		o.ConfigMaps = append(o.ConfigMaps, v)
	case *corev1.Secret:
		o.Secrets = append(o.Secrets, v)
	case *corev1.Service:
		o.Services = append(o.Services, v)
	case *appsv1.Deployment:
		o.Deployments = append(o.Deployments, v)
	case *policyv1.PodDisruptionBudget:
		o.PDBs = append(o.PDBs, v)
	case *autoscalingv2.HorizontalPodAutoscaler:
		o.HPAs = append(o.HPAs, v)
	case *networkingv1.NetworkPolicy:
		o.NetworkPolicies = append(o.NetworkPolicies, v)
	case *monitoringv1.ServiceMonitor:
		o.ServiceMonitors = append(o.ServiceMonitors, v)
	case *monitoringv1.PrometheusRule:
		o.PrometheusRules = append(o.PrometheusRules, v)
	case *batchv1.CronJob:
		o.CronJobs = append(o.CronJobs, v)
	case *corev1.PersistentVolumeClaim:
		o.PVCs = append(o.PVCs, v)
	case *gatewayv1.Gateway:
		o.Gateways = append(o.Gateways, v)
	case *gatewayv1.GRPCRoute:
		o.GRPCRoutes = append(o.GRPCRoutes, v)
	case *gatewayv1.BackendTLSPolicy:
		o.BackendTLSPolicies = append(o.BackendTLSPolicies, v)
	default:
		return fmt.Errorf("kind %T is not one this repository deploys; teach check.Objects about it", obj)
	}
	return nil
}

// describe names a document that failed to decode, for the error message.
func describe(doc []byte) string {
	var meta struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil || meta.Kind == "" {
		return "unparsable"
	}
	return meta.Kind + "/" + meta.Metadata.Name
}
