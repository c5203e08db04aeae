package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/dbtest"
)

// TestQuickstartRunsWithoutKafka builds the quick start and runs it as a new user
// would, with a database and no KAFKA_BROKERS: it commits an event to the outbox
// and publishes through its in-process broker. Invalid settings stop it before it
// touches a database.
func TestQuickstartRunsWithoutKafka(t *testing.T) {
	db := dbtest.Postgres(t)
	bin := filepath.Join(t.TempDir(), "quickstart")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(env ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("DATABASE_URL=" + dbtest.PostgresDSN())
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`1\. event (\S+) committed`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "KAFKA_BROKERS is not set: publishing to an in-process broker") ||
		!strings.Contains(out, "1 published, 0 retries, given up retriable=0 permanent=0 fatal=0 canceled=0") {
		t.Fatalf("quickstart printed:\n%s", out)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM outbox WHERE uuid = $1`, m[1]).Scan(&n); err != nil || n != 1 {
		t.Errorf("event %s in the outbox: %d rows, %v", m[1], n, err)
	}

	for _, c := range []struct{ env, want string }{
		{"DATABASE_URL=postgres://u@127.0.0.1:5432/db?sslmode=bogus", "DATABASE_URL: "},
		{"KAFKA_BROKERS=localhost", `KAFKA_BROKERS: "localhost" is not host:port`},
	} {
		// An unreachable database shows that nothing was attempted before the check.
		env := []string{c.env}
		if !strings.HasPrefix(c.env, "DATABASE_URL") {
			env = append(env, "DATABASE_URL=postgres://u@127.0.0.1:1/db")
		}
		out, err := run(env...)
		if err == nil || !strings.Contains(out, c.want) || strings.Contains(out, "connect") {
			t.Errorf("quickstart with %s: %v\n%s", c.env, err, out)
		}
	}
}
