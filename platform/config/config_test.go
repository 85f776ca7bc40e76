package config

import (
	"strings"
	"testing"
	"time"
)

func TestFlagBeatsEnvBeatsDefault(t *testing.T) {
	t.Setenv("ECHOPILOT_X_ADDR", ":1")
	t.Setenv("ECHOPILOT_X_TIMEOUT", "3s")
	l := New("t")
	var addr, other string
	var timeout time.Duration
	var n int
	l.String(&addr, "addr", "ECHOPILOT_X_ADDR", ":0", "")
	l.String(&other, "other", "ECHOPILOT_X_OTHER", "def", "")
	l.Duration(&timeout, "timeout", "ECHOPILOT_X_TIMEOUT", time.Second, "")
	l.Int(&n, "n", "ECHOPILOT_X_N", 7, "")
	if err := l.Parse([]string{"-addr", ":2"}); err != nil {
		t.Fatal(err)
	}
	if addr != ":2" || other != "def" || timeout != 3*time.Second || n != 7 {
		t.Fatalf("got addr=%q other=%q timeout=%v n=%d", addr, other, timeout, n)
	}
}

func TestMalformedEnvFails(t *testing.T) {
	t.Setenv("ECHOPILOT_X_TIMEOUT", "soon")
	t.Setenv("ECHOPILOT_X_N", "many")
	l := New("t")
	var timeout time.Duration
	var n int
	l.Duration(&timeout, "timeout", "ECHOPILOT_X_TIMEOUT", time.Second, "")
	l.Int(&n, "n", "ECHOPILOT_X_N", 7, "")
	if err := l.Parse(nil); err == nil {
		t.Fatal("malformed env accepted")
	}
}

func TestSecretsStayOutOfUsage(t *testing.T) {
	t.Setenv("ECHOPILOT_X_SECRET", "hunter2-very-secret")
	l := New("t")
	var secret, fromFlag string
	l.Secret(&secret, "secret", "ECHOPILOT_X_SECRET", "a secret")
	l.Secret(&fromFlag, "other", "ECHOPILOT_X_OTHER", "another")
	var out strings.Builder
	l.FS.SetOutput(&out)
	l.FS.PrintDefaults()
	if strings.Contains(out.String(), "hunter2") {
		t.Fatalf("secret shown in usage:\n%s", out.String())
	}
	if err := l.Parse([]string{"-other", "given"}); err != nil {
		t.Fatal(err)
	}
	if secret != "hunter2-very-secret" || fromFlag != "given" {
		t.Fatalf("secret=%q other=%q", secret, fromFlag)
	}
}

func TestSecretOrKeepsDatabasePasswordsOutOfUsage(t *testing.T) {
	t.Setenv("ECHOPILOT_X_DATABASE_URL", "postgres://app:hunter2@db/x")
	l := New("t")
	var url, unset string
	l.SecretOr(&url, "database-url", "ECHOPILOT_X_DATABASE_URL", "sqlite://x.db", "database")
	l.SecretOr(&unset, "other-url", "ECHOPILOT_X_OTHER_URL", "sqlite://other.db", "other")
	var out strings.Builder
	l.FS.SetOutput(&out)
	l.FS.PrintDefaults()
	if strings.Contains(out.String(), "hunter2") || !strings.Contains(out.String(), "sqlite://x.db") {
		t.Fatalf("usage shows the env value or hides the default:\n%s", out.String())
	}
	if err := l.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if url != "postgres://app:hunter2@db/x" || unset != "sqlite://other.db" {
		t.Fatalf("url=%q other=%q, want the env value and the default", url, unset)
	}
}
