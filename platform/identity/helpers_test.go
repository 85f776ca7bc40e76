package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	authv1 "github.com/echopilot/echopilot/gen/go/echopilot/auth/v1"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "echopilot"
)

// testKeys are the keys a test verifier trusts: an HS256 secret and an
// ES256 key pair whose public half sits in a PEM file.
type testKeys struct {
	secret []byte
	es     *ecdsa.PrivateKey
	esFile string
}

func newTestKeys(t testing.TB) testKeys {
	t.Helper()
	es := newES256(t)
	return testKeys{secret: randomSecret(t), es: es, esFile: writePEM(t, &es.PublicKey)}
}

// verifier trusts k and checks the test issuer and audience.
func (k testKeys) verifier(t testing.TB) *Verifier {
	t.Helper()
	v, err := NewVerifier(VerifierConfig{
		HS256Secret:    k.secret,
		PublicKeyFiles: []string{k.esFile},
		Issuer:         testIssuer,
		Audience:       testAudience,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func (k testKeys) hs(t testing.TB, c tokenClaims) string {
	return signToken(t, jwt.SigningMethodHS256, k.secret, c)
}

func (k testKeys) es256(t testing.TB, c tokenClaims) string {
	return signToken(t, jwt.SigningMethodES256, k.es, c)
}

// claimsFor returns claims valid for an hour, from the test issuer to the
// test audience.
// serviceClaims are the claims of service name's identity, issued in tenant.
func serviceClaims(tenant, name string) tokenClaims {
	c := claimsFor(tenant, RoleService)
	c.Subject = ServiceSubject(name)
	return c
}

func claimsFor(tenant string, roles ...string) tokenClaims {
	now := time.Now()
	return tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   "sub-" + tenant,
			Issuer:    testIssuer,
			Audience:  jwt.ClaimStrings{testAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
		TenantID: tenant,
		Roles:    roles,
	}
}

func signToken(t testing.TB, m jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomSecret(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newES256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writePEM writes pubs as PKIX "PUBLIC KEY" blocks to a new file.
func writePEM(t testing.TB, pubs ...crypto.PublicKey) string {
	t.Helper()
	var out []byte
	for _, pub := range pubs {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return writeFile(t, out)
}

func writeFile(t testing.TB, data []byte) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "key-*.pem")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// recorder is a DecisionSink that keeps what it receives.
type recorder struct {
	mu sync.Mutex
	ds []Decision
}

func (r *recorder) Record(d Decision) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ds = append(r.ds, d)
}

// take returns the decisions recorded since the last call.
func (r *recorder) take() []Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	ds := r.ds
	r.ds = nil
	return ds
}

const (
	probePackage = "echopilot.identitytest.v1"
	probeService = probePackage + ".ProbeService"
)

// probeFile builds, without generated code, a file declaring
// ProbeService { rpc Bare(Ping) returns (Ping); rpc Watch(stream Ping)
// returns (stream Ping); } with Ping { string tenant_id = 1; }. policies
// gives each method's option; a method missing from it declares none.
func probeFile(t testing.TB, policies map[string]*authv1.Policy) protoreflect.FileDescriptor {
	t.Helper()
	method := func(name string, stream bool) *descriptorpb.MethodDescriptorProto {
		m := &descriptorpb.MethodDescriptorProto{
			Name:            proto.String(name),
			InputType:       proto.String("." + probePackage + ".Ping"),
			OutputType:      proto.String("." + probePackage + ".Ping"),
			ClientStreaming: proto.Bool(stream),
			ServerStreaming: proto.Bool(stream),
		}
		if p, ok := policies[name]; ok {
			m.Options = &descriptorpb.MethodOptions{}
			proto.SetExtension(m.Options, authv1.E_Policy, p)
		}
		return m
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("echopilot/identitytest/v1/probe.proto"),
		Package:    proto.String(probePackage),
		Syntax:     proto.String("proto3"),
		Dependency: []string{authv1.File_echopilot_auth_v1_policy_proto.Path()},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Ping"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name:     proto.String("tenant_id"),
				JsonName: proto.String("tenantId"),
				Number:   proto.Int32(1),
				Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Type:     descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
			}},
		}},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name:   proto.String("ProbeService"),
			Method: []*descriptorpb.MethodDescriptorProto{method("Bare", false), method("Watch", true)},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// registry holds fds only.
func registry(t testing.TB, fds ...protoreflect.FileDescriptor) *protoregistry.Files {
	t.Helper()
	files := new(protoregistry.Files)
	for _, fd := range fds {
		if err := files.RegisterFile(fd); err != nil {
			t.Fatal(err)
		}
	}
	return files
}
