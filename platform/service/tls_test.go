package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/echopilot/echopilot/platform/config"
	"github.com/echopilot/echopilot/platform/tlsconfig"
	"github.com/echopilot/echopilot/platform/tlsconfig/devca"
)

func TestTLSSettingsArePrinted(t *testing.T) {
	var cfg Config
	l := config.New("svc")
	var out bytes.Buffer
	l.Stdout = &out
	bind(l, &cfg, Spec{Name: "svc"})
	if err := l.Parse([]string{"--print-config"}); !errors.Is(err, config.ErrPrinted) {
		t.Fatalf("Parse = %v", err)
	}
	var d config.Description
	if err := json.Unmarshal(out.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	envs := map[string]bool{}
	for _, s := range d.Settings {
		envs[s.Env] = true
	}
	for _, want := range []string{"ECHOPILOT_TLS_CERT_FILE", "ECHOPILOT_TLS_KEY_FILE", "ECHOPILOT_TLS_CA_FILE", "ECHOPILOT_TLS_CLIENT_AUTH", "ECHOPILOT_TLS_RELOAD_INTERVAL"} {
		if !envs[want] {
			t.Errorf("--print-config lacks %s", want)
		}
	}
}

func TestTLSOpen(t *testing.T) {
	dir := t.TempDir()
	ca, err := devca.New("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.WriteCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.WriteLeaf(dir, "queue", devca.Leaf{Service: "queue", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}

	plain, err := TLS{}.Open(nil)
	if err != nil || plain.Server != nil || plain.BindsServicePeers() || plain.String() != "plaintext" {
		t.Errorf("no files: %v, %v; want plaintext", plain, err)
	}
	mtls, err := TLS{CertFile: p.Cert, KeyFile: p.Key, CAFile: caFile, ClientAuth: "require"}.Open(nil)
	if err != nil || mtls.Server == nil || !mtls.BindsServicePeers() || mtls.ClientAuth != tlsconfig.RequireClientCert {
		t.Errorf("mutual TLS: %v, %v", mtls, err)
	}
	client, err := TLS{CAFile: caFile}.Open(nil)
	if err != nil || client.Server != nil || client.String() != "tls client" {
		t.Errorf("CA only: %v, %v; want TLS to peers, a plaintext server", client, err)
	}

	for name, bad := range map[string]TLS{
		"client auth without files":  {ClientAuth: "require"},
		"client auth without a CA":   {CertFile: p.Cert, KeyFile: p.Key, ClientAuth: "optional"},
		"client auth without a cert": {CAFile: caFile, ClientAuth: "require"},
		"unknown client auth":        {CertFile: p.Cert, KeyFile: p.Key, CAFile: caFile, ClientAuth: "yes"},
		"certificate without key":    {CertFile: p.Cert, CAFile: caFile},
		"missing file":               {CAFile: dir + "/absent.pem"},
	} {
		if tr, err := bad.Open(nil); err == nil {
			t.Errorf("%s: Open = %v, want an error", name, tr)
		}
	}
}

// TestExpiryGauge: the gauge reads the expiry of the certificate in use,
// a rotated one as soon as it is re-read; 0 without a certificate.
func TestExpiryGauge(t *testing.T) {
	dir := t.TempDir()
	ca, err := devca.New("test CA", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.WriteLeaf(dir, "queue", devca.Leaf{Service: "queue", ValidFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := TLS{CertFile: p.Cert, KeyFile: p.Key, ReloadInterval: time.Millisecond}.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	near := func(got float64, want time.Duration) bool {
		d := time.Until(time.Unix(int64(got), 0))
		return d > want-time.Minute && d <= want+time.Minute
	}
	if got := testutil.ToFloat64(tr.ExpiryGauge()); !near(got, time.Hour) {
		t.Errorf("expiry = %v, want about an hour from now", time.Unix(int64(got), 0))
	}
	if _, err := ca.WriteLeaf(dir, "queue", devca.Leaf{Service: "queue", ValidFor: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if got := testutil.ToFloat64(tr.ExpiryGauge()); !near(got, 24*time.Hour) {
		t.Errorf("expiry after rotation = %v, want about a day from now", time.Unix(int64(got), 0))
	}
	plain, err := TLS{}.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(plain.ExpiryGauge()); got != 0 {
		t.Errorf("plaintext expiry = %v, want 0", got)
	}
}
