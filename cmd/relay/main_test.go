package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-sql-driver/mysql"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/internal/syncbuf"
	"github.com/millrace/millrace/outbox"
)

// The end-to-end tests build the real binary once and run it as a process against
// the real databases and the in-process Kafka broker of the test process.

// relayBin is the binary built by TestMain.
var relayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relay-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	relayBin = filepath.Join(dir, "relay")
	args := []string{"build", "-o", relayBin}
	if raceEnabled {
		// The relay process runs under the race detector too; its reports fail
		// the test that started it (see proc.wait).
		args = append(args, "-race")
	}
	args = append(args, "-ldflags", "-X main.version=v0.0.0-test", ".")
	cmd := exec.Command(goTool(), args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the relay:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// proc is a running relay process.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdout syncbuf.Buffer
	stderr syncbuf.Buffer
	done   chan struct{}
	code   int
	output *outputLog
}

// outputLog collects everything the relays of a test printed, for the secret scan.
type outputLog struct {
	mu  sync.Mutex
	all []string
}

func (o *outputLog) add(s string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	o.all = append(o.all, s)
	o.mu.Unlock()
}

func (o *outputLog) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.all, "\n")
}

// startRelay starts the relay with env (and no other variable) and args. The
// process is killed when the test ends if it still runs.
func startRelay(t testing.TB, out *outputLog, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, done: make(chan struct{}), output: out}
	p.cmd = exec.Command(relayBin, args...)
	p.cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start relay: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = -int(ws.Signal())
		}
		out.add(p.stdout.String())
		out.add(p.stderr.String())
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("relay %v (exit %d) stderr:\n%s", args, p.code, tail(p.stderr.String(), 6000))
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit code (minus the signal
// number when a signal killed it). It fails the test after timeout, and when the
// race detector reported a race in the relay.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("relay %v did not exit within %v\nstderr:\n%s", p.cmd.Args[1:], timeout, tail(p.stderr.String(), 4000))
	}
	if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
		p.t.Errorf("the relay process reported a data race:\n%s", tail(p.stderr.String(), 8000))
	}
	return p.code
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// httpAddr waits for the "http server listening" log line and returns its address.
func (p *proc) httpAddr() string {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, ev := range logEvents(p.stderr.String()) {
			if ev["message"] == "http server listening" {
				if a, ok := ev["addr"].(string); ok {
					return a
				}
			}
		}
		if p.exited() {
			p.t.Fatalf("relay exited with %d before listening\nstderr:\n%s", p.code, tail(p.stderr.String(), 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("relay did not log its http address\nstderr:\n%s", tail(p.stderr.String(), 4000))
	return ""
}

// logEvents parses the JSON log lines of s, skipping other lines.
func logEvents(s string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// runRelay runs the relay to completion and returns its outputs and exit code.
func runRelay(t testing.TB, out *outputLog, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	p := startRelay(t, out, env, args...)
	code = p.wait(time.Minute)
	return p.stdout.String(), p.stderr.String(), code
}

// mustRun runs the relay and fails the test unless it exits 0.
func mustRun(t testing.TB, out *outputLog, env []string, args ...string) string {
	t.Helper()
	stdout, stderr, code := runRelay(t, out, env, args...)
	if code != 0 {
		t.Fatalf("relay %v exited with %d\nstdout:\n%s\nstderr:\n%s", args, code, stdout, tail(stderr, 4000))
	}
	return stdout
}

// database is a test database with the URL the relay is given.
type testDB struct {
	name    string
	db      *sql.DB
	url     string
	dialect outbox.Dialect
}

func postgresDB(t testing.TB) testDB {
	return testDB{"postgres", dbtest.Postgres(t), dbtest.PostgresDSN(), outbox.Postgres}
}

func mysqlDB(t testing.TB) testDB {
	t.Helper()
	db := dbtest.MySQL(t)
	return testDB{"mysql", db, mysqlURL(t, dbtest.MySQLDSN()), outbox.MySQL}
}

// mysqlURL turns a go-sql-driver DSN into the relay's mysql:// URL.
func mysqlURL(t testing.TB, dsn string) string {
	t.Helper()
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("MYSQL_DSN: %v", err)
	}
	user := c.User
	if c.Passwd != "" {
		user += ":" + c.Passwd
	}
	return fmt.Sprintf("mysql://%s@%s/%s", user, c.Addr, c.DBName)
}

// dialects runs f for PostgreSQL and MySQL/MariaDB as subtests.
func dialects(t *testing.T, f func(t *testing.T, d testDB)) {
	t.Run("postgres", func(t *testing.T) { t.Parallel(); f(t, postgresDB(t)) })
	t.Run("mysql", func(t *testing.T) { t.Parallel(); f(t, mysqlDB(t)) })
}

// newOutbox returns the config of a fresh outbox, whose tables are dropped when the
// test ends (the relay creates them with migrate).
func newOutbox(t testing.TB, d testDB) outbox.Config {
	t.Helper()
	cfg := outbox.Config{Dialect: d.dialect, Name: dbtest.UniqueName("relay")}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := outbox.DropSchema(ctx, d.db, cfg); err != nil {
			t.Logf("drop outbox %s: %v", cfg.Name, err)
		}
	})
	return cfg
}

// relayEnv is the environment of a relay on d's outbox cfg and brokers, tuned for
// tests (fast polling and stats), plus extra.
func relayEnv(d testDB, cfg outbox.Config, brokers []string, extra ...string) []string {
	env := []string{
		"RELAY_DATABASE_URL=" + d.url,
		"RELAY_OUTBOX=" + cfg.Name,
		"RELAY_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"RELAY_HTTP_ADDR=127.0.0.1:0",
		"RELAY_POLL_INTERVAL=50ms",
		"RELAY_STATS_INTERVAL=100ms",
		"RELAY_CONNECT_TIMEOUT=10s",
		"RELAY_SHUTDOWN_TIMEOUT=20s",
	}
	return append(env, extra...)
}

// event is an event written by a test.
type event struct {
	uuid, key string
	payload   []byte
	metadata  map[string]string
}

// writeTx writes events to topic in one transaction and commits it.
func writeTx(ctx context.Context, db *sql.DB, cfg outbox.Config, topic string, events []event) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	pub, err := outbox.NewPublisher(tx, cfg)
	if err != nil {
		_ = tx.Rollback()
		return err
	}
	msgs := make([]*message.Message, len(events))
	for i, e := range events {
		m := message.NewMessage(e.uuid, e.payload)
		for k, v := range e.metadata {
			m.Metadata.Set(k, v)
		}
		outbox.SetKey(m, e.key)
		m.SetContext(ctx)
		msgs[i] = m
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// statusJSONOf runs relay status --json.
func statusOf(t testing.TB, out *outputLog, env []string) statusJSON {
	t.Helper()
	s := mustRun(t, out, env, "status", "--json")
	var st statusJSON
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		t.Fatalf("status --json printed %q: %v", s, err)
	}
	return st
}

// get fetches url and returns the status code and body.
func get(t testing.TB, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond every 20ms until it holds, failing the test after timeout
// with what describe says.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue returns the value of the first sample of name in a Prometheus text
// exposition, and whether there is one.
func metricValue(exposition, name string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(line)
		var v float64
		if _, err := fmt.Sscan(fields[len(fields)-1], &v); err == nil {
			return v, true
		}
	}
	return 0, false
}

func newMsg(payload string) *message.Message {
	return message.NewMessage(watermill.NewUUID(), []byte(payload))
}
