package deploy_test

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// Tests of docker-compose.yml, loaded with compose-go as docker compose loads it.

func loadCompose(t testing.TB) *types.Project {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  wd,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(wd, composeFile), Content: b}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("millrace", true) })
	if err != nil {
		t.Fatalf("compose-go cannot load %s: %v", composeFile, err)
	}
	return p
}

func service(t testing.TB, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("%s has no service %q", composeFile, name)
	}
	return s
}

// buildPkg returns the package a built service's image holds.
func buildPkg(t testing.TB, svc types.ServiceConfig) string {
	t.Helper()
	if v, ok := svc.Build.Args["PKG"]; ok && v != nil {
		return *v
	}
	return dockerfileArg(t, "PKG")
}

// isRelay reports whether svc runs the relay's image.
func isRelay(t testing.TB, svc types.ServiceConfig) bool {
	return svc.Build != nil && buildPkg(t, svc) == relayPkg
}

func env(svc types.ServiceConfig) map[string]string {
	m := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			m[k] = *v
		}
	}
	return m
}

// composeRelayHTTPAddr is RELAY_HTTP_ADDR of the relay service.
func composeRelayHTTPAddr(t testing.TB) string {
	t.Helper()
	return env(service(t, loadCompose(t), "relay"))["RELAY_HTTP_ADDR"]
}

// addrPort checks that addr (of variable name) listens on every interface and
// returns its port.
func addrPort(t testing.TB, name, addr string) int {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, addr, err)
	}
	if host != "0.0.0.0" {
		t.Errorf("%s=%q listens on %q: in a container it must be 0.0.0.0 to be reachable", name, addr, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a fixed port", name, addr)
	}
	return n
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"kafka", "postgres", "relay-migrate", "relay", "order-service", "prometheus", "grafana"} {
		service(t, p, name)
	}
	for name, svc := range p.Services {
		t.Run(name, func(t *testing.T) {
			if svc.Build == nil {
				img := svc.Image
				if img == "" {
					t.Fatal("neither build nor image")
				}
				if i := strings.LastIndex(img, ":"); i < 0 || strings.Contains(img[i:], "/") || img[i+1:] == "latest" {
					if !strings.Contains(img, "@sha256:") {
						t.Errorf("image %q: pin a tag other than latest", img)
					}
				}
				return
			}
			b := svc.Build
			if st, err := os.Stat(b.Context); err != nil || !st.IsDir() {
				t.Fatalf("build context %q: %v", b.Context, err)
			}
			df := b.Dockerfile
			if !filepath.IsAbs(df) {
				df = filepath.Join(b.Context, df)
			}
			wd, _ := os.Getwd()
			if abs, _ := filepath.Abs(dockerfile); df != abs {
				t.Errorf("dockerfile %s, want %s", df, abs)
			}
			if b.Context != filepath.Dir(wd) {
				t.Errorf("build context %s, want the repository root %s", b.Context, filepath.Dir(wd))
			}
			if svc.Image != "" && svc.PullPolicy != types.PullPolicyBuild {
				t.Errorf("image %q is built here: set pull_policy: build so that compose never pulls a stranger's image of that name", svc.Image)
			}
			t.Run("package", func(t *testing.T) { requireMainPackage(t, buildPkg(t, svc)) })
		})
	}
}

func TestComposeRelayEnvironment(t *testing.T) {
	p := loadCompose(t)
	vars := relayVars(t)
	for _, name := range []string{"relay", "relay-migrate"} {
		e := env(service(t, p, name))
		for _, must := range []string{"RELAY_DATABASE_URL", "RELAY_KAFKA_BROKERS"} {
			if e[must] == "" {
				t.Errorf("service %s does not set %s", name, must)
			}
		}
	}
	for name, svc := range p.Services {
		if !isRelay(t, svc) {
			continue
		}
		for k := range svc.Environment {
			if _, ok := vars[k]; !ok && (strings.HasPrefix(k, "RELAY_") || strings.HasPrefix(k, "LOG_")) {
				t.Errorf("service %s sets %s, which the relay does not read (relay help env)", name, k)
			}
		}
		if len(svc.Command) == 0 {
			t.Errorf("service %s runs the relay without a command: say run or migrate", name)
		}
	}
	if cmd := service(t, p, "relay-migrate").Command; !slices.Equal(cmd, []string{"migrate"}) {
		t.Errorf("relay-migrate runs %v, want [migrate]", cmd)
	}
	if cmd := service(t, p, "relay").Command; len(cmd) > 0 && cmd[0] != "run" {
		t.Errorf("relay runs %v, want run", cmd)
	}

	relay := service(t, p, "relay")
	port := addrPort(t, "RELAY_HTTP_ADDR", env(relay)["RELAY_HTTP_ADDR"])
	published := false
	for _, pc := range relay.Ports {
		if pc.Target == uint32(port) {
			published = true
		}
	}
	if !published {
		t.Errorf("relay publishes %+v, not its RELAY_HTTP_ADDR port %d", relay.Ports, port)
	}
	if targets := prometheusTargets(t); !slices.Contains(targets, net.JoinHostPort("relay", strconv.Itoa(port))) {
		t.Errorf("Prometheus scrapes %v, not relay:%d", targets, port)
	}
	shutdown := durationVar(t, env(relay), vars, "RELAY_SHUTDOWN_TIMEOUT")
	if relay.StopGracePeriod == nil || time.Duration(*relay.StopGracePeriod) <= shutdown {
		t.Errorf("relay's stop_grace_period %v is not above RELAY_SHUTDOWN_TIMEOUT %v: docker would SIGKILL a graceful stop", relay.StopGracePeriod, shutdown)
	}
}

// durationVar returns the duration of variable name from e, or the relay's default.
func durationVar(t testing.TB, e, vars map[string]string, name string) time.Duration {
	t.Helper()
	v, ok := e[name]
	if !ok {
		v = vars[name]
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

// The relay accepts the settings of every compose service that runs it: started with
// exactly their environment and command (the database and brokers pointed at a
// closed local port), it gets past validation, which exits 2 at once on any invalid
// setting.
func TestComposeRelaySettingsAreValid(t *testing.T) {
	p := loadCompose(t)
	for name, svc := range p.Services {
		if !isRelay(t, svc) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			requireValidSettings(t, env(svc), svc.Command)
		})
	}
}

// The order service of examples/outbox-demo writes, in writer mode, to the outbox
// and database the relay forwards, and accepts its command line and environment:
// with them (the database pointed at a closed local port) it gets past its flag and
// setting checks, which exit 2, and fails with 1 because the database does not
// answer.
func TestComposeOrderService(t *testing.T) {
	p := loadCompose(t)
	svc := service(t, p, "order-service")
	pkg := buildPkg(t, svc)
	requireMainPackage(t, pkg)

	flags := map[string]string{}
	for _, a := range svc.Command {
		k, v, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || !ok {
			t.Fatalf("order-service argument %q: write each flag as -name=value", a)
		}
		flags[k] = v
	}
	if flags["mode"] != "writer" {
		t.Errorf("order-service runs with -mode=%q, want writer: the relay forwards its events", flags["mode"])
	}
	vars := relayVars(t)
	e := env(svc)
	for _, name := range []string{"relay", "relay-migrate"} {
		re := env(service(t, p, name))
		outboxName, ok := re["RELAY_OUTBOX"]
		if !ok {
			outboxName = vars["RELAY_OUTBOX"]
		}
		if flags["outbox"] != outboxName {
			t.Errorf("order-service writes to outbox %q (-outbox), %s uses %q", flags["outbox"], name, outboxName)
		}
		if e["DATABASE_URL"] != re["RELAY_DATABASE_URL"] {
			t.Errorf("order-service writes to %q, %s reads %q", e["DATABASE_URL"], name, re["RELAY_DATABASE_URL"])
		}
	}

	local := closedPort(t)
	u, err := url.Parse(e["DATABASE_URL"])
	if err != nil || e["DATABASE_URL"] == "" {
		t.Fatalf("DATABASE_URL %q: %v", e["DATABASE_URL"], err)
	}
	u.Host = local
	run := map[string]string{"DATABASE_URL": u.String(), "KAFKA_BROKERS": local}
	proc := startProc(t, binary(t, pkg), run, svc.Command...)
	select {
	case <-proc.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("order-service %v did not give up on a closed database port within 20s:\n%s", svc.Command, proc.stderr.String())
	}
	if proc.code != 1 {
		t.Errorf("order-service %v exited %d, want 1 (database unreachable; 2 means refused flags or settings):\n%s",
			svc.Command, proc.code, proc.stderr.String())
	}
}

func TestComposeDependencies(t *testing.T) {
	p := loadCompose(t)
	oneShot := map[string]bool{} // services awaited until they complete
	adopted := map[string]bool{} // ... by a long-running service
	for name, svc := range p.Services {
		for dep, d := range svc.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on %s, which does not exist", name, dep)
				continue
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0 {
					t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if target.Restart != "" && target.Restart != types.RestartPolicyNo {
					t.Errorf("%s waits for %s to complete, but %s restarts (%s)", name, dep, dep, target.Restart)
				}
				oneShot[dep] = true
				if svc.Restart != "" && svc.Restart != types.RestartPolicyNo {
					adopted[dep] = true
				}
			case types.ServiceConditionStarted:
			default:
				t.Errorf("%s depends on %s with condition %q", name, dep, d.Condition)
			}
		}
	}
	want := map[string]map[string]string{
		"relay-migrate": {"postgres": types.ServiceConditionHealthy},
		"relay": {
			"kafka": types.ServiceConditionHealthy, "postgres": types.ServiceConditionHealthy,
			"relay-migrate": types.ServiceConditionCompletedSuccessfully,
		},
		"order-service": {
			"postgres": types.ServiceConditionHealthy, "relay-migrate": types.ServiceConditionCompletedSuccessfully,
		},
	}
	for name, deps := range want {
		svc := service(t, p, name)
		for dep, cond := range deps {
			if got := svc.DependsOn[dep].Condition; got != cond {
				t.Errorf("%s depends on %s with %q, want %q", name, dep, got, cond)
			}
		}
	}
	// `up --wait` fails on a container that exited unless a service that keeps
	// running waits for it to complete.
	for name := range oneShot {
		if !adopted[name] {
			t.Errorf("one-shot service %s is awaited by no long-running service (restart policy set): up --wait would fail when it exits", name)
		}
	}
}

func TestComposeVolumes(t *testing.T) {
	p := loadCompose(t)
	for name, svc := range p.Services {
		for _, v := range svc.Volumes {
			switch v.Type {
			case types.VolumeTypeBind:
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s bind-mounts %s, which does not exist: %v", name, v.Source, err)
				}
				if !v.ReadOnly {
					t.Errorf("%s bind-mounts %s read-write; configuration is mounted read-only", name, v.Source)
				}
			case types.VolumeTypeVolume:
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s mounts the volume %q, which is not declared under volumes:", name, v.Source)
				}
			}
		}
	}
	for _, name := range []string{"kafka", "postgres", "prometheus", "grafana"} {
		named := false
		for _, v := range service(t, p, name).Volumes {
			named = named || v.Type == types.VolumeTypeVolume
		}
		if !named {
			t.Errorf("%s keeps its data in no named volume", name)
		}
	}
}

// mountTarget returns where svc mounts the host path src (relative to deploy/).
func mountTarget(t testing.TB, svc types.ServiceConfig, src string) string {
	t.Helper()
	abs, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeBind && v.Source == abs {
			return v.Target
		}
	}
	t.Fatalf("service %s does not mount %s", svc.Name, src)
	return ""
}
