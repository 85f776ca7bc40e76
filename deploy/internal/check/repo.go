package check

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
)

// Deployable is something the repository builds and deploys: a service
// (services/<name>/cmd/<name>) or the gateway (gateway/cmd/gateway).
type Deployable struct {
	Name    string
	Module  string // repo-relative module directory: services/tenancy, gateway
	Gateway bool
	// GRPCServices are the full names of the services in the compiled proto
	// package echopilot.<name>.v1: what its health checks answer for.
	GRPCServices []string
	// EnvKeys are the variables its binary reads, as its --print-config
	// lists them.
	EnvKeys map[string]bool
	// LocalModules are the repo-relative module directories its build needs:
	// its own and every local replace target, transitively.
	LocalModules []string
	// Backends are the services the gateway dials, as its --print-config
	// declares them (gateway only).
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

// LoadRepo reads the deployables of the repository at root. It builds
// their binaries (see buildBinaries), so it takes a while the first time.
func LoadRepo(root string) (*Repo, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
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
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// load fills in what the deployables' binaries and protos say of them.
func (r *Repo) load() error {
	deps := make([]*Deployable, 0, len(r.Deployables))
	for _, n := range r.Names() {
		d := r.Deployables[n]
		var err error
		if d.LocalModules, err = localModules(r.Root, d.Module); err != nil {
			return fmt.Errorf("%s: %w", d.Name, err)
		}
		if !d.Gateway {
			if d.GRPCServices, err = protoServices(d.Name); err != nil {
				return fmt.Errorf("%s: %w", d.Name, err)
			}
		}
		deps = append(deps, d)
	}
	dir, err := os.MkdirTemp("", "deploy-check-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := buildBinaries(r.Root, dir, deps); err != nil {
		return err
	}
	for _, d := range deps {
		f, err := printConfig(filepath.Join(dir, d.Name))
		if err != nil {
			return err
		}
		d.EnvKeys = map[string]bool{}
		for _, s := range f.Settings {
			d.EnvKeys[s.Env] = true
		}
		if d.Gateway {
			if d.Backends = f.Facts.Backends; len(d.Backends) == 0 {
				return fmt.Errorf("%s --print-config declares no backends", d.Name)
			}
		}
	}
	return nil
}

// addrKey is the variable a backend's address comes from; the gateway
// registers one per backend (gateway/cmd/gateway).
func addrKey(name string) string { return "ECHOPILOT_" + strings.ToUpper(name) + "_ADDR" }

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

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
