package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

func TestParseDatabaseURL(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		dialect outbox.Dialect
		masked  string
		secrets []string
		mysql   string // FormatDSN of the go-sql-driver config
		err     string
	}{
		{
			name: "postgres URL goes to pgx unchanged", raw: "postgres://app:pw@db:5432/app?sslmode=disable",
			dialect: outbox.Postgres, masked: "postgres://app:xxxxx@db:5432/app?sslmode=disable", secrets: []string{"pw"},
		},
		{
			name: "postgresql scheme", raw: "postgresql://app@db/app",
			dialect: outbox.Postgres, masked: "postgresql://app@db/app",
		},
		{
			name: "password in the query is masked too", raw: "postgres://db/app?user=app&password=pw",
			dialect: outbox.Postgres, masked: "postgres://db/app?user=app&password=xxxxx", secrets: []string{"pw"},
		},
		{
			name: "mysql URL becomes a go-sql-driver DSN with parseTime", raw: "mysql://app:p%40ss@db:3307/shop?timeout=5s",
			dialect: outbox.MySQL, masked: "mysql://app:xxxxx@db:3307/shop?timeout=5s", secrets: []string{"p%40ss", "p@ss"},
			mysql: "app:p@ss@tcp(db:3307)/shop?parseTime=true&timeout=5s",
		},
		{
			name: "mysql default port", raw: "mysql://root@127.0.0.1/test",
			dialect: outbox.MySQL, masked: "mysql://root@127.0.0.1/test", mysql: "root@tcp(127.0.0.1:3306)/test?parseTime=true",
		},
		{
			name: "mysql parseTime can be overridden", raw: "mysql://root@db/test?parseTime=false",
			dialect: outbox.MySQL, mysql: "root@tcp(db:3306)/test",
		},
		{name: "mysql without database", raw: "mysql://root:pw@db:3306", err: "the path must be the database name"},
		{name: "mysql without user", raw: "mysql://db:3306/test", err: "the user is missing"},
		{name: "mysql bad parameter", raw: "mysql://root:pw@db/test?parseTime=maybe", err: "not a valid MySQL URL"},
		{name: "unsupported scheme", raw: "sqlite://file.db", err: `scheme "sqlite" is not supported`},
		{name: "not a URL", raw: "host=db user=app password=pw", err: "must be a URL"},
		{name: "bad port", raw: "postgres://app:pw@db:port/app", err: "postgres://app:xxxxx@db:port/app is not a valid URL: invalid port"},
		{name: "bad sslmode", raw: "postgres://app:pw@db/app?sslmode=sometimes", err: "not a valid PostgreSQL URL"},
		{name: "unescaped slash in the password", raw: "postgres://u:12pw/5678@host/db",
			err: "postgres://u:xxxxx@host/db: the user or password holds a character that must be percent-encoded"},
		{name: "unescaped @ and ? in the password", raw: "mysql://u:a@b?pw@host/db", err: "write / as %2F, ? as %3F"},
		{name: "pgx error about sslpassword", raw: "postgres://u@db/app?sslpassword=pwpw&sslmode=sometimes",
			err: "postgres://u@db/app?sslpassword=xxxxx&sslmode=sometimes is not a valid PostgreSQL URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := parseDatabaseURL(tt.raw)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "pw") {
					t.Errorf("error %q contains the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if db.dialect != tt.dialect || fmt.Sprint(db.secrets) != fmt.Sprint(tt.secrets) || (tt.masked != "" && db.masked != tt.masked) {
				t.Errorf("got dialect %v secrets %q masked %q", db.dialect, db.secrets, db.masked)
			}
			if tt.mysql != "" && db.mysql.FormatDSN() != tt.mysql {
				t.Errorf("mysql DSN %q, want %q", db.mysql.FormatDSN(), tt.mysql)
			}
		})
	}
}

// Both outputs of the app mask the secrets registered with its Redactor, in any
// encoding, from the first line printed.
func TestAppOutputsAreMasked(t *testing.T) {
	var out, errOut bytes.Buffer
	a := newApp(&out, &errOut, nil)
	a.red.Add(`p@ss"w/rd`)
	fmt.Fprintf(a.stdout, "raw p@ss\"w/rd, url p%%40ss%%22w%%2frd\n")
	fmt.Fprintf(a.stderr, "json %q\n", `p@ss"w/rd`)
	if got, want := out.String(), "raw xxxxx, url xxxxx\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got, want := errOut.String(), "json \"xxxxx\"\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
}

// loadForTest loads the run settings from environ and args.
func loadForTest(t *testing.T, environ map[string]string, args ...string) (*config, []problem) {
	t.Helper()
	fs := newFlagSet("run")
	cfg := &config{}
	set := newSettingsSet(fs, environ, runGroups(cfg)...)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cfg, collectProblems(set, cfg, true)
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	environ := map[string]string{
		"RELAY_DATABASE_URL":  "postgres://db/app",
		"RELAY_KAFKA_BROKERS": "env:9092",
		"RELAY_BATCH_SIZE":    "10",
		"RELAY_PPROF":         "false",
		"RELAY_MAX_LAG":       "off",
	}
	cfg, problems := loadForTest(t, environ, "--kafka-brokers=a:1,b:2", "-batch-size", "20", "--pprof", "--retention", "1h")
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if got := strings.Join(cfg.Kafka.Brokers, ","); got != "a:1,b:2" {
		t.Errorf("brokers %q", got)
	}
	if cfg.Forward.BatchSize != 20 || !cfg.HTTP.Pprof || cfg.Forward.MaxLag != -1 ||
		time.Duration(cfg.Forward.Retention) != time.Hour {
		t.Errorf("settings %+v %+v", cfg.Forward, cfg.HTTP)
	}
	// Defaults apply to what is set nowhere, and reach the library configs.
	fc := cfg.forwarderConfig()
	if fc.PollInterval != time.Second || fc.MaxLag != -1 || fc.Outbox.Name != "outbox" || fc.Outbox.Dialect != outbox.Postgres ||
		fc.CloseTimeout != 15*time.Second {
		t.Errorf("forwarder config %+v", fc)
	}
	if kc := cfg.kafkaConfig(); kc.Compression != adapter.CompressionSnappy || kc.ClientID != "millrace-relay" || kc.Marshaler == nil {
		t.Errorf("kafka config %v", kc)
	}
	if ac := cfg.publisherConfig(nil, nil); ac.MaxRetries != 3 || ac.MaxElapsedTime != 2*time.Minute {
		t.Errorf("publisher config %+v", ac)
	}
}

func TestProblemsNameTheFlagWhenTheValueCameFromIt(t *testing.T) {
	_, problems := loadForTest(t, map[string]string{"RELAY_DATABASE_URL": "postgres://db/app", "RELAY_BATCH_SIZE": "x"},
		"--kafka-brokers", "nope", "--retry-max-retries", "-1")
	var lines []string
	for _, p := range problems {
		lines = append(lines, p.text)
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		`--kafka-brokers (RELAY_KAFKA_BROKERS): address 1 of 1 is not a host:port address`,
		`RELAY_BATCH_SIZE (--batch-size): invalid value: invalid syntax`,
		"--retry-max-retries (RELAY_RETRY_MAX_RETRIES): must not be negative, got -1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if len(problems) != 3 {
		t.Errorf("%d problems, want 3 (one per setting):\n%s", len(problems), got)
	}
}

// No problem repeats the value it rejects: a secret put in the wrong variable, or
// given to the wrong flag, is not printed. Every setting gets the same secret.
func TestRejectedValuesAreNotRepeated(t *testing.T) {
	const secret = "Hunter2-S3cret"
	environ := map[string]string{}
	for _, st := range allSettings() {
		environ[st.Env] = secret
	}
	environ["RELAY_DATABASE_URL"] = "postgres://db/app"
	_, problems := loadForTest(t, environ)
	if len(problems) < 10 {
		t.Errorf("only %d problems: %v", len(problems), problems)
	}
	for _, p := range problems {
		if strings.Contains(p.text, "Hunter2") {
			t.Errorf("problem repeats the value: %s", p.text)
		}
	}
	// Each setting on its own too, so that no problem hides behind another.
	for _, st := range allSettings() {
		if st.Env == "RELAY_DATABASE_URL" || st.Env == "RELAY_KAFKA_SASL_PASSWORD" {
			continue
		}
		env := map[string]string{"RELAY_DATABASE_URL": "postgres://db/app", "RELAY_KAFKA_BROKERS": "k:9092", st.Env: secret}
		if strings.HasPrefix(st.Env, "RELAY_KAFKA_SASL") {
			env["RELAY_KAFKA_SASL_USER"] = "u"
			env["RELAY_KAFKA_SASL_PASSWORD"] = "pw-pw"
			env[st.Env] = secret
		}
		_, problems := loadForTest(t, env)
		for _, p := range problems {
			if strings.Contains(p.text, "Hunter2") {
				t.Errorf("%s: problem repeats the value: %s", st.Env, p.text)
			}
		}
	}
}

// A library's message that quotes a value is shown without it.
func TestHideValues(t *testing.T) {
	set := &settingsSet{
		settings: []setting{{Env: "RELAY_KAFKA_SASL_MECHANISM"}, {Env: "RELAY_KAFKA_CLIENT_ID"}},
		environ:  map[string]string{"RELAY_KAFKA_SASL_MECHANISM": "Hunter2", "RELAY_KAFKA_CLIENT_ID": "id-1"},
	}
	got := hideValues(set, problem{text: `adapter: KafkaConfig.SASL.Mechanism "Hunter2" is not supported; ClientID "id-1"`})
	if want := `adapter: KafkaConfig.SASL.Mechanism (value not shown) is not supported; ClientID (value not shown)`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got = hideValues(set, problem{key: "RELAY_KAFKA_CLIENT_ID", text: `"id-1" and "Hunter2"`})
	if want := `(value not shown) and "Hunter2"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestZeroRetriesMeansNone(t *testing.T) {
	cfg, problems := loadForTest(t, map[string]string{"RELAY_DATABASE_URL": "postgres://db/app",
		"RELAY_KAFKA_BROKERS": "k:9092", "RELAY_RETRY_MAX_RETRIES": "0"})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if ac := cfg.publisherConfig(nil, nil); ac.MaxRetries != -1 {
		t.Errorf("MaxRetries %d, want -1 (the adapter's none)", ac.MaxRetries)
	}
}

// The defaults the relay restates are the libraries' own: a change there shows up
// here instead of silently drifting from the documentation.
func TestDefaultsMatchLibraries(t *testing.T) {
	def := map[string]string{}
	for _, st := range allSettings() {
		def[st.Env] = st.Default
	}
	dur := func(key string) time.Duration {
		d, err := time.ParseDuration(def[key])
		if err != nil {
			t.Fatalf("%s default %q: %v", key, def[key], err)
		}
		return d
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"RELAY_OUTBOX", def["RELAY_OUTBOX"], outbox.DefaultName},
		{"RELAY_CONSUMER_GROUP", def["RELAY_CONSUMER_GROUP"], outbox.DefaultConsumerGroup},
		{"RELAY_BATCH_SIZE", def["RELAY_BATCH_SIZE"], "1000"},
		{"RELAY_POLL_INTERVAL", dur("RELAY_POLL_INTERVAL"), router.DefaultPollInterval},
		{"RELAY_RETRY_INITIAL", dur("RELAY_RETRY_INITIAL"), router.DefaultRetryInitial},
		{"RELAY_RETRY_INITIAL", dur("RELAY_RETRY_INITIAL"), adapter.DefaultInitialInterval},
		{"RELAY_RETRY_MAX_INTERVAL", dur("RELAY_RETRY_MAX_INTERVAL"), adapter.DefaultMaxInterval},
		{"RELAY_RETRY_MAX_ELAPSED", dur("RELAY_RETRY_MAX_ELAPSED"), adapter.DefaultMaxElapsedTime},
		{"RELAY_RETRY_MAX_RETRIES", def["RELAY_RETRY_MAX_RETRIES"], "3"},
		{"RELAY_BATCH_RETRY_MAX", dur("RELAY_BATCH_RETRY_MAX"), router.DefaultRetryMax},
		{"RELAY_FATAL_RETRY_INTERVAL", dur("RELAY_FATAL_RETRY_INTERVAL"), router.DefaultFatalRetryInterval},
		{"RELAY_UNHEALTHY_AFTER", dur("RELAY_UNHEALTHY_AFTER"), router.DefaultUnhealthyAfter},
		{"RELAY_MAX_LAG", dur("RELAY_MAX_LAG"), router.DefaultMaxLag},
		{"RELAY_RETENTION", dur("RELAY_RETENTION"), router.DefaultRetention},
		{"RELAY_STATS_INTERVAL", dur("RELAY_STATS_INTERVAL"), router.DefaultStatsInterval},
		{"RELAY_READY_WINDOW", dur("RELAY_READY_WINDOW"), adapter.DefaultHealthWindow},
		{"RELAY_READY_TIMEOUT", dur("RELAY_READY_TIMEOUT"), adapter.DefaultBrokerCheckTimeout},
		{"RELAY_READY_TIMEOUT", dur("RELAY_READY_TIMEOUT"), router.DefaultHealthCheckTimeout},
		{"RELAY_READY_ERROR_RATE", def["RELAY_READY_ERROR_RATE"], fmt.Sprint(adapter.DefaultHealthMaxErrorRate)},
		{"RELAY_READY_MIN_ATTEMPTS", def["RELAY_READY_MIN_ATTEMPTS"], fmt.Sprint(adapter.DefaultHealthMinSamples)},
		{"RELAY_KAFKA_COMPRESSION", def["RELAY_KAFKA_COMPRESSION"], adapter.CompressionSnappy.String()},
		{"RELAY_KAFKA_MAX_MESSAGE_BYTES", def["RELAY_KAFKA_MAX_MESSAGE_BYTES"], "1048576"},
	}
	if router.DefaultBatchSize != 1000 || adapter.DefaultMaxRetries != 3 || adapter.DefaultKafkaMaxMessageBytes != 1048576 {
		t.Errorf("a library default changed: update the envDefault tags")
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s defaults to %v, the library to %v", c.key, c.got, c.want)
		}
	}
}

// The configuration tables of this README and of the project's README are the one
// generated from the settings.
func TestREADMEConfigurationTable(t *testing.T) {
	for _, name := range []string{"README.md", "../../README.md"} {
		readme, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if table := settingsTable(); !strings.Contains(string(readme), table) {
			t.Errorf("%s does not contain the current settings table; replace it with the output of `relay help env`:\n%s", name, table)
		}
	}
}

func TestEveryVariableHasAFlagExceptSecretValues(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	cfg := &config{}
	newSettingsSet(fs, nil, allGroups(cfg)...)
	for _, st := range allSettings() {
		has := fs.Lookup(st.Flag) != nil && st.Flag != ""
		if has == (st.Secret == "value") {
			t.Errorf("%s: flag %v, secret %q", st.Env, has, st.Secret)
		}
		if st.Help == "" {
			t.Errorf("%s has no help", st.Env)
		}
	}
	if got := secretKeys(); strings.Join(got, ",") != "RELAY_DATABASE_URL,RELAY_KAFKA_SASL_PASSWORD" {
		t.Errorf("secret settings %v", got)
	}
}

func TestIDListTakesRepeatsAndCommaLists(t *testing.T) {
	var l idList
	for _, v := range []string{"3", "5, 7", "9,"} {
		if err := l.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if l.String() != "3,5,7,9" {
		t.Errorf("ids %s", l.String())
	}
	for _, bad := range []string{"x", "0", "-2", "1.5"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

// The relay accepts the range of message sizes the Kafka publisher accepts, so a
// value it takes never fails later in adapter.KafkaConfig.Validate.
func TestMaxMessageBytesRangeIsTheAdapters(t *testing.T) {
	for v, ok := range map[string]bool{"511": false, "512": true, "1048576": true, "1073741824": true, "1073741825": false} {
		_, problems := loadForTest(t, map[string]string{"RELAY_DATABASE_URL": "postgres://db/app",
			"RELAY_KAFKA_BROKERS": "k:9092", "RELAY_KAFKA_MAX_MESSAGE_BYTES": v})
		if got := len(problems) == 0; got != ok {
			t.Errorf("RELAY_KAFKA_MAX_MESSAGE_BYTES=%s: accepted %v, want %v (%v)", v, got, ok, problems)
		}
	}
}
