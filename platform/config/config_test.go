package config

import (
	"encoding/json"
	"errors"
	"reflect"
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

// TestPrintConfig: --print-config describes every kind of setting with its
// compiled-in default, never a value from the environment, and Parse says
// the caller should stop.
func TestPrintConfig(t *testing.T) {
	t.Setenv("ECHOPILOT_X_SECRET", "hunter2-secret")
	t.Setenv("ECHOPILOT_X_DATABASE_URL", "postgres://app:hunter2-db@db/x")
	t.Setenv("ECHOPILOT_X_ADDR", "env-only-addr:1")
	t.Setenv("ECHOPILOT_X_N", "not a number") // malformed env does not stop the description
	t.Setenv("ECHOPILOT_X_FILES", "a:b")
	l := New("t")
	var out strings.Builder
	l.Stdout = &out
	var s, secret, dbURL string
	var b bool
	var n int
	var d time.Duration
	var files listValue
	l.String(&s, "addr", "ECHOPILOT_X_ADDR", ":1", "address")
	l.Secret(&secret, "secret", "ECHOPILOT_X_SECRET", "a secret")
	l.SecretOr(&dbURL, "database-url", "ECHOPILOT_X_DATABASE_URL", "sqlite://x.db", "database")
	l.Bool(&b, "flag", "ECHOPILOT_X_FLAG", true, "a bool")
	l.Int(&n, "n", "ECHOPILOT_X_N", 7, "an int")
	l.Duration(&d, "wait", "ECHOPILOT_X_WAIT", 90*time.Second, "a duration")
	l.Var(&files, "file", "ECHOPILOT_X_FILES", "files")
	l.Fact("backends", []string{"alpha", "beta"})

	if err := l.Parse([]string{"--print-config"}); !errors.Is(err, ErrPrinted) {
		t.Fatalf("Parse = %v, want ErrPrinted", err)
	}
	if strings.Contains(out.String(), "hunter2") || strings.Contains(out.String(), "env-only-addr") {
		t.Fatalf("description leaks an env value:\n%s", out.String())
	}
	var got Description
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	want := []Setting{
		{Flag: "addr", Env: "ECHOPILOT_X_ADDR", Kind: "string", Default: ":1", Usage: "address"},
		{Flag: "secret", Env: "ECHOPILOT_X_SECRET", Kind: "string", Secret: true, Usage: "a secret"},
		{Flag: "database-url", Env: "ECHOPILOT_X_DATABASE_URL", Kind: "string", Default: "sqlite://x.db", Secret: true, Usage: "database"},
		{Flag: "flag", Env: "ECHOPILOT_X_FLAG", Kind: "bool", Default: "true", Usage: "a bool"},
		{Flag: "n", Env: "ECHOPILOT_X_N", Kind: "int", Default: "7", Usage: "an int"},
		{Flag: "wait", Env: "ECHOPILOT_X_WAIT", Kind: "duration", Default: "1m30s", Usage: "a duration"},
		{Flag: "file", Env: "ECHOPILOT_X_FILES", Kind: "value", Default: "", Usage: "files"},
	}
	if got.Name != "t" || !reflect.DeepEqual(got.Settings, want) {
		t.Fatalf("description:\n%+v\nwant settings\n%+v", got, want)
	}
	if backends, _ := got.Facts["backends"].([]any); len(backends) != 2 || backends[0] != "alpha" || backends[1] != "beta" {
		t.Fatalf("facts = %v, want backends [alpha beta]", got.Facts)
	}
}

func TestVarTakesEnvThroughSetEnv(t *testing.T) {
	t.Setenv("ECHOPILOT_X_FILES", "a:b")
	l := New("t")
	var files listValue
	l.Var(&files, "file", "ECHOPILOT_X_FILES", "files")
	if err := l.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(files.v, []string{"a", "b"}) {
		t.Fatalf("files = %q, want the env list", files.v)
	}
	t.Setenv("ECHOPILOT_X_FILES", "::")
	l = New("t")
	l.Var(&listValue{}, "file", "ECHOPILOT_X_FILES", "files")
	if err := l.Parse(nil); err == nil {
		t.Fatal("malformed env accepted")
	}
}

// listValue is a repeatable flag whose env variable holds a colon-separated
// list.
type listValue struct{ v []string }

func (l *listValue) String() string { return strings.Join(l.v, ":") }
func (l *listValue) Set(s string) error {
	l.v = append(l.v, s)
	return nil
}
func (l *listValue) SetEnv(raw string) error {
	for _, s := range strings.Split(raw, ":") {
		if s == "" {
			return errors.New("empty entry")
		}
		l.v = append(l.v, s)
	}
	return nil
}
