package main

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/millrace/millrace/router"
)

// The database password and the SASL password never appear in anything the relay
// prints or serves: logs at trace level, status, dlq list, /metrics, /healthz,
// /readyz and pprof's command line, even when the URL is given as a flag. The relay
// authenticates with each SASL mechanism against the in-process broker.
func TestRelayNeverPrintsSecrets(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			const (
				dbSecret   = "Db-S3cret/p@ss"     // PostgreSQL here trusts every password
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
			u.User = url.UserPassword(u.User.Username(), dbSecret)
			dbURL := u.String()

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
			for _, path := range []string{"/healthz", "/readyz", "/debug/pprof/cmdline", "/"} {
				_, body := get(t, "http://"+addr+path)
				served = append(served, body)
			}
			if !strings.Contains(served[3], "--database-url") {
				t.Errorf("pprof cmdline = %q", served[3])
			}
			mustRun(t, out, withPass, "status", "--database-url", dbURL)
			mustRun(t, out, withPass, "status", "--json", "--database-url", dbURL)
			mustRun(t, out, withPass, "dlq", "list", "--database-url", dbURL)
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
			for _, secret := range []string{dbSecret, saslSecret} {
				for _, form := range secretForms(secret) {
					if strings.Contains(all, form) {
						t.Errorf("output contains the secret %q as %q", secret, form)
					}
				}
			}
		})
	}
}
