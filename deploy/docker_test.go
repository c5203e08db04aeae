package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Tests of Dockerfile and Dockerfile.dockerignore, parsed: no Docker runs here.

// instruction is one instruction of a Dockerfile, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
}

func parseDockerfile(b []byte) []instruction {
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

func readDockerfile(t testing.TB) []instruction {
	t.Helper()
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	return parseDockerfile(b)
}

var ldflagsRe = regexp.MustCompile(`-ldflags "([^"]*)"`)

// dockerfileLdflags returns the -ldflags of the Dockerfile's go build, with VERSION
// set to version.
func dockerfileLdflags(version string) (string, error) {
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		return "", err
	}
	for _, in := range parseDockerfile(b) {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		m := ldflagsRe.FindStringSubmatch(in.args)
		if m == nil {
			return "", fmt.Errorf("%s: go build has no -ldflags \"...\"", dockerfile)
		}
		return strings.ReplaceAll(m[1], "${VERSION}", version), nil
	}
	return "", fmt.Errorf("%s: no RUN go build", dockerfile)
}

// dockerfileArg returns the default of ARG name.
func dockerfileArg(t testing.TB, name string) string {
	t.Helper()
	for _, in := range readDockerfile(t) {
		if in.cmd == "ARG" {
			if k, v, ok := strings.Cut(in.args, "="); ok && k == name {
				return v
			}
		}
	}
	t.Fatalf("%s: no ARG %s=<default>", dockerfile, name)
	return ""
}

func TestDockerfile(t *testing.T) {
	ins := readDockerfile(t)
	var froms []string
	lastFrom := -1
	for i, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, in.args)
			lastFrom = i
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM %v: want a build stage and a final stage", froms)
	}
	for _, f := range froms {
		img, _, _ := strings.Cut(f, " ")
		if _, tag, ok := strings.Cut(img, ":"); !ok || tag == "latest" {
			t.Errorf("FROM %s: pin the image's tag", img)
		}
	}
	if !strings.HasPrefix(froms[0], "golang:1.26") {
		t.Errorf("build stage FROM %s, want golang:1.26 (the module's Go)", froms[0])
	}
	if final := froms[len(froms)-1]; final != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static-debian12:nonroot", final)
	}

	pkg := dockerfileArg(t, "PKG")
	if pkg != relayPkg {
		t.Errorf("ARG PKG=%s, want %s by default", pkg, relayPkg)
	}
	t.Run("default package builds a main", func(t *testing.T) { requireMainPackage(t, pkg) })

	var build string
	for _, in := range ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
	}
	env := ""
	for _, in := range ins[:lastFrom] {
		if in.cmd == "ENV" {
			env += " " + in.args
		}
	}
	if !strings.Contains(env+" "+build, "CGO_ENABLED=0") {
		t.Errorf("the build stage does not set CGO_ENABLED=0: distroless/static has no libc")
	}
	for _, want := range []string{"-trimpath", "-s -w", "-X main.version=${VERSION}", `"${PKG}"`} {
		if !strings.Contains(build, want) {
			t.Errorf("RUN %s: missing %s", build, want)
		}
	}

	// The final stage: the binary, non-root, the relay's port.
	var user, expose, entrypoint, copyDst string
	for _, in := range ins[lastFrom+1:] {
		switch in.cmd {
		case "USER":
			user = in.args
		case "EXPOSE":
			expose = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "COPY":
			f := strings.Fields(in.args)
			copyDst = f[len(f)-1]
		}
	}
	if user != "nonroot:nonroot" {
		t.Errorf("final stage USER %q, want nonroot:nonroot", user)
	}
	if port := addrPort(t, "RELAY_HTTP_ADDR", composeRelayHTTPAddr(t)); expose != strconv.Itoa(port) {
		t.Errorf("EXPOSE %s, want the relay's port %d", expose, port)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) != 1 || ep[0] != copyDst {
		t.Errorf("ENTRYPOINT %s: want the exec form [%q] of the copied binary", entrypoint, copyDst)
	}
}

// dockerignore is the pattern list of a .dockerignore file, with Docker's
// semantics: a pattern matches a path or any of its parent directories, ** matches
// any number of directories, a leading ! re-includes, and the last match wins.
type dockerignore []string

func readDockerignore(t testing.TB) dockerignore {
	t.Helper()
	b, err := os.ReadFile(dockerignoreFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dockerignore
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		d = append(d, line)
	}
	return d
}

func (d dockerignore) excludes(p string) bool {
	excluded := false
	for _, pat := range d {
		neg := strings.HasPrefix(pat, "!")
		pat = path.Clean(strings.TrimPrefix(strings.TrimPrefix(pat, "!"), "/"))
		for dir := p; dir != "." && dir != "/"; dir = path.Dir(dir) {
			if globMatch(strings.Split(pat, "/"), strings.Split(dir, "/")) {
				excluded = !neg
				break
			}
		}
	}
	return excluded
}

func globMatch(pat, segs []string) bool {
	if len(pat) == 0 {
		return len(segs) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(segs); i++ {
			if globMatch(pat[1:], segs[i:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	ok, err := path.Match(pat[0], segs[0])
	return err == nil && ok && globMatch(pat[1:], segs[1:])
}

func TestDockerignoreMatcher(t *testing.T) {
	d := dockerignore{".git", "deploy", "**/*_test.go", "**/testdata", "docs", "!docs/keep.md"}
	for p, want := range map[string]bool{
		".git/config":               true,
		"deploy/Dockerfile":         true,
		"adapter/publisher_test.go": true,
		"publisher_test.go":         true,
		"a/b/testdata/x.json":       true,
		"docs/other.md":             true,
		"docs/keep.md":              false,
		"adapter/publisher.go":      false,
		"go.mod":                    false,
		"cmd/relay/main.go":         false,
	} {
		if got := d.excludes(p); got != want {
			t.Errorf("excludes(%q) = %v, want %v", p, got, want)
		}
	}
}

// The build context keeps every file that `go build` of each image's package reads:
// go.mod, go.sum, and the Go (and embedded) files of the module's packages it imports.
func TestDockerignoreKeepsTheBuildInputs(t *testing.T) {
	ignore := readDockerignore(t)
	if !ignore.excludes(".git/HEAD") {
		t.Error(".git is sent as build context; exclude it")
	}
	pkgs := map[string]bool{dockerfileArg(t, "PKG"): true}
	for _, svc := range loadCompose(t).Services {
		if svc.Build != nil {
			pkgs[buildPkg(t, svc)] = true
		}
	}
	root := repoRoot(t)
	for pkg := range pkgs {
		t.Run(pkg, func(t *testing.T) {
			requireMainPackage(t, pkg)
			files := []string{"go.mod", "go.sum"}
			tmpl := `{{if and .Module .Module.Main}}{{$d := .Dir}}` +
				`{{range .GoFiles}}{{$d}}/{{.}} {{end}}{{range .EmbedFiles}}{{$d}}/{{.}} {{end}}{{end}}`
			for _, f := range goList(t, "-deps", "-f", tmpl, pkg) {
				rel, err := filepath.Rel(root, f)
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, filepath.ToSlash(rel))
			}
			if len(files) < 4 {
				t.Fatalf("go list found only %v", files)
			}
			for _, f := range files {
				if ignore.excludes(f) {
					t.Errorf("%s excludes %s, which go build of %s needs", dockerignoreFile, f, pkg)
				}
			}
		})
	}
}
