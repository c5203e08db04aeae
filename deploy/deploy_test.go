// Package deploy_test checks the deployment files of deploy/ against the code they
// deploy: nothing here can be run with Docker or Kubernetes in the test, so every file
// is parsed with the tools' own libraries (compose-go, the Kubernetes API types) and
// compared with what the relay really reads and exports. The relay's variables come
// from `relay help env` of a relay built by the test, its metric names from the
// /metrics of that relay forwarding an event (PostgreSQL of internal/dbtest, the
// in-process Kafka broker of internal/kafkatest).
package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/millrace/millrace/internal/syncbuf"
)

// Paths of the files under test, relative to deploy/ (the test's working directory).
const (
	composeFile      = "docker-compose.yml"
	dockerfile       = "Dockerfile"
	dockerignoreFile = "Dockerfile.dockerignore"
	prometheusFile   = "prometheus/prometheus.yml"
	datasourcesFile  = "grafana/provisioning/datasources/prometheus.yml"
	dashboardsFile   = "grafana/provisioning/dashboards/dashboard.yml"
	dashboardFile    = "grafana/dashboards/millrace.json"
	kubernetesDir    = "kubernetes"
	relayPkg         = "./cmd/relay"
)

// goRuntimeVars are variables of the Go runtime that a container may set besides the
// relay's own.
var goRuntimeVars = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true, "GOGC": true, "GODEBUG": true}

// ---------------------------------------------------------------------------------
// The relay, built once.

// builds are the binaries the test built, by package, in one temporary directory.
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]*build
}

type build struct {
	once sync.Once
	bin  string
	err  error
}

var relayVarsOnce struct {
	once sync.Once
	vars map[string]string // variable -> default ("" for none)
	err  error
}

// testVersion is what the test's binaries are stamped with, through the
// Dockerfile's own -ldflags.
const testVersion = "v0.0.0-deploy-test"

func TestMain(m *testing.M) {
	code := m.Run()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
	os.Exit(code)
}

func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// raceEnabled reports whether the test binary was built with -race; the binaries are
// built the same way so that they share the build cache with their own tests.
func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return true
			}
		}
	}
	return false
}

// binary builds the main package pkg (./path from the repository root) once, with
// the -ldflags of deploy/Dockerfile, and returns its path.
func binary(t testing.TB, pkg string) string {
	t.Helper()
	builds.mu.Lock()
	if builds.bins == nil {
		builds.bins = map[string]*build{}
	}
	b := builds.bins[pkg]
	if b == nil {
		b = &build{}
		builds.bins[pkg] = b
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "deploy-test-")
		if err != nil {
			builds.mu.Unlock()
			t.Fatal(err)
		}
		builds.dir = dir
	}
	dir := builds.dir
	builds.mu.Unlock()

	b.once.Do(func() {
		ldflags, err := dockerfileLdflags(testVersion)
		if err != nil {
			b.err = err
			return
		}
		bin := filepath.Join(dir, path.Base(pkg))
		// Not -trimpath, unlike the Dockerfile: the packages compiled for the
		// package's own tests are reused from the build cache.
		args := []string{"build", "-ldflags", ldflags, "-o", bin}
		if raceEnabled() {
			args = append(args, "-race")
		}
		args = append(args, pkg)
		cmd := exec.Command(goTool(), args...)
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		b.bin = bin
	})
	if b.err != nil {
		t.Fatalf("building %s: %v", pkg, b.err)
	}
	return b.bin
}

func relayBinary(t testing.TB) string { return binary(t, relayPkg) }

// relayVars returns every variable the relay reads with its default, from the
// table that `relay help env` prints.
func relayVars(t testing.TB) map[string]string {
	t.Helper()
	bin := relayBinary(t)
	v := &relayVarsOnce
	v.once.Do(func() {
		out, err := exec.Command(bin, "help", "env").Output()
		if err != nil {
			v.err = fmt.Errorf("relay help env: %v", err)
			return
		}
		v.vars, v.err = parseEnvTable(string(out))
	})
	if v.err != nil {
		t.Fatal(v.err)
	}
	return v.vars
}

var envRow = regexp.MustCompile("^\\| `([A-Z0-9_]+)` \\| [^|]* \\| ([^|]*) \\|")

// parseEnvTable reads the Markdown table of `relay help env`.
func parseEnvTable(s string) (map[string]string, error) {
	vars := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		m := envRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		def := strings.Trim(strings.TrimSpace(m[2]), "`")
		if def == "–" {
			def = ""
		}
		vars[m[1]] = def
	}
	for _, must := range []string{"RELAY_DATABASE_URL", "RELAY_KAFKA_BROKERS", "RELAY_HTTP_ADDR", "RELAY_SHUTDOWN_TIMEOUT"} {
		if _, ok := vars[must]; !ok {
			return nil, fmt.Errorf("relay help env does not list %s; the table format changed?\n%s", must, s)
		}
	}
	return vars, nil
}

func TestParseEnvTable(t *testing.T) {
	vars := relayVars(t)
	if got := vars["RELAY_HTTP_ADDR"]; got != "127.0.0.1:9464" {
		t.Errorf("default of RELAY_HTTP_ADDR = %q, want 127.0.0.1:9464", got)
	}
	if got, ok := vars["RELAY_DATABASE_URL"]; !ok || got != "" {
		t.Errorf("RELAY_DATABASE_URL: default %q, listed %v; want listed without default", got, ok)
	}
	if _, ok := vars["LOG_FORMAT"]; !ok {
		t.Error("LOG_FORMAT is not listed")
	}
	out, err := exec.Command(relayBinary(t), "version").Output()
	if err != nil || !strings.Contains(string(out), testVersion) {
		t.Errorf("relay built with the Dockerfile's -ldflags prints %q (%v), want version %s", out, err, testVersion)
	}
}

// ---------------------------------------------------------------------------------
// Helpers.

// goList runs go list in the repository and returns its output lines.
func goList(t testing.TB, args ...string) []string {
	t.Helper()
	cmd := exec.Command(goTool(), append([]string{"list"}, args...)...)
	cmd.Dir = repoRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.Fields(string(out))
}

// requireMainPackage fails unless pkg (./path from the repository root) is a main
// package.
func requireMainPackage(t *testing.T, pkg string) {
	t.Helper()
	if got := goList(t, "-f", "{{.Name}}", pkg); len(got) != 1 || got[0] != "main" {
		t.Fatalf("%s is package %v, want a main package", pkg, got)
	}
}

func readStrict(t testing.TB, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// ---------------------------------------------------------------------------------
// Running the relay.

// requireValidSettings starts the relay with exactly env and args, with the hosts of
// RELAY_DATABASE_URL and RELAY_KAFKA_BROKERS replaced by a closed port of 127.0.0.1
// (so that nothing outside this machine is contacted), and fails when it exits 2:
// invalid settings. Validation runs before anything else and exits at once; a relay
// that logs (it connects) or fails otherwise has accepted its settings.
func requireValidSettings(t *testing.T, env map[string]string, args []string) {
	t.Helper()
	bin := relayBinary(t)
	local := closedPort(t)
	e := map[string]string{}
	for k, v := range env {
		e[k] = v
	}
	if v, ok := e["RELAY_DATABASE_URL"]; ok {
		u, err := url.Parse(v)
		if err != nil {
			t.Fatalf("RELAY_DATABASE_URL %q: %v", v, err)
		}
		u.Host = local
		e["RELAY_DATABASE_URL"] = u.String()
	}
	if v, ok := e["RELAY_KAFKA_BROKERS"]; ok {
		brokers := strings.Split(v, ",")
		for i := range brokers {
			brokers[i] = local
		}
		e["RELAY_KAFKA_BROKERS"] = strings.Join(brokers, ",")
	}
	if _, ok := e["RELAY_HTTP_ADDR"]; ok {
		e["RELAY_HTTP_ADDR"] = "127.0.0.1:0" // never bind every interface of the test machine
	}
	p := startProc(t, bin, e, args...)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if p.exited() {
			if p.code == 2 {
				t.Fatalf("relay %v refused its settings (exit 2):\n%s", args, p.stderr.String())
			}
			return
		}
		if len(logEvents(p.stderr.String())) > 0 {
			p.kill()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay %v neither logged nor exited within 15s:\n%s", args, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closedPort returns 127.0.0.1:port of a port nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// proc is a running process (the relay, the order service), killed when the test ends.
type proc struct {
	cmd    *exec.Cmd
	stderr syncbuf.Buffer
	done   chan struct{}
	code   int
}

// startProc starts bin with exactly env (besides PATH and HOME) and args.
func startProc(t testing.TB, bin string, env map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start relay: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("relay %v (exit %d) stderr:\n%s", args, p.code, p.stderr.String())
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stop sends SIGTERM and waits for a graceful exit 0.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.code != 0 {
			t.Errorf("relay exited %d after SIGTERM", p.code)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("relay did not stop within 30s of SIGTERM")
	}
}

// httpAddr waits for the "http server listening" log line and returns its address.
func (p *proc) httpAddr(t testing.TB) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, ev := range logEvents(p.stderr.String()) {
			if ev["message"] == "http server listening" {
				if a, ok := ev["addr"].(string); ok {
					return a
				}
			}
		}
		if p.exited() {
			t.Fatalf("relay exited %d before listening:\n%s", p.code, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("relay did not log its http address:\n%s", p.stderr.String())
	return ""
}

func logEvents(s string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s, "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev != nil {
			out = append(out, ev)
		}
	}
	return out
}

func get(t testing.TB, u string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, b)
	}
	return string(b)
}
