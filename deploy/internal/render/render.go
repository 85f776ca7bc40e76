// Package render builds a kustomization the way `kustomize build` does, in
// process, so neither CI nor a developer needs the kustomize binary.
package render

import (
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Build renders the kustomization in dir (an overlay or a base) on fsys.
func Build(fsys filesys.FileSystem, dir string) (resmap.ResMap, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return m, nil
}

// Docs renders dir and returns each object as its own YAML document.
func Docs(fsys filesys.FileSystem, dir string) ([][]byte, error) {
	m, err := Build(fsys, dir)
	if err != nil {
		return nil, err
	}
	var docs [][]byte
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		docs = append(docs, b)
	}
	return docs, nil
}
