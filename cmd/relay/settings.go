package main

import (
	"errors"
	"flag"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// The settings of the relay, in groups. Every field is an environment variable (the
// env tag) with a flag of the same name (RELAY_KAFKA_BROKERS is --kafka-brokers,
// LOG_LEVEL is --log-level); a flag wins over its variable. The help tag is the text
// of the flag's usage and of the README's configuration table, and envDefault is the
// default shown there, so the documentation is generated from these declarations
// (see `relay help env` and TestREADMEConfigurationTable).
//
// Defaults that restate a library's default are pinned to the library's constant by
// TestDefaultsMatchLibraries.

// dbSettings are the settings of every command that opens the outbox's database.
type dbSettings struct {
	DatabaseURL    string        `env:"RELAY_DATABASE_URL" secret:"url" help:"Database of the outbox, required. postgres://user:pass@host:5432/db?sslmode=disable (or postgresql://) uses pgx; mysql://user:pass@host:3306/db?param=value uses go-sql-driver/mysql (parseTime=true is added). The dialect follows the scheme. The password is masked in every output."`
	Outbox         string        `env:"RELAY_OUTBOX" envDefault:"outbox" help:"Name of the outbox table; the other tables derive their names from it."`
	ConsumerGroup  string        `env:"RELAY_CONSUMER_GROUP" envDefault:"relay" help:"Consumer group whose position the relay advances. Relays of one group share the work (one forwards, the others stand by); each group sees every event."`
	ConnectTimeout time.Duration `env:"RELAY_CONNECT_TIMEOUT" envDefault:"30s" help:"How long a command keeps trying to reach the database (and, for run, the brokers) at start before it fails with exit code 1. A refused login fails at once."`
}

// logSettings are the settings of the logs, written to standard error.
type logSettings struct {
	Level  string `env:"LOG_LEVEL" envDefault:"info" help:"Log level: trace, debug, info, warn or error."`
	Format string `env:"LOG_FORMAT" envDefault:"json" help:"Log format: json (one object per line) or console (human readable)."`
}

// kafkaSettings are the producer's settings (relay run).
type kafkaSettings struct {
	Brokers               []string `env:"RELAY_KAFKA_BROKERS" help:"Bootstrap brokers, comma-separated host:port, required by run."`
	ClientID              string   `env:"RELAY_KAFKA_CLIENT_ID" envDefault:"millrace-relay" help:"Client ID sent to the brokers (logs, quotas, ACLs)."`
	Compression           string   `env:"RELAY_KAFKA_COMPRESSION" envDefault:"snappy" help:"Compression codec of the record batches: snappy, lz4, zstd, gzip or none."`
	MaxMessageBytes       int      `env:"RELAY_KAFKA_MAX_MESSAGE_BYTES" envDefault:"1048576" help:"Largest record the producer sends; a larger event becomes a dead letter. Raise it only with the topics' max.message.bytes."`
	TLS                   bool     `env:"RELAY_KAFKA_TLS" envDefault:"false" help:"Connect to the brokers with TLS (system roots unless RELAY_KAFKA_TLS_CA is set). Implied by the other TLS settings."`
	TLSCA                 string   `env:"RELAY_KAFKA_TLS_CA" help:"PEM file of the CA certificates that verify the brokers."`
	TLSCert               string   `env:"RELAY_KAFKA_TLS_CERT" help:"PEM file of the client certificate (mutual TLS); needs RELAY_KAFKA_TLS_KEY."`
	TLSKey                string   `env:"RELAY_KAFKA_TLS_KEY" help:"PEM file of the client key (mutual TLS); needs RELAY_KAFKA_TLS_CERT."`
	TLSInsecureSkipVerify bool     `env:"RELAY_KAFKA_TLS_INSECURE_SKIP_VERIFY" envDefault:"false" help:"Do not verify the brokers' certificates. For tests only."`
	SASLMechanism         string   `env:"RELAY_KAFKA_SASL_MECHANISM" help:"SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Defaults to PLAIN when RELAY_KAFKA_SASL_USER is set; PLAIN needs TLS to keep the password private."`
	SASLUser              string   `env:"RELAY_KAFKA_SASL_USER" help:"SASL user; turns SASL on."`
	SASLPassword          string   `env:"RELAY_KAFKA_SASL_PASSWORD" secret:"value" flag:"-" help:"SASL password. No flag: a command line is visible to every user of the machine. Never printed."`
	SASLPasswordFile      string   `env:"RELAY_KAFKA_SASL_PASSWORD_FILE" help:"File holding the SASL password (a mounted secret); one trailing newline is ignored. Exclusive with RELAY_KAFKA_SASL_PASSWORD."`
}

// forwardSettings are the forwarder's settings (relay run).
type forwardSettings struct {
	BatchSize          int           `env:"RELAY_BATCH_SIZE" envDefault:"1000" help:"Events read, published and acknowledged per batch (1-10000); also bounds the duplicates after a crash."`
	PollInterval       time.Duration `env:"RELAY_POLL_INTERVAL" envDefault:"1s" help:"How often an idle relay looks for new events. On PostgreSQL commits also wake it at once (LISTEN/NOTIFY)."`
	PGNotify           bool          `env:"RELAY_PG_NOTIFY" envDefault:"true" help:"On PostgreSQL, wake up on LISTEN/NOTIFY as events commit; false polls only."`
	RetryMaxRetries    int           `env:"RELAY_RETRY_MAX_RETRIES" envDefault:"3" help:"Retries of a failed publish within one call, after the first attempt (0: none)."`
	RetryInitial       time.Duration `env:"RELAY_RETRY_INITIAL" envDefault:"100ms" help:"First backoff, both between publish attempts and before a failed batch is tried again; it doubles with jitter."`
	RetryMaxInterval   time.Duration `env:"RELAY_RETRY_MAX_INTERVAL" envDefault:"5s" help:"Longest backoff between two publish attempts."`
	RetryMaxElapsed    time.Duration `env:"RELAY_RETRY_MAX_ELAPSED" envDefault:"2m" help:"Time budget of one publish call, retries included (like Kafka's delivery.timeout.ms); then the batch fails and is tried again, never dropped."`
	BatchRetryMax      time.Duration `env:"RELAY_BATCH_RETRY_MAX" envDefault:"10s" help:"Longest backoff before a failed batch is tried again. Retriable failures are retried for as long as they last."`
	FatalRetryInterval time.Duration `env:"RELAY_FATAL_RETRY_INTERVAL" envDefault:"30s" help:"Wait after a fatal failure (authorization, SASL, unsupported version) before trying again."`
	UnhealthyAfter     time.Duration `env:"RELAY_UNHEALTHY_AFTER" envDefault:"1m" help:"How long retriable failures may last before /readyz fails (and an error is logged, once); a batch that goes through ends them."`
	MaxLag             offDuration   `env:"RELAY_MAX_LAG" envDefault:"5m" help:"Age of the oldest pending event above which /readyz fails; off disables the check."`
	ReadyErrorRate     float64       `env:"RELAY_READY_ERROR_RATE" envDefault:"0.5" help:"Share of failed publish attempts (0-1) above which /readyz fails; 1 disables the rule. Counted over RELAY_READY_WINDOW, only since the last attempt in which every message went through, so it ends as soon as publishing works again."`
	ReadyMinAttempts   int           `env:"RELAY_READY_MIN_ATTEMPTS" envDefault:"10" help:"Attempts that RELAY_READY_ERROR_RATE needs before it counts."`
	ReadyWindow        time.Duration `env:"RELAY_READY_WINDOW" envDefault:"1m" help:"Period over which RELAY_READY_ERROR_RATE counts attempts."`
	ReadyTimeout       time.Duration `env:"RELAY_READY_TIMEOUT" envDefault:"5s" help:"How long /readyz waits for the database to answer a ping, and for a broker to answer."`
	Retention          offDuration   `env:"RELAY_RETENTION" envDefault:"24h" help:"How long forwarded events stay in the outbox before they are deleted; off keeps them."`
	StatsInterval      time.Duration `env:"RELAY_STATS_INTERVAL" envDefault:"5s" help:"How often the backlog (pending events, lag, dead letters) is read for /metrics and /readyz."`
	ShutdownTimeout    time.Duration `env:"RELAY_SHUTDOWN_TIMEOUT" envDefault:"25s" help:"Budget of a graceful stop on SIGTERM/SIGINT: 60% for the batch in flight, then the producer flushes; past it the relay exits 1. Keep it under Kubernetes' terminationGracePeriodSeconds (30s)."`
	Migrate            bool          `env:"RELAY_MIGRATE" envDefault:"false" help:"Create the outbox tables (relay migrate) before forwarding. Off by default: DDL needs privileges the relay should not need."`
}

// httpSettings are the HTTP endpoints' settings (relay run).
type httpSettings struct {
	Addr  string `env:"RELAY_HTTP_ADDR" envDefault:"127.0.0.1:9464" help:"Address of /metrics, /healthz and /readyz; port 0 picks a free port (the address is logged); off disables the server. Use :9464 for probes from outside the pod."`
	Pprof bool   `env:"RELAY_PPROF" envDefault:"false" help:"Serve Go's profiler under /debug/pprof/ on the same address."`
}

// offDuration is a duration that can be switched off with "off" (or a negative
// value), stored as -1. Zero is rejected as ambiguous by validation.
type offDuration time.Duration

// UnmarshalText parses "off" or a Go duration.
func (d *offDuration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if strings.EqualFold(s, "off") {
		*d = -1
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf(`want a duration such as 90s or 5m, or "off": %w`, err)
	}
	if v < 0 {
		v = -1
	}
	*d = offDuration(v)
	return nil
}

// String formats d as a duration or "off".
func (d offDuration) String() string {
	if d < 0 {
		return "off"
	}
	return time.Duration(d).String()
}

// group is one settings struct with the order in which it is documented.
type group struct {
	name string
	ptr  any // pointer to the settings struct
}

// setting describes one field of a settings struct.
type setting struct {
	Env     string // the variable, e.g. RELAY_BATCH_SIZE
	Flag    string // the flag name without dashes, e.g. batch-size; "" for none
	Default string // envDefault
	Help    string
	Secret  string // "url" (a DSN whose password is masked), "value" (never shown) or ""
	Field   string // Go field name, to map env's errors back to variables
	Bool    bool
	Group   string
}

// describe returns the settings of the struct behind ptr.
func describe(groupName string, ptr any) []setting {
	t := reflect.TypeOf(ptr).Elem()
	var out []setting
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("env")
		if tag == "" || !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(tag, ",")
		s := setting{
			Env:     key,
			Flag:    flagName(key),
			Default: f.Tag.Get("envDefault"),
			Help:    f.Tag.Get("help"),
			Secret:  f.Tag.Get("secret"),
			Field:   f.Name,
			Bool:    f.Type.Kind() == reflect.Bool,
			Group:   groupName,
		}
		if f.Tag.Get("flag") == "-" {
			s.Flag = ""
		}
		out = append(out, s)
	}
	return out
}

// flagName turns RELAY_KAFKA_BROKERS into kafka-brokers and LOG_LEVEL into
// log-level.
func flagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "RELAY_")), "_", "-")
}

// settingsSet is the settings of one command: the groups it uses, bound to a flag
// set, and the environment those flags write into.
type settingsSet struct {
	groups   []group
	settings []setting
	environ  map[string]string // the process environment, overlaid by flags
	fromFlag map[string]bool   // variables set by a flag
}

// newSettingsSet registers a flag for every setting of groups on fs. The flags write
// into a copy of environ, so that one parser (env) reads variables and flags alike.
func newSettingsSet(fs *flag.FlagSet, environ map[string]string, groups ...group) *settingsSet {
	s := &settingsSet{groups: groups, environ: make(map[string]string, len(environ)), fromFlag: map[string]bool{}}
	for k, v := range environ {
		s.environ[k] = v
	}
	for _, g := range groups {
		for _, st := range describe(g.name, g.ptr) {
			s.settings = append(s.settings, st)
			if st.Flag == "" {
				continue
			}
			usage := st.Help + " (" + st.Env
			if st.Default != "" {
				usage += ", default " + st.Default
			}
			usage += ")"
			fs.Var(&envFlag{set: s, key: st.Env, bool: st.Bool}, st.Flag, usage)
		}
	}
	return s
}

// envFlag is a flag that stores its value under an environment variable.
type envFlag struct {
	set  *settingsSet
	key  string
	bool bool
}

// String is empty: the usage text states the default, and a value set by a flag
// may be a secret.
func (f *envFlag) String() string { return "" }

func (f *envFlag) Set(v string) error {
	if f.bool {
		if _, err := strconv.ParseBool(v); err != nil {
			return errors.New("want true or false")
		}
	}
	f.set.environ[f.key] = v
	f.set.fromFlag[f.key] = true
	return nil
}

func (f *envFlag) IsBoolFlag() bool { return f.bool }

// load parses every group from the environment overlaid by the flags and returns
// one problem per invalid variable, naming it.
func (s *settingsSet) load() []problem {
	var problems []problem
	for _, g := range s.groups {
		err := env.ParseWithOptions(g.ptr, env.Options{Environment: s.environ})
		if err == nil {
			continue
		}
		var agg env.AggregateError
		if !errors.As(err, &agg) {
			problems = append(problems, problem{text: err.Error()})
			continue
		}
		for _, e := range agg.Errors {
			problems = append(problems, s.explain(e))
		}
	}
	return problems
}

// explain turns an error of env into a problem naming the variable and its flag.
func (s *settingsSet) explain(err error) problem {
	var pe env.ParseError
	if errors.As(err, &pe) {
		for _, st := range s.settings {
			if st.Field != pe.Name {
				continue
			}
			if st.Secret != "" {
				return problem{st.Env, s.label(st.Env) + ": invalid value"}
			}
			cause := pe.Err
			var ne *strconv.NumError
			var ve env.ParseValueError
			switch {
			case errors.As(cause, &ne):
				cause = ne.Err
			case errors.As(cause, &ve) && ve.Err != nil:
				cause = ve.Err
			}
			want := ""
			switch {
			case st.Bool:
				want = " (want true or false)"
			case strings.Contains(cause.Error(), "time: "):
				want = " (want a duration such as 500ms, 30s or 5m)"
			}
			// The value is not repeated (it may be a secret in the wrong variable), nor
			// left in the parser's message.
			msg := strings.ReplaceAll(cause.Error(), " "+strconv.Quote(s.environ[st.Env]), "")
			return problem{st.Env, fmt.Sprintf("%s: invalid value: %s%s", s.label(st.Env), msg, want)}
		}
	}
	return problem{text: err.Error()}
}

// label names a variable, and its flag when the value came from the flag.
func (s *settingsSet) label(key string) string {
	for _, st := range s.settings {
		if st.Env == key && st.Flag != "" {
			if s.fromFlag[key] {
				return "--" + st.Flag + " (" + key + ")"
			}
			return key + " (--" + st.Flag + ")"
		}
	}
	return key
}

// allSettings returns every setting of every group, in documentation order.
func allSettings() []setting {
	var out []setting
	for _, g := range allGroups(&config{}) {
		out = append(out, describe(g.name, g.ptr)...)
	}
	return out
}

// settingsTable renders the settings as the Markdown table of the README.
func settingsTable() string {
	var b strings.Builder
	b.WriteString("| Variable | Flag | Default | Description |\n")
	b.WriteString("| --- | --- | --- | --- |\n")
	for _, st := range allSettings() {
		flagCol := "–"
		if st.Flag != "" {
			flagCol = "`--" + st.Flag + "`"
		}
		def := "–"
		if st.Default != "" {
			def = "`" + st.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", st.Env, flagCol, def, strings.ReplaceAll(st.Help, "|", `\|`))
	}
	return b.String()
}

// secretKeys returns the variables whose values are secrets.
func secretKeys() []string {
	var out []string
	for _, st := range allSettings() {
		if st.Secret != "" {
			out = append(out, st.Env)
		}
	}
	return slices.Clip(out)
}
