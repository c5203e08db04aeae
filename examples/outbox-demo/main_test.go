package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/internal/syncbuf"
	"github.com/millrace/millrace/outbox"
)

// testConfig is the demo shortened for tests: the demo's own in-process broker and
// proxy (no KAFKA_BROKERS), a free HTTP port.
func testConfig(databaseURL string) config {
	return config{
		Mode:              modeAll,
		DatabaseURL:       databaseURL,
		Duration:          6 * time.Second,
		Rate:              200,
		Writers:           4,
		Customers:         16,
		Rollback:          0.1,
		Outage:            3 * time.Second, // as the demo's, long enough for the decorator to retry
		Poison:            true,
		Drain:             30 * time.Second,
		HTTPAddr:          "127.0.0.1:0",
		LogLevel:          zerolog.InfoLevel,
		PublisherLogLevel: zerolog.WarnLevel,
	}
}

func TestDemoLosesNothingThroughAnOutageAndAPoisonEvent(t *testing.T) {
	t.Parallel()
	db := dbtest.Postgres(t) // skips, or fails in CI, when PostgreSQL is missing
	cfg := testConfig(dbtest.PostgresDSN())

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out syncbuf.Buffer
	probes := watchHTTP(ctx, &out, "/healthz", "/readyz", "/metrics", "/", "/console/api/state")
	s, err := run(ctx, &out, cfg)
	if err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	requireVerdict(t, s, &out)

	// The outage happened while events were flowing, and the decorator retried.
	if !s.Chaos.OutageDone {
		t.Errorf("the outage did not happen or the router did not recover")
	}
	if s.Chaos.Retries == 0 {
		t.Errorf("the publisher did not retry during the outage")
	}

	// While the demo ran it was alive, and not ready during the outage: the
	// publisher's health check could not reach the broker. One registry served the
	// publisher's, the router's, Go's and the demo's metrics.
	got := <-probes
	if len(got) == 0 {
		t.Fatalf("the HTTP endpoints were never reached")
	}
	var unready, metrics, page, state bool
	for _, p := range got {
		// The relay's console: its page, and its state with events forwarded.
		page = page || (p.path == "/" && strings.HasPrefix(p.answer, "200 ") && strings.Contains(p.answer, "<title>millrace relay</title>"))
		state = state || (p.path == "/console/api/state" && strings.HasPrefix(p.answer, "200 {") &&
			!strings.Contains(p.answer, `"events_forwarded":0,`) && strings.Contains(p.answer, `"events_forwarded":`))
		if p.path == "/healthz" && !strings.HasPrefix(p.answer, `200 {"status":"ok"}`) {
			t.Errorf("GET /healthz: %q, want 200 ok all along", p.answer)
		}
		if p.path == "/readyz" && p.cut && strings.HasPrefix(p.answer, `503 {"status":"unavailable","reason":`) &&
			strings.Contains(p.answer, "broker unreachable") {
			unready = true
		}
		if p.path == "/metrics" && containsAll(p.answer,
			"millrace_publisher_messages_published_total{", "millrace_publisher_retries_total{",
			"millrace_router_events_forwarded_total{", "millrace_demo_events_committed_total ", "go_goroutines ") {
			metrics = true
		}
	}
	if !unready {
		t.Errorf("GET /readyz never answered 503 (broker unreachable) during the outage")
	}
	if !metrics {
		t.Errorf("GET /metrics never served all of the publisher's, router's, Go's and demo's metrics")
	}
	if !page || !state || !regexp.MustCompile(`console: http://\S+/\n`).MatchString(out.String()) {
		t.Errorf("the console: URL printed %v, page served %v, state with events forwarded %v",
			strings.Contains(out.String(), "console: http://"), page, state)
	}

	// The generated tables were dropped.
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name LIKE $1`,
		s.Outbox+"%").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d tables of outbox %q are left after the run", n, s.Outbox)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}

func TestDemoOnMySQL(t *testing.T) {
	t.Parallel()
	dbtest.MySQL(t) // skips, or fails in CI, when MySQL/MariaDB is missing
	mc, err := mysql.ParseDSN(dbtest.MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig((&url.URL{Scheme: "mysql", User: url.UserPassword(mc.User, mc.Passwd), Host: mc.Addr, Path: "/" + mc.DBName}).String())
	cfg.Duration, cfg.Outage = 3*time.Second, 0 // the outage is the PostgreSQL test's
	cfg.HTTPAddr = "off"

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out syncbuf.Buffer
	s, err := run(ctx, &out, cfg)
	if err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	requireVerdict(t, s, &out)
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}

// requireVerdict checks the promises of a run of mode all: nothing lost, nothing
// out of order, nothing read that was not committed, the poison event and only it
// dead-lettered.
func requireVerdict(t *testing.T, s *summary, out *syncbuf.Buffer) {
	t.Helper()
	if s.Lost != 0 || s.OrderViolations != 0 || s.Phantoms != 0 || !s.OK() {
		t.Errorf("lost %d, order violations %d, phantoms %d, failures %v", s.Lost, s.OrderViolations, s.Phantoms, s.Failures)
	}
	if s.Committed < 100 || s.RolledBack == 0 {
		t.Errorf("committed %d, rolled back %d: the order service hardly wrote", s.Committed, s.RolledBack)
	}
	if s.Chaos.PoisonUUID == "" {
		t.Fatalf("no poison event was written")
	}
	if !slices.Equal(s.DeadLetters, []string{s.Chaos.PoisonUUID}) {
		t.Errorf("dead letters %v, want only the poison event %s", s.DeadLetters, s.Chaos.PoisonUUID)
	}
	if s.Consumed != s.Committed-1 {
		t.Errorf("consumed %d of %d committed events, want all but the poison event", s.Consumed, s.Committed)
	}
	if s.Forwarded < s.Consumed {
		t.Errorf("forwarded %d < consumed %d: the router's counters were read before its last batch", s.Forwarded, s.Consumed)
	}
	if !strings.Contains(out.String(), "\nverdict: no committed event lost\n") {
		t.Errorf("output lacks the verdict")
	}
}

// probe is one answer of an HTTP endpoint of the demo.
type probe struct {
	path   string
	answer string // "<status code> <body>"
	cut    bool   // the demo said the broker was unreachable, and not yet that it was back
}

// watchHTTP waits until the demo has printed its HTTP address, then fetches paths
// every 100ms until ctx ends or the server goes away, and sends the answers.
func watchHTTP(ctx context.Context, out *syncbuf.Buffer, paths ...string) <-chan []probe {
	ch := make(chan []probe, 1)
	addrRe := regexp.MustCompile(`http: http://(\S+)/metrics`)
	go func() {
		var got []probe
		defer func() { ch <- got }()
		var addr string
		for ; ; time.Sleep(10 * time.Millisecond) {
			if m := addrRe.FindStringSubmatch(out.String()); m != nil {
				addr = m[1]
				break
			}
			if ctx.Err() != nil {
				return
			}
		}
		for ; ctx.Err() == nil; time.Sleep(100 * time.Millisecond) {
			for _, path := range paths {
				text := out.String()
				cut := strings.Contains(text, "chaos: broker unreachable") && !strings.Contains(text, "chaos: broker reachable again")
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the demo has stopped its server
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got = append(got, probe{path: path, answer: fmt.Sprintf("%d %s", resp.StatusCode, body), cut: cut})
			}
		}
	}()
	return ch
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestWriterModeWritesTheNamedOutboxAndKeepsIt(t *testing.T) {
	t.Parallel()
	db := dbtest.Postgres(t)
	name := dbtest.UniqueName("demo_writer")
	ocfg := outbox.Config{Dialect: outbox.Postgres, Name: name}
	t.Cleanup(func() {
		_, _ = db.Exec("DROP TABLE IF EXISTS " + name + "_orders")
		_ = outbox.DropSchema(context.Background(), db, ocfg)
	})

	cfg := testConfig(dbtest.PostgresDSN())
	cfg.Mode, cfg.Outbox, cfg.Duration, cfg.Rate, cfg.HTTPAddr = modeWriter, name, time.Second, 100, "off"
	var out syncbuf.Buffer
	s, err := run(context.Background(), &out, cfg)
	if err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	if s.Committed == 0 || s.Topic != defaultWriterTopic {
		t.Fatalf("committed %d events for topic %q, want some for %q", s.Committed, s.Topic, defaultWriterTopic)
	}
	// Each committed order is in the orders table, with its event in the outbox,
	// which is still there for a relay to forward.
	st, err := mustReader(t, db, ocfg).Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var orders int64
	if err := db.QueryRow("SELECT count(*) FROM " + name + "_orders").Scan(&orders); err != nil {
		t.Fatal(err)
	}
	if st.Pending != s.Committed || orders != s.Committed {
		t.Fatalf("outbox holds %d pending events and the orders table %d rows, want %d each", st.Pending, orders, s.Committed)
	}
}

func mustReader(t *testing.T, db *sql.DB, cfg outbox.Config) *outbox.Reader {
	t.Helper()
	r, err := outbox.NewReader(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The verdict is computed from what was read: these cases make it fail.
func TestVerdict(t *testing.T) {
	at := time.Now()
	commits := map[string]commit{
		"a": {customer: "c1", seq: 1, at: at},
		"b": {customer: "c1", seq: 2, at: at},
		"p": {at: at}, // the poison event
	}
	for _, tt := range []struct {
		name      string
		read      []string // UUIDs read
		dead      []string
		wantLost  int64
		wantPhant int64
		wantOK    bool
	}{
		{"every event read or dead-lettered is a pass", []string{"a", "b"}, []string{"p"}, 0, 0, true},
		{"an event neither read nor dead-lettered is lost", []string{"a"}, []string{"p"}, 1, 0, false},
		{"a dead letter that was never read is not lost", []string{"a", "b"}, []string{"p"}, 0, 0, true},
		{"an event read but never committed is a phantom", []string{"a", "b", "x"}, []string{"p"}, 0, 1, false},
		{"the poison event is lost when it is not a dead letter", []string{"a", "b"}, nil, 1, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := reading{seen: map[string]time.Time{}}
			for _, id := range tt.read {
				r.seen[id] = at.Add(time.Millisecond)
			}
			var s summary
			s.check(commits, r, tt.dead, at)
			if s.Lost != tt.wantLost || s.Phantoms != tt.wantPhant || s.OK() != tt.wantOK {
				t.Fatalf("lost %d, phantoms %d, ok %t; want %d, %d, %t", s.Lost, s.Phantoms, s.OK(), tt.wantLost, tt.wantPhant, tt.wantOK)
			}
		})
	}
}

// The checker drops copies by UUID and catches an event older than one already
// read for the same customer.
func TestCheckerCountsDuplicatesAndOrderViolations(t *testing.T) {
	c := &checker{seen: map[string]time.Time{}, lastSeq: map[string]int64{}}
	rec := func(id, customer string, seq int64) *kgo.Record {
		v, _ := json.Marshal(OrderPlaced{Customer: customer, Seq: seq})
		return &kgo.Record{Value: v, Headers: []kgo.RecordHeader{{Key: kafka.UUIDHeaderKey, Value: []byte(id)}}}
	}
	for _, r := range []*kgo.Record{
		rec("a", "c1", 1),
		rec("b", "c1", 2),
		rec("a", "c1", 1), // a copy: a duplicate, not a violation
		rec("x", "c2", 1),
		rec("d", "c1", 4),
		rec("c", "c1", 3), // after seq 4: out of order
		{Value: []byte("no header")},
	} {
		c.check(r)
	}
	r := c.snapshot()
	if r.records != 7 || r.duplicates != 1 || r.violations != 1 || r.foreign != 1 || len(r.seen) != 5 {
		t.Fatalf("records %d, duplicates %d, violations %d, foreign %d, distinct %d; want 7, 1, 1, 1, 5",
			r.records, r.duplicates, r.violations, r.foreign, len(r.seen))
	}
}

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	t.Run("the defaults are the showcase", func(t *testing.T) {
		cfg, err := parseConfig(nil, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Mode != modeAll || cfg.Duration != 30*time.Second || cfg.Rate != 500 || cfg.Writers != 4 ||
			cfg.DatabaseURL != defaultDatabaseURL || cfg.Brokers != nil || !cfg.Poison || cfg.Outage != 3*time.Second ||
			cfg.HTTPAddr != "127.0.0.1:9464" {
			t.Fatalf("defaults: %+v", cfg)
		}
	})
	t.Run("the environment names the database and the brokers", func(t *testing.T) {
		cfg, err := parseConfig([]string{"-mode", "writer"}, env(map[string]string{
			"DATABASE_URL": "mysql://u:p@db:3307/shop", "KAFKA_BROKERS": " k1:9092, k2:9092 ,",
		}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Mode != modeWriter || cfg.DatabaseURL != "mysql://u:p@db:3307/shop" || !slices.Equal(cfg.Brokers, []string{"k1:9092", "k2:9092"}) {
			t.Fatalf("got %+v", cfg)
		}
	})
	for _, args := range [][]string{
		{"-mode", "relay"},
		{"-writers", "0"},
		{"-customers", "2", "-writers", "4"},
		{"-rollback", "1"},
		{"-log", "loud"},
		{"-duration", "-1s"},
		{"extra"},
	} {
		t.Run("rejects "+strings.Join(args, " "), func(t *testing.T) {
			if _, err := parseConfig(args, env(nil), io.Discard); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestMySQLURLBecomesADriverConfig(t *testing.T) {
	mc, err := mysqlConfig("mysql://app:s3cr%40t@db.local/shop?tls=false")
	if err != nil {
		t.Fatal(err)
	}
	if mc.User != "app" || mc.Passwd != "s3cr@t" || mc.Addr != "db.local:3306" || mc.DBName != "shop" || !mc.ParseTime || mc.TLSConfig != "false" {
		t.Fatalf("got %+v", mc)
	}
	if _, err := mysqlConfig("mysql://db.local/shop"); err == nil {
		t.Fatal("a URL without user was accepted")
	}
	if got := redactURL("mysql://app:s3cr3t@db.local/shop"); strings.Contains(got, "s3cr3t") {
		t.Fatalf("redactURL kept the password: %s", got)
	}
}
