package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/millrace/millrace/internal/redact"
	"github.com/millrace/millrace/router"
)

// The database password, pgx's sslpassword parameter and the SASL password never
// appear in anything the relay prints or serves: logs at trace level, status, dlq
// list, /metrics, /healthz, /readyz, the console and pprof's command line, even when the URL is
// given as a flag with a non-canonical escape (%2f). The relay authenticates with
// each SASL mechanism against the in-process broker.
func TestRelayNeverPrintsSecrets(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			const (
				dbSecret   = "Db-S3cret/p@ss"     // PostgreSQL here trusts every password
				sslSecret  = "Ssl-K3y/pass"       // no key file is used: pgx only parses it
				saslSecret = "Sasl-S3cret\"pw\\x" // quotes and backslashes: JSON-escaped in logs
				user       = "relay-user"
			)
			topic := "secrets-" + strings.ToLower(mech)
			fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
				kfake.Superuser(mech, user, saslSecret), kfake.SeedTopics(1, topic))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(fake.Close)

			d := postgresDB(t)
			cfg := newOutbox(t, d)
			u, _ := url.Parse(d.url)
			// Written as a user may write it: %2f in lower case, an @ as %40.
			dbURL := strings.Replace(d.url, u.User.Username()+"@",
				u.User.Username()+":Db-S3cret%2fp%40ss@", 1) + "&sslpassword=Ssl-K3y%2fpass"
			if !strings.Contains(d.url, "?") {
				t.Fatalf("the test database URL %q has no query", d.url)
			}

			out := &outputLog{}
			passFile := filepath.Join(t.TempDir(), "sasl-password")
			if err := os.WriteFile(passFile, []byte(saslSecret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env := relayEnv(d, cfg, fake.ListenAddrs(), "LOG_LEVEL=trace", "RELAY_PPROF=true",
				"RELAY_KAFKA_SASL_MECHANISM="+mech, "RELAY_KAFKA_SASL_USER="+user)
			env = append(env, "RELAY_DATABASE_URL=postgres://ignored:ignored@nowhere/x") // the flag wins
			withPass := append(append([]string(nil), env...), "RELAY_KAFKA_SASL_PASSWORD="+saslSecret)
			withFile := append(append([]string(nil), env...), "RELAY_KAFKA_SASL_PASSWORD_FILE="+passFile)

			mustRun(t, out, withPass, "migrate", "--database-url", dbURL)
			if err := writeTx(context.Background(), d.db, cfg, topic, []event{{uuid: watermill.NewUUID(), payload: []byte("x")}}); err != nil {
				t.Fatal(err)
			}
			p := startRelay(t, out, withFile, "run", "--database-url", dbURL)
			addr := p.httpAddr()
			var metrics string
			waitFor(t, 30*time.Second, func() bool {
				_, metrics = get(t, "http://"+addr+"/metrics")
				v, _ := metricValue(metrics, router.MetricEventsForwarded)
				return v == 1
			}, func() string { return "the event was not forwarded:\n" + tail(p.stderr.String(), 3000) })
			served := []string{metrics}
			for _, path := range []string{"/healthz", "/readyz", "/debug/pprof/cmdline", "/", "/console/api/state"} {
				_, body := get(t, "http://"+addr+path)
				served = append(served, body)
			}
			if !strings.Contains(served[3], "--database-url") {
				t.Errorf("pprof cmdline = %q", served[3])
			}
			mustRun(t, out, withPass, "status", "--database-url", dbURL)
			mustRun(t, out, withPass, "status", "--json", "--database-url", dbURL)
			mustRun(t, out, withPass, "dlq", "list", "--database-url", dbURL)
			// Retry logs: the same URL pointing at a port where nothing listens.
			closed := strings.Replace(dbURL, "@"+u.Host, "@"+freePort(t), 1)
			if _, stderr, code := runRelay(t, out, append(withPass, "RELAY_CONNECT_TIMEOUT=1500ms"),
				"status", "--database-url", closed); code != exitFailure || !strings.Contains(stderr, "retrying") {
				t.Errorf("status on a closed port: exit %d\n%s", code, tail(stderr, 2000))
			}
			p.signal(syscall.SIGTERM)
			if code := p.wait(20 * time.Second); code != 0 {
				t.Errorf("relay exited with %d", code)
			}

			// A wrong SASL password is refused at start, and not printed either.
			_, stderr, code := runRelay(t, out, append(env, "RELAY_KAFKA_SASL_PASSWORD=Wrong-"+saslSecret,
				"RELAY_CONNECT_TIMEOUT=2s"), "run", "--database-url", dbURL)
			if code != exitFailure || !strings.Contains(stderr, "kafka") {
				t.Errorf("wrong SASL password: exit %d\n%s", code, tail(stderr, 2000))
			}

			all := out.String() + strings.Join(served, "\n")
			if !strings.Contains(all, "xxxxx") {
				t.Errorf("the masked URL appears nowhere")
			}
			for _, secret := range []string{dbSecret, sslSecret, saslSecret} {
				assertNoSecret(t, all, secret)
			}
		})
	}
}

// A password with an unescaped "/" (or "@", "?", "#") makes the URL mean another
// host: the relay refuses it with exit code 2 and says how to escape it, without
// printing it, from every command.
func TestRelayRefusesUnescapedPasswords(t *testing.T) {
	t.Parallel()
	out := &outputLog{}
	for _, raw := range []string{
		"postgres://u:1234/5678@127.0.0.1:5432/test",
		"postgres://app:Pw?x#y@127.0.0.1/test?sslmode=disable",
		"mysql://root:a@b/c@127.0.0.1:3306/test",
	} {
		for _, cmd := range []string{"run", "status", "migrate"} {
			_, stderr, code := runRelay(t, out, []string{"RELAY_KAFKA_BROKERS=127.0.0.1:9092"}, cmd, "--database-url", raw)
			if code != exitUsage || !strings.Contains(stderr, "must be percent-encoded") || !strings.Contains(stderr, "/ as %2F") {
				t.Errorf("relay %s --database-url %s: exit %d, want %d and how to escape:\n%s", cmd, raw, code, exitUsage, stderr)
			}
		}
	}
	all := out.String()
	for _, secret := range []string{"1234/5678", "Pw?x#y", "a@b/c"} {
		assertNoSecret(t, all, secret)
	}
}

// assertNoSecret fails when secret appears in s, as is or in any of the ways it
// may be escaped: in a URL (either case of hex digits), in JSON, quoted by Go.
func assertNoSecret(t *testing.T, s, secret string) {
	t.Helper()
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret), strings.ToLower(url.QueryEscape(secret)),
		strings.ToLower(url.PathEscape(secret)), strconv.Quote(secret), string(mustJSON(secret))}
	if ui := url.UserPassword("u", secret).String(); strings.HasPrefix(ui, "u:") {
		forms = append(forms, ui[2:], strings.ToLower(ui[2:]))
	}
	for _, f := range forms {
		f = strings.Trim(f, `"`)
		if strings.Contains(s, f) {
			t.Errorf("output contains the secret %q as %q", secret, f)
		}
	}
	if masked := redact.New(secret).String(s); masked != s {
		t.Errorf("output contains the secret %q in some encoding", secret)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
