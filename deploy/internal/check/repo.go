package check

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/modfile"
)

// modulePrefix is the import path prefix of this repository's modules. Their
// directories mirror their paths, so an import path names its directory.
const modulePrefix = "github.com/echopilot/echopilot/"

// Deployable is something the repository builds and deploys: a service
// (services/<name>/cmd/<name>) or the gateway (gateway/cmd/gateway).
type Deployable struct {
	Name    string
	Module  string // repo-relative module directory: services/tenancy, gateway
	Gateway bool
	// GRPCServices are the full names of the services declared in
	// proto/echopilot/<name>/v1: what its health checks answer for.
	GRPCServices []string
	// EnvKeys are the ECHOPILOT_* variables its binary reads.
	EnvKeys map[string]bool
	// LocalModules are the repo-relative module directories its build needs:
	// its own and every local replace target, transitively.
	LocalModules []string
	// Backends are the services the gateway dials (gateway only).
	Backends []string
}

// Repo is what the manifests are checked against: the repository itself.
type Repo struct {
	Root        string
	GoVersion   string // the go line of go.work: the builder image's Go
	Deployables map[string]*Deployable
}

// Names returns the deployables' names, sorted.
func (r *Repo) Names() []string {
	var names []string
	for n := range r.Deployables {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// LoadRepo reads the deployables of the repository at root.
func LoadRepo(root string) (*Repo, error) {
	r := &Repo{Root: root, Deployables: map[string]*Deployable{}}
	work, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		return nil, err
	}
	wf, err := modfile.ParseWork("go.work", work, nil)
	if err != nil {
		return nil, err
	}
	if wf.Go != nil {
		r.GoVersion = wf.Go.Version
	}

	cmds, err := filepath.Glob(filepath.Join(root, "services", "*", "cmd", "*"))
	if err != nil {
		return nil, err
	}
	for _, dir := range cmds {
		name := filepath.Base(dir)
		// services/audit/cmd/audit-verify is a tool, not a deployable: only
		// the command named like its service is.
		if name != filepath.Base(filepath.Dir(filepath.Dir(dir))) || !isDir(dir) {
			continue
		}
		r.Deployables[name] = &Deployable{Name: name, Module: "services/" + name}
	}
	if isDir(filepath.Join(root, "gateway", "cmd", "gateway")) {
		r.Deployables["gateway"] = &Deployable{Name: "gateway", Module: "gateway", Gateway: true}
	}
	for _, d := range r.Deployables {
		if err := r.load(d); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
	}
	return r, nil
}

func (r *Repo) load(d *Deployable) error {
	var err error
	if d.LocalModules, err = localModules(r.Root, d.Module); err != nil {
		return err
	}
	if d.EnvKeys, err = envKeys(r.Root, path.Join(d.Module, "cmd", d.Name)); err != nil {
		return err
	}
	if d.Gateway {
		if d.Backends, err = gatewayBackends(r.Root); err != nil {
			return err
		}
		// The gateway builds each backend's variable from its name
		// (gateway/cmd/gateway: "ECHOPILOT_"+upper(name)+"_ADDR").
		for _, b := range d.Backends {
			d.EnvKeys[addrKey(b)] = true
		}
		return nil
	}
	d.GRPCServices, err = protoServices(r.Root, d.Name)
	return err
}

func addrKey(name string) string { return "ECHOPILOT_" + strings.ToUpper(name) + "_ADDR" }

var envKeyRE = regexp.MustCompile(`"(ECHOPILOT_[A-Z0-9_]+)"`)

// envKeys collects the ECHOPILOT_* string literals of every package the
// command at cmdDir imports from this repository (generated code aside),
// so a variable is credited only to binaries that can read it.
func envKeys(root, cmdDir string) (map[string]bool, error) {
	keys := map[string]bool{}
	seen := map[string]bool{}
	fset := token.NewFileSet()
	queue := []string{cmdDir}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		if seen[dir] {
			continue
		}
		seen[dir] = true
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			for _, m := range envKeyRE.FindAllSubmatch(src, -1) {
				keys[string(m[1])] = true
			}
			file, err := parser.ParseFile(fset, f, src, parser.ImportsOnly)
			if err != nil {
				return nil, err
			}
			for _, imp := range file.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if rest, ok := strings.CutPrefix(p, modulePrefix); ok && !strings.HasPrefix(rest, "gen/") {
					queue = append(queue, rest)
				}
			}
		}
	}
	return keys, nil
}

// localModules follows the local replace directives from module's go.mod:
// with GOWORK=off (the Dockerfiles' build) those directories must be there.
func localModules(root, module string) ([]string, error) {
	seen := map[string]bool{}
	var visit func(dir string) error
	visit = func(dir string) error {
		if seen[dir] {
			return nil
		}
		seen[dir] = true
		data, err := os.ReadFile(filepath.Join(root, dir, "go.mod"))
		if err != nil {
			return err
		}
		// Parse, not ParseLax: ParseLax drops replace directives.
		f, err := modfile.Parse(dir+"/go.mod", data, nil)
		if err != nil {
			return err
		}
		for _, rep := range f.Replace {
			if modfile.IsDirectoryPath(rep.New.Path) {
				if err := visit(path.Clean(path.Join(dir, rep.New.Path))); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := visit(module); err != nil {
		return nil, err
	}
	var dirs []string
	for d := range seen {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	return dirs, nil
}

var (
	protoPackageRE = regexp.MustCompile(`(?m)^package\s+([\w.]+)\s*;`)
	protoServiceRE = regexp.MustCompile(`(?m)^service\s+(\w+)\s*\{`)
)

// protoServices returns the full names of the gRPC services declared in
// proto/echopilot/<name>/v1.
func protoServices(root, name string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(root, "proto", "echopilot", name, "v1", "*.proto"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		pkg := protoPackageRE.FindSubmatch(src)
		if pkg == nil {
			continue
		}
		for _, m := range protoServiceRE.FindAllSubmatch(src, -1) {
			out = append(out, string(pkg[1])+"."+string(m[1]))
		}
	}
	slices.Sort(out)
	return out, nil
}

var backendNameRE = regexp.MustCompile(`Name:\s*"([a-z]+)"`)

// gatewayBackends reads the backend names from gateway.Backends().
func gatewayBackends(root string) ([]string, error) {
	const file = "gateway/internal/gateway/gateway.go"
	src, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		return nil, err
	}
	_, body, ok := strings.Cut(string(src), "func Backends() []Backend {")
	if !ok {
		return nil, fmt.Errorf("%s: no func Backends() []Backend", file)
	}
	body, _, _ = strings.Cut(body, "\n}\n")
	var names []string
	for _, m := range backendNameRE.FindAllStringSubmatch(body, -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no backends found in Backends()", file)
	}
	return names, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
