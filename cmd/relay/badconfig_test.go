package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/dbtest"
)

// Invalid settings stop the relay before it touches anything, with exit code 2 and
// one line per problem naming the variable; run-time failures (unreachable
// database, refused login) exit 1 with a clear message. Neither panics nor prints
// the password.
func TestRelayBadConfiguration(t *testing.T) {
	t.Parallel()
	const secret = "Sup3rSecretPw"
	pgURL := "postgres://postgres:" + secret + "@127.0.0.1:5432/test?sslmode=disable"
	closedPort := freePort(t) // nothing listens there
	pg := postgresDB(t)
	existing := newOutbox(t, pg) // its tables let run get as far as Kafka
	mysqlWrong := strings.Replace(mysqlURL(t, dbtest.MySQLDSN()), "mysql://root@", "mysql://root:"+secret+"@", 1)

	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want []string // each must appear in the output
	}{
		{
			name: "no brokers",
			env:  []string{"RELAY_DATABASE_URL=" + pgURL},
			code: exitUsage,
			want: []string{"RELAY_KAFKA_BROKERS (--kafka-brokers): is required"},
		},
		{
			name: "no database",
			env:  []string{"RELAY_KAFKA_BROKERS=127.0.0.1:9092"},
			code: exitUsage,
			want: []string{"RELAY_DATABASE_URL (--database-url): is required"},
		},
		{
			name: "malformed database URL",
			env:  []string{"RELAY_DATABASE_URL=postgres://postgres:" + secret + "@127.0.0.1:port/test", "RELAY_KAFKA_BROKERS=127.0.0.1:9092"},
			code: exitUsage,
			want: []string{"RELAY_DATABASE_URL (--database-url): postgres://postgres:xxxxx@127.0.0.1:port/test is not a valid URL"},
		},
		{
			name: "unsupported scheme",
			env:  []string{"RELAY_DATABASE_URL=sqlserver://sa:" + secret + "@db/app", "RELAY_KAFKA_BROKERS=127.0.0.1:9092"},
			code: exitUsage,
			want: []string{`RELAY_DATABASE_URL (--database-url): scheme "sqlserver" is not supported`},
		},
		{
			name: "every problem on its own line",
			env: []string{"RELAY_DATABASE_URL=" + pgURL, "RELAY_KAFKA_BROKERS=nohostport", "RELAY_BATCH_SIZE=0",
				"RELAY_POLL_INTERVAL=fast", "LOG_LEVEL=loud", "RELAY_MAX_LAG=0", "RELAY_PPROF=maybe",
				"RELAY_KAFKA_SASL_USER=relay"},
			args: []string{"run", "--outbox", "Bad-Name"},
			code: exitUsage,
			want: []string{
				`RELAY_KAFKA_BROKERS (--kafka-brokers): address 1 of 1 is not a host:port address`,
				"RELAY_BATCH_SIZE (--batch-size): must be in 1..10000, got 0",
				`RELAY_POLL_INTERVAL (--poll-interval): invalid value: time: invalid duration (want a duration`,
				`LOG_LEVEL (--log-level): must be trace, debug, info, warn or error`,
				`RELAY_MAX_LAG (--max-lag): 0 is ambiguous`,
				`RELAY_PPROF (--pprof): invalid value: invalid syntax (want true or false)`,
				"RELAY_KAFKA_SASL_PASSWORD: is required with SASL",
				`--outbox (RELAY_OUTBOX): is not a safe SQL identifier`,
				"8 invalid setting(s)",
			},
		},
		{
			name: "unknown flag",
			env:  []string{"RELAY_DATABASE_URL=" + pgURL},
			args: []string{"run", "--no-such-flag"},
			code: exitUsage,
			want: []string{"flag provided but not defined: -no-such-flag", "relay run --help"},
		},
		{
			name: "rejected flag value",
			env:  []string{"RELAY_DATABASE_URL=" + pgURL},
			args: []string{"run", "--pprof=" + secret},
			code: exitUsage,
			want: []string{"invalid boolean value for -pprof"},
		},
		{
			name: "stray argument",
			env:  []string{"RELAY_DATABASE_URL=" + pgURL},
			args: []string{"status", "--outbox", "x", secret},
			code: exitUsage,
			want: []string{"unexpected argument"},
		},
		{
			name: "unknown command",
			args: []string{"frobnicate"},
			code: exitUsage,
			want: []string{`unknown command "frobnicate"`},
		},
		{
			name: "unreachable database",
			env: []string{"RELAY_DATABASE_URL=postgres://postgres:" + secret + "@" + closedPort + "/test",
				"RELAY_KAFKA_BROKERS=127.0.0.1:9092", "RELAY_CONNECT_TIMEOUT=1s"},
			code: exitFailure,
			want: []string{"postgres://postgres:xxxxx@" + closedPort + "/test unreachable after 1s", "connection refused"},
		},
		{
			name: "unreachable database for status",
			env:  []string{"RELAY_DATABASE_URL=" + mysqlURLAt(closedPort), "RELAY_CONNECT_TIMEOUT=1s"},
			args: []string{"status"},
			code: exitFailure,
			want: []string{"relay status: database mysql://root:xxxxx@" + closedPort + "/test unreachable after 1s"},
		},
		{
			name: "wrong password",
			env:  []string{"RELAY_DATABASE_URL=" + mysqlWrong, "RELAY_KAFKA_BROKERS=127.0.0.1:9092", "RELAY_CONNECT_TIMEOUT=20s"},
			code: exitFailure,
			want: []string{"refused the connection", "Access denied"},
		},
		{
			name: "unknown postgres user",
			env: []string{"RELAY_DATABASE_URL=postgres://nobody_here:" + secret + "@127.0.0.1:5432/test?sslmode=disable",
				"RELAY_CONNECT_TIMEOUT=20s"},
			args: []string{"migrate"},
			code: exitFailure,
			want: []string{"refused the connection", "nobody_here"},
		},
		{
			name: "unreachable brokers",
			env: []string{"RELAY_DATABASE_URL=" + pgURL, "RELAY_KAFKA_BROKERS=" + closedPort, "RELAY_CONNECT_TIMEOUT=1s",
				"RELAY_MIGRATE=true", "RELAY_OUTBOX=" + existing.Name},
			code: exitFailure,
			want: []string{"no Kafka broker reachable after 1s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := &outputLog{}
			start := time.Now()
			stdout, stderr, code := runRelay(t, out, tt.env, tt.args...)
			all := stdout + stderr
			if code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if strings.Contains(all, secret) {
				t.Errorf("output contains the password")
			}
			if strings.Contains(all, "panic") || strings.Contains(all, "goroutine ") {
				t.Errorf("the relay panicked")
			}
			if t.Failed() {
				t.Logf("output (%v):\n%s", time.Since(start), all)
			}
		})
	}
}

// freePort returns a 127.0.0.1 address on which nothing listens.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func mysqlURLAt(addr string) string { return "mysql://root:Sup3rSecretPw@" + addr + "/test" }
