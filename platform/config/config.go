// Package config reads settings from flags, with ECHOPILOT_* environment
// variables as fallbacks (flag > env > default). A malformed env value stops
// the service instead of silently falling back to the default.
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
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

// ErrPrinted is returned by Parse after --print-config printed the
// description: the caller exits successfully without starting anything, as
// it does for flag.ErrHelp.
var ErrPrinted = errors.New("config: --print-config: description printed")

// Loader registers flags on a FlagSet and remembers env values that did not parse.
type Loader struct {
	FS *flag.FlagSet
	// Stdout receives --print-config's description; os.Stdout when nil.
	Stdout io.Writer

	errs        []error
	secrets     []secretFlag
	settings    []Setting
	facts       map[string]any
	printConfig bool
}

// New returns a Loader for a fresh FlagSet named name.
func New(name string) *Loader {
	l := &Loader{FS: flag.NewFlagSet(name, flag.ContinueOnError)}
	l.FS.BoolVar(&l.printConfig, "print-config", false,
		"print every setting (flag, env variable, compiled-in default; never a secret's value) and the binary's facts as JSON, then exit")
	return l
}

// Setting describes one registered setting for --print-config. Default is
// the compiled-in default as the flag package would print it, never a
// value from the environment.
type Setting struct {
	Flag    string `json:"flag"`
	Env     string `json:"env"`
	Kind    string `json:"kind"` // string, bool, int, duration or value (a flag.Value)
	Default string `json:"default"`
	Secret  bool   `json:"secret,omitempty"`
	Usage   string `json:"usage"`
}

// Description is the document --print-config prints: what a deployment
// may set for this binary, and facts it declares about itself (the
// gateway's backends), so tools need not read its source.
type Description struct {
	Name     string         `json:"name"`
	Settings []Setting      `json:"settings"`
	Facts    map[string]any `json:"facts,omitempty"`
}

// Fact declares a fact about the binary for --print-config; v must
// marshal to JSON.
func (l *Loader) Fact(name string, v any) {
	if l.facts == nil {
		l.facts = map[string]any{}
	}
	l.facts[name] = v
}

// Describe returns what --print-config prints.
func (l *Loader) Describe() Description {
	return Description{Name: l.FS.Name(), Settings: slices.Clone(l.settings), Facts: l.facts}
}

func (l *Loader) register(s Setting) { l.settings = append(l.settings, s) }

func usage(u, key string) string { return fmt.Sprintf("%s (env %s)", u, key) }

// String registers a string flag.
func (l *Loader) String(p *string, name, key, def, u string) {
	l.register(Setting{Flag: name, Env: key, Kind: "string", Default: def, Usage: u})
	l.FS.StringVar(p, name, Env(key, def), usage(u, key))
}

// Secret registers a string flag whose env value is never shown as the
// flag's default in -h output.
func (l *Loader) Secret(p *string, name, key, u string) {
	l.register(Setting{Flag: name, Env: key, Kind: "string", Secret: true, Usage: u})
	l.FS.StringVar(p, name, "", usage(u, key)+" [secret]")
	l.secrets = append(l.secrets, secretFlag{p: p, name: name, key: key})
}

// SecretOr is Secret with a default for when neither the flag nor the env
// variable is set (a database URL: the default names a local file, the
// value a deployment sets carries a password).
func (l *Loader) SecretOr(p *string, name, key, def, u string) {
	l.register(Setting{Flag: name, Env: key, Kind: "string", Default: def, Secret: true, Usage: u})
	l.FS.StringVar(p, name, "", fmt.Sprintf("%s (default %q) [secret]", usage(u, key), def))
	l.secrets = append(l.secrets, secretFlag{p: p, name: name, key: key, def: def})
}

type secretFlag struct {
	p              *string
	name, key, def string
}

// Bool registers a bool flag.
func (l *Loader) Bool(p *bool, name, key string, def bool, u string) {
	l.register(Setting{Flag: name, Env: key, Kind: "bool", Default: strconv.FormatBool(def), Usage: u})
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
	l.register(Setting{Flag: name, Env: key, Kind: "int", Default: strconv.Itoa(def), Usage: u})
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
	l.register(Setting{Flag: name, Env: key, Kind: "duration", Default: def.String(), Usage: u})
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

// EnvSetter is a flag.Value that takes its env variable's value in a form
// of its own (a list of files in one variable, say) instead of Set's.
type EnvSetter interface {
	SetEnv(raw string) error
}

// Var registers a flag of a type of its own. v's value at registration is
// its default; the env value, when set, goes to SetEnv if v is an
// EnvSetter, else to Set, before any flag.
func (l *Loader) Var(v flag.Value, name, key, u string) {
	l.register(Setting{Flag: name, Env: key, Kind: "value", Default: v.String(), Usage: u})
	if raw := Env(key, ""); raw != "" {
		set := v.Set
		if es, ok := v.(EnvSetter); ok {
			set = es.SetEnv
		}
		if err := set(raw); err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s=%q: %w", key, raw, err))
		}
	}
	l.FS.Var(v, name, usage(u, key))
}

// Parse parses args and reports malformed env values and flags together.
// With --print-config it prints the description instead and returns
// ErrPrinted, whatever the environment holds.
func (l *Loader) Parse(args []string) error {
	if err := l.FS.Parse(args); err != nil {
		return err
	}
	if l.printConfig {
		return l.print()
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

func (l *Loader) print() error {
	out := l.Stdout
	if out == nil {
		out = os.Stdout
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(l.Describe()); err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	return ErrPrinted
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
