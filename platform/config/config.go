// Package config reads settings from flags, with ECHOPILOT_* environment
// variables as fallbacks (flag > env > default). A malformed env value stops
// the service instead of silently falling back to the default.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env returns the value of key, or def when it is unset or empty.
func Env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// Loader registers flags on a FlagSet and remembers env values that did not parse.
type Loader struct {
	FS      *flag.FlagSet
	errs    []error
	secrets []secretFlag
}

// New returns a Loader for a fresh FlagSet named name.
func New(name string) *Loader {
	return &Loader{FS: flag.NewFlagSet(name, flag.ContinueOnError)}
}

func usage(u, key string) string { return fmt.Sprintf("%s (env %s)", u, key) }

// String registers a string flag.
func (l *Loader) String(p *string, name, key, def, u string) {
	l.FS.StringVar(p, name, Env(key, def), usage(u, key))
}

// Secret registers a string flag whose env value is never shown as the
// flag's default in -h output.
func (l *Loader) Secret(p *string, name, key, u string) {
	l.FS.StringVar(p, name, "", usage(u, key)+" [secret]")
	l.secrets = append(l.secrets, secretFlag{p: p, name: name, key: key})
}

// SecretOr is Secret with a default for when neither the flag nor the env
// variable is set (a database URL: the default names a local file, the
// value a deployment sets carries a password).
func (l *Loader) SecretOr(p *string, name, key, def, u string) {
	l.FS.StringVar(p, name, "", fmt.Sprintf("%s (default %q) [secret]", usage(u, key), def))
	l.secrets = append(l.secrets, secretFlag{p: p, name: name, key: key, def: def})
}

type secretFlag struct {
	p              *string
	name, key, def string
}

// Bool registers a bool flag.
func (l *Loader) Bool(p *bool, name, key string, def bool, u string) {
	v := def
	if raw := Env(key, ""); raw != "" {
		parsed, err := strconv.ParseBool(raw)
		if err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s=%q: %w", key, raw, err))
		} else {
			v = parsed
		}
	}
	l.FS.BoolVar(p, name, v, usage(u, key))
}

// Int registers an int flag.
func (l *Loader) Int(p *int, name, key string, def int, u string) {
	v := def
	if raw := Env(key, ""); raw != "" {
		parsed, err := strconv.Atoi(raw)
		if err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s=%q: %w", key, raw, err))
		} else {
			v = parsed
		}
	}
	l.FS.IntVar(p, name, v, usage(u, key))
}

// Duration registers a duration flag.
func (l *Loader) Duration(p *time.Duration, name, key string, def time.Duration, u string) {
	v := def
	if raw := Env(key, ""); raw != "" {
		parsed, err := time.ParseDuration(raw)
		if err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s=%q: %w", key, raw, err))
		} else {
			v = parsed
		}
	}
	l.FS.DurationVar(p, name, v, usage(u, key))
}

// Parse parses args and reports malformed env values and flags together.
func (l *Loader) Parse(args []string) error {
	if err := l.FS.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	l.FS.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, s := range l.secrets {
		if !set[s.name] {
			*s.p = Env(s.key, s.def)
		}
	}
	if len(l.errs) > 0 {
		return fmt.Errorf("invalid environment: %w", errors.Join(l.errs...))
	}
	return nil
}

// List is the values of a comma-separated setting, each trimmed, empty ones
// dropped ("a, b,,c" is a, b, c).
func List(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
