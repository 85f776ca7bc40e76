package check

import (
	"path"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Layout checks deploy/ (at deployDir on fsys) against the repository: a
// base and a Dockerfile for every deployable, none for anything else, and
// Dockerfiles that build what the repository says.
func Layout(fsys filesys.FileSystem, deployDir string, repo *Repo) []Violation {
	var out []Violation
	fail := func(obj, msg string) { out = append(out, Violation{Object: obj, Msg: msg}) }

	bases, err := fsys.ReadDir(path.Join(deployDir, "base"))
	if err != nil {
		fail("base/", err.Error())
	}
	var baseNames []string
	for _, b := range bases {
		if fsys.IsDir(path.Join(deployDir, "base", b)) {
			baseNames = append(baseNames, b)
		}
	}
	files, err := fsys.Glob(path.Join(deployDir, "docker", "*.Dockerfile"))
	if err != nil {
		fail("docker/", err.Error())
	}
	var dockerNames []string
	for _, f := range files {
		dockerNames = append(dockerNames, strings.TrimSuffix(path.Base(f), ".Dockerfile"))
	}
	for _, name := range repo.Names() {
		if !slices.Contains(baseNames, name) {
			fail("base/"+name, "missing: the repository builds "+name)
		}
		if !slices.Contains(dockerNames, name) {
			fail("docker/"+name+".Dockerfile", "missing: the repository builds "+name)
		}
	}
	for _, b := range baseNames {
		if repo.Deployables[b] == nil {
			fail("base/"+b, "a base for a service that does not exist: no services/"+b+"/cmd/"+b+" in the repository")
		}
	}
	for _, name := range dockerNames {
		obj := "docker/" + name + ".Dockerfile"
		dep := repo.Deployables[name]
		if dep == nil {
			fail(obj, "a Dockerfile for a service that does not exist: no services/"+name+"/cmd/"+name+" in the repository")
			continue
		}
		src, err := fsys.ReadFile(path.Join(deployDir, "docker", name+".Dockerfile"))
		if err != nil {
			fail(obj, err.Error())
			continue
		}
		for _, msg := range Dockerfile(string(src), dep, repo.GoVersion) {
			fail(obj, msg)
		}
	}
	return out
}

type instruction struct{ cmd, args string }

// parseDockerfile splits a Dockerfile into instructions, joining
// continuation lines and dropping comments.
func parseDockerfile(src string) []instruction {
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(src, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "#") || (t == "" && cur.Len() == 0) {
			continue
		}
		if more, ok := strings.CutSuffix(t, "\\"); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(t)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	return out
}

var digestRE = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

const runtimeBase = "gcr.io/distroless/static-debian12:nonroot@"

// Dockerfile checks one deployable's Dockerfile: two stages pinned by
// digest (the Go of go.work, distroless nonroot), every local module its
// GOWORK=off build needs copied in, the binary built by deploy/build.sh
// (what CI runs too), and a numeric non-root user.
func Dockerfile(src string, dep *Deployable, goVersion string) []string {
	var out []string
	var stages [][]instruction
	for _, in := range parseDockerfile(src) {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		return []string{"must be multi-stage: a build stage and a runtime stage"}
	}
	for _, st := range stages {
		if img := fromImage(st[0].args); !digestRE.MatchString(img) {
			out = append(out, "FROM "+img+" is not pinned by digest (@sha256:…)")
		}
	}
	build, final := stages[0], stages[len(stages)-1]
	if img := fromImage(build[0].args); !strings.HasPrefix(img, "golang:"+goVersion+"-") && !strings.HasPrefix(img, "golang:"+goVersion+"@") {
		out = append(out, "build stage "+img+" is not golang:"+goVersion+", the Go of go.work")
	}
	if img := fromImage(final[0].args); !strings.HasPrefix(img, runtimeBase) {
		out = append(out, "runtime stage "+img+" is not "+strings.TrimSuffix(runtimeBase, "@"))
	}

	copied := map[string]bool{}
	built := false
	for _, in := range build {
		switch in.cmd {
		case "COPY":
			if f := strings.Fields(in.args); len(f) >= 2 {
				for _, s := range f[:len(f)-1] {
					copied[strings.TrimSuffix(s, "/")] = true
				}
			}
		case "RUN":
			built = built || strings.Contains(in.args+" ", "deploy/build.sh "+dep.Name+" ")
		}
	}
	for _, m := range append(slices.Clone(dep.LocalModules), "deploy/build.sh") {
		if !copied[m] {
			out = append(out, "build stage does not COPY "+m+", which the GOWORK=off build of "+dep.Module+" needs")
		}
	}
	if !built {
		out = append(out, "build stage does not RUN deploy/build.sh "+dep.Name+", the build CI runs")
	}

	var user, entry string
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = in.args
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || strings.Trim(uid, "0123456789") != "" {
		out = append(out, "runtime stage must set a numeric non-root USER (the kubelet can verify runAsNonRoot only for a number), has "+quote(user))
	}
	if want := `["/` + dep.Name + `"]`; entry != want {
		out = append(out, "ENTRYPOINT must be "+want+", has "+quote(entry))
	}
	return out
}

// fromImage is the image of a FROM instruction's arguments.
func fromImage(args string) string {
	for _, f := range strings.Fields(args) {
		if !strings.HasPrefix(f, "--") {
			return f
		}
	}
	return ""
}

func quote(s string) string { return `"` + s + `"` }
