package main

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace/internal/dbtest"
)

// TestRelayDevPrintsAnEmittedEventAndServesItsBroker runs relay dev as a process
// on a free port, writes an event with relay emit (another process), and checks
// that relay dev prints it, that another Kafka client reads it from the printed
// broker address, and that SIGINT stops relay dev with exit code 0.
func TestRelayDevPrintsAnEmittedEventAndServesItsBroker(t *testing.T) {
	t.Parallel()
	d := postgresDB(t)
	cfg := newOutbox(t, d)
	out := &outputLog{}
	broker := freePort(t)
	_, port, _ := net.SplitHostPort(broker)
	env := []string{"RELAY_DATABASE_URL=" + d.url, "RELAY_OUTBOX=" + cfg.Name}

	dev := startRelay(t, out, append(env, "RELAY_HTTP_ADDR=127.0.0.1:0", "LOG_FORMAT=json"), "dev", "--port", port)
	waitFor(t, time.Minute, func() bool {
		return strings.Contains(dev.stdout.String(), "waiting for events") || dev.exited()
	}, func() string { return "relay dev did not start:\n" + dev.stdout.String() + dev.stderr.String() })
	banner := dev.stdout.String()
	for _, want := range []string{"FOR DEVELOPMENT ONLY", "Not for production", "keeps nothing", "KAFKA_BROKERS=" + broker, cfg.Name} {
		if !strings.Contains(banner, want) {
			t.Errorf("the banner lacks %q:\n%s", want, banner)
		}
	}

	topic := dbtest.UniqueName("devtopic")
	payload := `{"order_id":42,"note":"` + strings.Repeat("x", 100) + `"}`
	uuid := strings.TrimSpace(mustRun(t, out, env, "emit", "--topic", topic, "--key", "customer-7", "--metadata", "source=test", payload))
	if len(uuid) != 36 {
		t.Fatalf("relay emit printed %q, want a UUID", uuid)
	}

	var line string
	waitFor(t, 30*time.Second, func() bool {
		for _, l := range strings.Split(dev.stdout.String(), "\n") {
			if strings.Contains(l, uuid) {
				line = l
				return true
			}
		}
		return false
	}, func() string { return "relay dev did not print event " + uuid + ":\n" + dev.stdout.String() })
	for _, want := range []string{" " + topic + " ", "offset=0", `key="customer-7"`, "uuid=" + uuid,
		"payload(" + strconv.Itoa(len(payload)) + " B): " + payload[:devPreviewBytes] + "…"} {
		if !strings.Contains(line, want) {
			t.Errorf("the printed line lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, payload[devPreviewBytes:]) {
		t.Errorf("the printed line has more than %d bytes of the payload:\n%s", devPreviewBytes, line)
	}

	// Another program reads the event from the printed address.
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rec *kgo.Record
	for rec == nil && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { rec = r })
	}
	if rec == nil {
		t.Fatalf("no record on %s from %s", topic, broker)
	}
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
	}
	if string(rec.Key) != "customer-7" || string(rec.Value) != payload ||
		headers["_watermill_message_uuid"] != uuid || headers["source"] != "test" {
		t.Errorf("record read from %s: key %q, value %q, headers %v", broker, rec.Key, rec.Value, headers)
	}

	// Every metric the relay serves is in the project README's table.
	_, metrics := get(t, "http://"+dev.httpAddr()+"/metrics")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(metrics, "\n") {
		if f := strings.Fields(l); len(f) == 4 && f[1] == "TYPE" && strings.HasPrefix(f[2], "millrace_") &&
			!strings.Contains(string(readme), "`"+f[2]+"`") {
			t.Errorf("the README's metrics table lacks %s", f[2])
		}
	}

	// The payload is printed for the developer on standard output, never logged.
	if strings.Contains(dev.stderr.String(), "order_id") {
		t.Errorf("relay dev's logs contain the payload:\n%s", dev.stderr.String())
	}

	dev.signal(syscall.SIGINT)
	if code := dev.wait(30 * time.Second); code != 0 {
		t.Fatalf("relay dev exited with %d after SIGINT\n%s", code, tail(dev.stderr.String(), 4000))
	}
	if c, err := net.DialTimeout("tcp", broker, time.Second); err == nil {
		c.Close()
		t.Errorf("the broker still listens on %s after relay dev stopped", broker)
	}
}

// TestRelayDevBusyPort: a port in use is named, with the flag that changes it.
func TestRelayDevBusyPort(t *testing.T) {
	t.Parallel()
	d := postgresDB(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	_, stderr, code := runRelay(t, &outputLog{}, []string{"RELAY_DATABASE_URL=" + d.url}, "dev", "--port", port)
	if code != exitFailure || !strings.Contains(stderr, "port "+port+" on 127.0.0.1 is in use") || !strings.Contains(stderr, "--port") {
		t.Errorf("relay dev on a busy port: exit %d, stderr:\n%s", code, stderr)
	}
}

// TestRelayDevAndEmitRejectBadSettingsFirst: invalid settings stop dev and emit
// with exit code 2 before any database is touched (the database here does not
// exist and is never reached).
func TestRelayDevAndEmitRejectBadSettingsFirst(t *testing.T) {
	t.Parallel()
	out := &outputLog{}
	env := []string{"RELAY_DATABASE_URL=postgres://nobody@127.0.0.1:1/none", "RELAY_CONNECT_TIMEOUT=1s"}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"dev", "--port", "70000"}, "--port: must be in 0..65535"},
		{[]string{"dev", "--batch-size", "0"}, "RELAY_BATCH_SIZE"},
		{[]string{"emit", "payload"}, "--topic: is required"},
		{[]string{"emit", "--topic", "t", "a", "b"}, `unexpected argument "b"`},
		{[]string{"emit", "--topic", "t", "--metadata", "_millrace_topic=x"}, "the outbox's own"},
	}
	for _, c := range cases {
		_, stderr, code := runRelay(t, out, env, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("relay %v: exit %d, want 2 and %q:\n%s", c.args, code, c.want, stderr)
		}
	}
}

// TestRelayEmitWithoutTables says what to run when the outbox does not exist.
func TestRelayEmitWithoutTables(t *testing.T) {
	t.Parallel()
	d := postgresDB(t)
	env := []string{"RELAY_DATABASE_URL=" + d.url, "RELAY_OUTBOX=" + dbtest.UniqueName("missing")}
	_, stderr, code := runRelay(t, &outputLog{}, env, "emit", "--topic", "t", "x")
	if code != exitFailure || !strings.Contains(stderr, "relay migrate") {
		t.Errorf("relay emit without tables: exit %d:\n%s", code, stderr)
	}
}

func TestPreviewPayload(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"", "(empty)"},
		{`{"a":1}`, `{"a":1}`},
		{"line1\nline2\t\x1b[31m", `line1\nline2\t\x1b[31m`},
		{strings.Repeat("é", 40), strings.Repeat("é", 32) + "…"},
		{"\xff\xfe", "(binary)"},
	} {
		if got := previewPayload([]byte(c.in), 64); got != c.want {
			t.Errorf("previewPayload(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDevEnvironIgnoresKafkaSettings(t *testing.T) {
	t.Parallel()
	env := devEnviron(map[string]string{"RELAY_KAFKA_TLS": "true", "RELAY_KAFKA_SASL_USER": "u", "RELAY_OUTBOX": "o"}, "127.0.0.1:1")
	if env["RELAY_KAFKA_TLS"] != "" || env["RELAY_KAFKA_SASL_USER"] != "" || env["RELAY_KAFKA_BROKERS"] != "127.0.0.1:1" ||
		env["RELAY_OUTBOX"] != "o" || env["RELAY_DATABASE_URL"] != devDatabaseURL || env["RELAY_MIGRATE"] != "true" {
		t.Errorf("devEnviron: %v", env)
	}
}
