// Command render prints the YAML of a kustomization, as `kustomize build`
// would: GOWORK=off go run ./cmd/render overlays/prod | kubectl apply -f -
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/echopilot/echopilot/deploy/internal/render"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: render <kustomization dir>, e.g. overlays/prod")
	}
	m, err := render.Build(filesys.MakeFsOnDisk(), args[0])
	if err != nil {
		return err
	}
	out, err := m.AsYaml()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
