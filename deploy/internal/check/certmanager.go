package check

import (
	"encoding/json"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// cert-manager's Go types are not a dependency this module can take, so
// its objects decode into the fields below and nothing else: a field not
// here, misspelt or not, is an error, as with the API types. Adding a
// field to a manifest means adding it here, deliberately.
const certManagerGroup = "cert-manager.io"

// Issuer is a cert-manager Issuer; only CA issuers are declared (a
// self-signed one is refused by decoding).
type Issuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		CA *struct {
			SecretName string `json:"secretName"`
		} `json:"ca"`
	} `json:"spec"`
}

// Certificate is a cert-manager Certificate.
type Certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              CertificateSpec `json:"spec"`
}

type CertificateSpec struct {
	SecretName string `json:"secretName"`
	IssuerRef  struct {
		Group string `json:"group"`
		Kind  string `json:"kind"`
		Name  string `json:"name"`
	} `json:"issuerRef"`
	Duration    string `json:"duration"`
	RenewBefore string `json:"renewBefore"`
	PrivateKey  *struct {
		Algorithm      string `json:"algorithm"`
		Size           int    `json:"size"`
		RotationPolicy string `json:"rotationPolicy"`
	} `json:"privateKey"`
	Usages   []string `json:"usages"`
	URIs     []string `json:"uris"`
	DNSNames []string `json:"dnsNames"`
}

func apiVersion(doc []byte) string {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return ""
	}
	return tm.APIVersion
}

func (o *Objects) addCertManager(doc []byte) error {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return err
	}
	if tm.APIVersion != certManagerGroup+"/v1" {
		return fmt.Errorf("apiVersion %s: only %s/v1 is checked", tm.APIVersion, certManagerGroup)
	}
	// The API server's own strictness: field names are case-sensitive (a
	// plain encoding/json decode would take "renewbefore" for renewBefore),
	// and unknown or duplicate fields are errors.
	strict := func(v any) error {
		strictErrs, err := kjson.UnmarshalStrict(js, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err != nil {
			return err
		}
		return errors.Join(strictErrs...)
	}
	switch tm.Kind {
	case "Issuer":
		v := &Issuer{}
		if err := strict(v); err != nil {
			return err
		}
		o.Issuers = append(o.Issuers, v)
	case "Certificate":
		v := &Certificate{}
		if err := strict(v); err != nil {
			return err
		}
		o.Certificates = append(o.Certificates, v)
	default:
		// A ClusterIssuer would let any namespace's Certificates use the CA.
		return fmt.Errorf("kind %s.%s is not one this repository deploys; teach check.Objects about it", tm.Kind, certManagerGroup)
	}
	return nil
}
