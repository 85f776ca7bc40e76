// Package deploy holds the Kubernetes manifests and Dockerfiles of the
// EchoPilot deployables; its tests validate them offline, with no cluster
// and no network.
package deploy

import (
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

// TestLayout: a base and a Dockerfile for each deployable in the
// repository, none for anything else, Dockerfiles that build it.
func TestLayout(t *testing.T) {
	for _, v := range check.Layout(filesys.MakeFsOnDisk(), ".", loadRepo(t)) {
		t.Error(v)
	}
}

func loadRepo(t *testing.T) *check.Repo {
	t.Helper()
	repo, err := check.LoadRepo("..")
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
