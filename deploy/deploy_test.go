// Package deploy holds the Kubernetes manifests and Dockerfiles of the
// EchoPilot deployables; its tests validate them offline, with no cluster
// and no network.
package deploy

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/echopilot/echopilot/deploy/internal/check"
	"github.com/echopilot/echopilot/deploy/internal/render"
)

// policies says what each overlay must hold to; a new overlay without an
// entry fails TestOverlays instead of going unchecked.
var policies = map[string]check.Policy{
	"dev":  {MinReplicas: 1},
	"prod": {MinReplicas: 2, Production: true},
}

// TestOverlays renders every overlay as kustomize would, decodes every
// object strictly into its API type, and holds it to the Pod Security
// "restricted" profile and to our own rules (see internal/check).
func TestOverlays(t *testing.T) {
	repo := loadRepo(t)
	fsys := filesys.MakeFsOnDisk()
	overlays, err := fsys.ReadDir("overlays")
	if err != nil {
		t.Fatal(err)
	}
	if len(overlays) == 0 {
		t.Fatal("no overlays")
	}
	for _, name := range overlays {
		t.Run(name, func(t *testing.T) {
			pol, ok := policies[name]
			if !ok {
				t.Fatalf("overlays/%s has no entry in policies", name)
			}
			objs := decode(t, renderDocs(t, fsys, "overlays/"+name))
			for _, v := range check.Overlay(objs, repo, pol) {
				t.Error(v)
			}
		})
	}
}

// components are optional components that no overlay includes, each
// checked inside a kustomization under testdata that adds it to an
// overlay, held to that overlay's policy.
var components = map[string]string{
	"audit-monitor": "prod",
}

// TestComponents renders each optional component on its overlay and checks
// the result as TestOverlays checks an overlay; a component without an
// entry fails, as does one that an overlay already includes.
func TestComponents(t *testing.T) {
	repo := loadRepo(t)
	fsys := filesys.MakeFsOnDisk()
	dirs, err := fsys.ReadDir("components")
	if err != nil {
		t.Fatal(err)
	}
	inOverlays := map[string]bool{}
	overlays, err := fsys.ReadDir("overlays")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range overlays {
		k, err := fsys.ReadFile("overlays/" + o + "/kustomization.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range dirs {
			if strings.Contains(string(k), "components/"+name+"\n") {
				inOverlays[name] = true
			}
		}
	}
	for _, name := range dirs {
		overlay, optional := components[name]
		switch {
		case inOverlays[name] && optional:
			t.Errorf("components/%s is in an overlay: drop it from components (TestOverlays checks it)", name)
			continue
		case inOverlays[name]:
			continue
		case !optional:
			t.Errorf("components/%s is in no overlay and has no entry in components: nothing checks it", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			objs := decode(t, renderDocs(t, fsys, "testdata/"+name))
			if len(objs.CronJobs) == 0 {
				t.Fatalf("testdata/%s renders no CronJob", name)
			}
			for _, v := range check.Overlay(objs, repo, policies[overlay]) {
				t.Error(v)
			}
		})
	}
}

// TestRepoFacts: what the binaries and the compiled protos say of the
// deployables, which every other check relies on: each service answers
// health checks for its own proto package and reads the settings every
// service shares; the gateway dials every service, each through a setting
// of its own.
func TestRepoFacts(t *testing.T) {
	repo := loadRepo(t)
	var services []string
	for _, name := range repo.Names() {
		dep := repo.Deployables[name]
		if dep.Gateway {
			continue
		}
		services = append(services, name)
		for _, s := range dep.GRPCServices {
			if !strings.HasPrefix(s, "echopilot."+name+".v1.") {
				t.Errorf("%s: gRPC service %s is not in package echopilot.%s.v1", name, s, name)
			}
		}
		for _, k := range []string{"ECHOPILOT_GRPC_ADDR", "ECHOPILOT_DATABASE_URL", "ECHOPILOT_MAX_CONNECTION_AGE"} {
			if !dep.EnvKeys[k] {
				t.Errorf("%s --print-config does not list %s", name, k)
			}
		}
	}
	gw := repo.Deployables["gateway"]
	if gw == nil {
		t.Fatal("no gateway among the deployables")
	}
	if got := slices.Sorted(slices.Values(gw.Backends)); !slices.Equal(got, services) {
		t.Errorf("the gateway's backends are %q, want every service %q", got, services)
	}
	for _, b := range gw.Backends {
		if k := "ECHOPILOT_" + strings.ToUpper(b) + "_ADDR"; !gw.EnvKeys[k] {
			t.Errorf("gateway --print-config does not list %s", k)
		}
	}
}

// TestLayout: a base and a Dockerfile for each deployable in the
// repository, none for anything else, Dockerfiles that build it.
func TestLayout(t *testing.T) {
	for _, v := range check.Layout(filesys.MakeFsOnDisk(), ".", loadRepo(t)) {
		t.Error(v)
	}
}

// repoOnce loads the repository once for all tests: LoadRepo builds every
// deployable, and the checks only read what it returns.
var repoOnce = sync.OnceValues(func() (*check.Repo, error) { return check.LoadRepo("..") })

func loadRepo(t *testing.T) *check.Repo {
	t.Helper()
	repo, err := repoOnce()
	if err != nil {
		t.Fatal(err)
	}
	if len(repo.Deployables) == 0 {
		t.Fatal("found no deployables in the repository")
	}
	return repo
}

func renderDocs(t *testing.T, fsys filesys.FileSystem, dir string) [][]byte {
	t.Helper()
	docs, err := render.Docs(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func decode(t *testing.T, docs [][]byte) *check.Objects {
	t.Helper()
	objs, err := check.Decode(docs)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}
