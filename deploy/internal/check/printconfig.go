package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// binaryFacts is what a binary says of itself with --print-config
// (platform/config.Description): only the parts the checks use.
type binaryFacts struct {
	Name     string `json:"name"`
	Settings []struct {
		Env string `json:"env"`
	} `json:"settings"`
	Facts struct {
		Backends []string `json:"backends"`
	} `json:"facts"`
}

// buildBinaries builds every deployable's command from the working tree
// into dir, in one go build: the binaries then say what they read
// (--print-config), which no reading of their source can miss. The build
// is the repository's workspace build (this module's tests run with
// GOWORK=off, so GOWORK names root/go.work for the child) and shares the
// go build cache, so only what changed is compiled and the cost is mostly
// linking. CGO_ENABLED=0 as in deploy/build.sh: no C toolchain needed.
//
// Not the binaries make deploy-build leaves in .bin/static: whether those
// match the working tree is something only a build can tell, and a stale
// one would check the manifests against yesterday's settings.
func buildBinaries(root, dir string, deps []*Deployable) error {
	// No symbol table or DWARF, no VCS stamp: half the link time, and
	// nothing the binaries' --print-config needs.
	args := []string{"build", "-ldflags=-s -w", "-buildvcs=false", "-o", dir + string(filepath.Separator)}
	for _, d := range deps {
		args = append(args, "./"+d.Module+"/cmd/"+d.Name)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build of the deployables: %w\n%s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// printConfig runs bin --print-config in an empty environment, so nothing
// a developer has set (a secret, a database URL) reaches the binary.
func printConfig(bin string) (*binaryFacts, error) {
	cmd := exec.Command(bin, "--print-config")
	cmd.Env = []string{}
	cmd.Dir = filepath.Dir(bin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s --print-config: %w\n%s", filepath.Base(bin), err, strings.TrimSpace(stderr.String()))
	}
	var f binaryFacts
	if err := json.Unmarshal(stdout.Bytes(), &f); err != nil {
		return nil, fmt.Errorf("%s --print-config: %w", filepath.Base(bin), err)
	}
	return &f, nil
}
