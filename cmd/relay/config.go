package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/redact"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// config is every setting of the relay; a command loads the groups it uses.
type config struct {
	DB      dbSettings
	Log     logSettings
	Kafka   kafkaSettings
	Forward forwardSettings
	HTTP    httpSettings

	// Derived by validate.
	database  database
	logLevel  zerolog.Level
	saslPass  string // the SASL password, from the variable or the file
	secrets   []string
	shutdown  time.Duration
	httpOff   bool
	kafkaComp adapter.Compression
}

// allGroups lists the groups of c in documentation order.
func allGroups(c *config) []group {
	return []group{
		{"database", &c.DB},
		{"kafka", &c.Kafka},
		{"forwarder", &c.Forward},
		{"http", &c.HTTP},
		{"log", &c.Log},
	}
}

// Groups used by each command.
func dbGroups(c *config) []group  { return []group{{"database", &c.DB}, {"log", &c.Log}} }
func runGroups(c *config) []group { return allGroups(c) }

// database is a parsed RELAY_DATABASE_URL.
type database struct {
	dialect outbox.Dialect
	driver  string        // "pgx" or "mysql"
	dsn     string        // for the pgx driver
	mysql   *mysql.Config // for the mysql connector
	masked  string        // the URL with its secrets replaced by xxxxx (redact.DSN)
	secrets []string      // the password and secret parameters, as written and decoded
}

// validate checks the loaded groups, derives what the commands need and returns one
// problem per invalid setting. runMode adds the checks of relay run.
//
// A problem never repeats a text value it rejects: a value put in the wrong
// variable may be a secret (a password in RELAY_KAFKA_SASL_MECHANISM, a key's PEM
// in RELAY_KAFKA_TLS_KEY). Numbers and durations that parsed are shown.
func (c *config) validate(s *settingsSet, runMode bool) []problem {
	var problems []problem
	bad := func(key, format string, args ...any) {
		problems = append(problems, problem{key, s.label(key) + ": " + fmt.Sprintf(format, args...)})
	}

	// Database and outbox.
	if strings.TrimSpace(c.DB.DatabaseURL) == "" {
		bad("RELAY_DATABASE_URL", "is required: postgres://user:pass@host:5432/db or mysql://user:pass@host:3306/db")
	} else if db, err := parseDatabaseURL(c.DB.DatabaseURL); err != nil {
		bad("RELAY_DATABASE_URL", "%v", err)
	} else {
		c.database = db
		c.secrets = append(c.secrets, db.secrets...)
	}
	if c.DB.Outbox == "" {
		bad("RELAY_OUTBOX", "must not be empty")
	} else if err := (outbox.Config{Dialect: outbox.Postgres, Name: c.DB.Outbox}).Validate(); err != nil {
		bad("RELAY_OUTBOX", "%s", hideValue(strings.TrimPrefix(unwrapMessage(err, outbox.ErrInvalidConfig), "Name "), c.DB.Outbox))
	}
	if c.DB.ConsumerGroup == "" {
		bad("RELAY_CONSUMER_GROUP", "must not be empty")
	} else if err := (outbox.Config{Dialect: outbox.Postgres, ConsumerGroup: c.DB.ConsumerGroup}).Validate(); err != nil {
		bad("RELAY_CONSUMER_GROUP", "%s", hideValue(strings.TrimPrefix(unwrapMessage(err, outbox.ErrInvalidConfig), "ConsumerGroup "), c.DB.ConsumerGroup))
	}
	if c.DB.ConnectTimeout <= 0 {
		bad("RELAY_CONNECT_TIMEOUT", "must be positive, got %v", c.DB.ConnectTimeout)
	}

	// Logs.
	if lvl, err := zerolog.ParseLevel(strings.ToLower(c.Log.Level)); err != nil || c.Log.Level == "" ||
		lvl < zerolog.TraceLevel || lvl > zerolog.ErrorLevel {
		bad("LOG_LEVEL", "must be trace, debug, info, warn or error")
	} else {
		c.logLevel = lvl
	}
	switch strings.ToLower(c.Log.Format) {
	case "json", "console":
	default:
		bad("LOG_FORMAT", "must be json or console")
	}

	if !runMode {
		return problems
	}

	// Kafka.
	k := &c.Kafka
	if len(k.Brokers) == 0 {
		bad("RELAY_KAFKA_BROKERS", "is required: comma-separated host:port addresses of the bootstrap brokers")
	}
	for i, b := range k.Brokers {
		b = strings.TrimSpace(b)
		k.Brokers[i] = b
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" {
			bad("RELAY_KAFKA_BROKERS", "address %d of %d is not a host:port address", i+1, len(k.Brokers))
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			bad("RELAY_KAFKA_BROKERS", "address %d of %d has an invalid port (1-65535)", i+1, len(k.Brokers))
		}
	}
	if k.ClientID == "" {
		bad("RELAY_KAFKA_CLIENT_ID", "must not be empty")
	}
	switch strings.ToLower(k.Compression) {
	case "none":
		c.kafkaComp = adapter.CompressionNone
	case "gzip":
		c.kafkaComp = adapter.CompressionGZIP
	case "snappy":
		c.kafkaComp = adapter.CompressionSnappy
	case "lz4":
		c.kafkaComp = adapter.CompressionLZ4
	case "zstd":
		c.kafkaComp = adapter.CompressionZSTD
	default:
		bad("RELAY_KAFKA_COMPRESSION", "must be none, gzip, snappy, lz4 or zstd")
	}
	if k.MaxMessageBytes < 512 || k.MaxMessageBytes > 1<<30 {
		// The range adapter.KafkaConfig accepts (franz-go's producer batch limits).
		bad("RELAY_KAFKA_MAX_MESSAGE_BYTES", "must be in 512..1073741824")
	}
	for _, f := range []struct{ key, path string }{
		{"RELAY_KAFKA_TLS_CA", k.TLSCA}, {"RELAY_KAFKA_TLS_CERT", k.TLSCert}, {"RELAY_KAFKA_TLS_KEY", k.TLSKey},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad(f.key, "cannot read the file it names: %v (a path is expected, not the PEM text)", pathError(err))
		}
	}
	if (k.TLSCert == "") != (k.TLSKey == "") {
		if k.TLSCert == "" {
			bad("RELAY_KAFKA_TLS_CERT", "is required with RELAY_KAFKA_TLS_KEY")
		} else {
			bad("RELAY_KAFKA_TLS_KEY", "is required with RELAY_KAFKA_TLS_CERT")
		}
	}
	c.saslPass = k.SASLPassword
	if k.SASLPasswordFile != "" {
		if k.SASLPassword != "" {
			bad("RELAY_KAFKA_SASL_PASSWORD_FILE", "and RELAY_KAFKA_SASL_PASSWORD are both set: keep one")
		} else if b, err := os.ReadFile(k.SASLPasswordFile); err != nil {
			bad("RELAY_KAFKA_SASL_PASSWORD_FILE", "cannot read the file it names: %v", pathError(err))
		} else {
			c.saslPass = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			if c.saslPass == "" {
				bad("RELAY_KAFKA_SASL_PASSWORD_FILE", "names an empty file")
			}
		}
	}
	if c.saslPass != "" {
		c.secrets = append(c.secrets, c.saslPass)
	}
	if k.SASLMechanism != "" || k.SASLUser != "" || c.saslPass != "" {
		switch strings.ToUpper(k.SASLMechanism) {
		case "", string(adapter.SASLPlain), string(adapter.SASLSCRAMSHA256), string(adapter.SASLSCRAMSHA512):
			k.SASLMechanism = strings.ToUpper(k.SASLMechanism)
		default:
			bad("RELAY_KAFKA_SASL_MECHANISM", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
		if k.SASLUser == "" {
			bad("RELAY_KAFKA_SASL_USER", "is required with SASL")
		}
		if c.saslPass == "" && k.SASLPasswordFile == "" {
			bad("RELAY_KAFKA_SASL_PASSWORD", "is required with SASL (or RELAY_KAFKA_SASL_PASSWORD_FILE)")
		}
	}

	// Forwarder.
	f := &c.Forward
	if f.BatchSize < 1 || f.BatchSize > outbox.MaxBatchSize {
		bad("RELAY_BATCH_SIZE", "must be in 1..%d, got %d", outbox.MaxBatchSize, f.BatchSize)
	}
	if f.RetryMaxRetries < 0 {
		bad("RELAY_RETRY_MAX_RETRIES", "must not be negative, got %d", f.RetryMaxRetries)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"RELAY_POLL_INTERVAL", f.PollInterval}, {"RELAY_RETRY_INITIAL", f.RetryInitial},
		{"RELAY_RETRY_MAX_INTERVAL", f.RetryMaxInterval}, {"RELAY_RETRY_MAX_ELAPSED", f.RetryMaxElapsed},
		{"RELAY_BATCH_RETRY_MAX", f.BatchRetryMax}, {"RELAY_FATAL_RETRY_INTERVAL", f.FatalRetryInterval},
		{"RELAY_UNHEALTHY_AFTER", f.UnhealthyAfter}, {"RELAY_STATS_INTERVAL", f.StatsInterval},
		{"RELAY_SHUTDOWN_TIMEOUT", f.ShutdownTimeout}, {"RELAY_READY_WINDOW", f.ReadyWindow},
		{"RELAY_READY_TIMEOUT", f.ReadyTimeout},
	} {
		if d.v <= 0 {
			bad(d.key, "must be positive, got %v", d.v)
		}
	}
	if f.RetryInitial > 0 && f.RetryMaxInterval > 0 && f.RetryMaxInterval < f.RetryInitial {
		bad("RELAY_RETRY_MAX_INTERVAL", "(%v) must be at least RELAY_RETRY_INITIAL (%v)", f.RetryMaxInterval, f.RetryInitial)
	}
	if f.RetryInitial > 0 && f.BatchRetryMax > 0 && f.BatchRetryMax < f.RetryInitial {
		bad("RELAY_BATCH_RETRY_MAX", "(%v) must be at least RELAY_RETRY_INITIAL (%v)", f.BatchRetryMax, f.RetryInitial)
	}
	if f.ReadyErrorRate <= 0 || f.ReadyErrorRate > 1 {
		bad("RELAY_READY_ERROR_RATE", "must be above 0 and at most 1 (1 disables the rule), got %v", f.ReadyErrorRate)
	}
	if f.ReadyMinAttempts < 1 {
		bad("RELAY_READY_MIN_ATTEMPTS", "must be at least 1, got %d", f.ReadyMinAttempts)
	}
	if f.MaxLag == 0 {
		bad("RELAY_MAX_LAG", `0 is ambiguous: use "off" to disable the check, or a duration`)
	}
	if f.Retention == 0 {
		bad("RELAY_RETENTION", `0 is ambiguous: use "off" to keep forwarded events, or a duration`)
	}
	c.shutdown = f.ShutdownTimeout

	// HTTP.
	if strings.EqualFold(c.HTTP.Addr, "off") {
		c.httpOff = true
	} else if _, port, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		bad("RELAY_HTTP_ADDR", "is not a host:port address (or off)")
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad("RELAY_HTTP_ADDR", "has an invalid port (0-65535)")
	}

	// Last resort: whatever the libraries still reject, with their field names.
	if len(problems) == 0 {
		kcfg, acfg := c.kafkaConfig(), c.publisherConfig(nil, nil)
		for _, err := range []error{kcfg.Validate(), acfg.Validate()} {
			if err != nil {
				for _, l := range splitLines(err) {
					problems = append(problems, problem{text: l})
				}
			}
		}
	}
	return problems
}

// outboxConfig is the outbox of the settings.
func (c *config) outboxConfig() outbox.Config {
	return outbox.Config{Dialect: c.database.dialect, Name: c.DB.Outbox, ConsumerGroup: c.DB.ConsumerGroup}
}

// kafkaConfig is the Kafka producer of the settings, with the outbox marshaler.
func (c *config) kafkaConfig() adapter.KafkaConfig {
	k := c.Kafka
	kc := adapter.KafkaConfig{
		Brokers:         k.Brokers,
		Marshaler:       router.Marshaler(),
		ClientID:        k.ClientID,
		Compression:     c.kafkaComp,
		MaxMessageBytes: k.MaxMessageBytes,
		TLS: adapter.KafkaTLS{
			Enable:             k.TLS,
			CAFile:             k.TLSCA,
			CertFile:           k.TLSCert,
			KeyFile:            k.TLSKey,
			InsecureSkipVerify: k.TLSInsecureSkipVerify,
		},
	}
	if k.SASLUser != "" || k.SASLMechanism != "" {
		kc.SASL = adapter.KafkaSASL{
			Mechanism: adapter.SASLMechanism(k.SASLMechanism),
			User:      k.SASLUser,
			Password:  c.saslPass,
		}
	}
	return kc
}

// publisherConfig is the decorator of the settings.
func (c *config) publisherConfig(log *zerolog.Logger, reg prometheus.Registerer) adapter.Config {
	f := c.Forward
	retries := f.RetryMaxRetries
	if retries == 0 {
		retries = -1 // the adapter's way to say none
	}
	ac := adapter.Config{
		MaxRetries:      retries,
		InitialInterval: f.RetryInitial,
		MaxInterval:     f.RetryMaxInterval,
		MaxElapsedTime:  f.RetryMaxElapsed,
		CloseTimeout:    c.shutdown * 3 / 10,
		Logger:          log,

		HealthWindow:       f.ReadyWindow,
		HealthMaxErrorRate: f.ReadyErrorRate,
		HealthMinSamples:   f.ReadyMinAttempts,
		BrokerCheckTimeout: f.ReadyTimeout,
	}
	if reg != nil {
		ac.Registerer = reg
	}
	return ac
}

// forwarderConfig is the forwarder of the settings, without DB and Publisher.
func (c *config) forwarderConfig() router.Config {
	f := c.Forward
	return router.Config{
		Outbox:             c.outboxConfig(),
		BatchSize:          f.BatchSize,
		PollInterval:       f.PollInterval,
		DisableNotify:      !f.PGNotify,
		RetryInitial:       f.RetryInitial,
		RetryMax:           f.BatchRetryMax,
		FatalRetryInterval: f.FatalRetryInterval,
		UnhealthyAfter:     f.UnhealthyAfter,
		MaxLag:             time.Duration(f.MaxLag),
		HealthCheckTimeout: f.ReadyTimeout,
		StatsInterval:      f.StatsInterval,
		Retention:          time.Duration(f.Retention),
		CloseTimeout:       c.shutdown * 6 / 10,
	}
}

// parseDatabaseURL parses RELAY_DATABASE_URL. Its errors never contain the password.
//
// A user or password holding an unescaped "/", "?", "#" or "@" is refused: the URL
// then means something else than what was meant (postgres://u:1234/5678@host/db is
// the host u, port 1234), and the error says how to escape them.
func parseDatabaseURL(raw string) (database, error) {
	raw = strings.TrimSpace(raw)
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return database{}, errors.New("must be a URL: postgres://user:pass@host:5432/db or mysql://user:pass@host:3306/db")
	}
	masked := redact.DSN(raw)
	if at := strings.LastIndex(rest, "@"); at >= 0 && strings.ContainsAny(rest[:at], "/?#@") {
		return database{}, fmt.Errorf("%s: the user or password holds a character that must be percent-encoded "+
			"(everything before the last @ is read as user:password): write / as %%2F, ? as %%3F, # as %%23 and @ as %%40 "+
			"(an @ elsewhere in the URL, as %%40 too)", masked)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL, password included
		}
		return database{}, fmt.Errorf("%s is not a valid URL: %v", masked, err)
	}
	secrets := redact.DSNSecrets(raw)
	db := database{masked: masked, secrets: secrets}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		if _, err := pgx.ParseConfig(raw); err != nil {
			return database{}, fmt.Errorf("%s is not a valid PostgreSQL URL: %s", masked, redact.All(pgxCause(err), secrets...))
		}
		db.dialect, db.driver, db.dsn = outbox.Postgres, "pgx", raw
	case "mysql":
		mc, err := mysqlConfig(u)
		if err != nil {
			return database{}, fmt.Errorf("%s is not a valid MySQL URL: %s", masked, redact.All(err.Error(), secrets...))
		}
		db.dialect, db.driver, db.mysql = outbox.MySQL, "mysql", mc
	default:
		return database{}, fmt.Errorf("scheme %q is not supported: use postgres://, postgresql:// or mysql://", scheme)
	}
	return db, nil
}

// mysqlConfig converts mysql://user:pass@host:port/db?params into the
// configuration of go-sql-driver/mysql (user:pass@tcp(host:port)/db?params), with
// parseTime=true unless the URL sets it.
func mysqlConfig(u *url.URL) (*mysql.Config, error) {
	if u.Host == "" {
		return nil, errors.New("the host is missing")
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "3306")
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, errors.New("the user is missing")
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" || strings.Contains(dbName, "/") {
		return nil, errors.New("the path must be the database name (mysql://user:pass@host:3306/db)")
	}
	q := u.Query()
	if !q.Has("parseTime") {
		q.Set("parseTime", "true")
	}
	pass, _ := u.User.Password()
	q.Del("password")
	// ParseDSN applies and validates the parameters exactly as the driver documents
	// them; the user and password are set on the result, never written into a string.
	mc, err := mysql.ParseDSN("tcp(" + host + ")/" + dbName + "?" + q.Encode())
	if err != nil {
		return nil, err
	}
	mc.User = u.User.Username()
	mc.Passwd = pass
	if pass == "" {
		mc.Passwd = u.Query().Get("password")
	}
	return mc, nil
}

// pgxCause returns the message of a pgx.ParseConfig error without the connection
// string that pgconn's ParseConfigError repeats (redacted by pgconn on a best-effort
// basis only).
func pgxCause(err error) string {
	var pce *pgconn.ParseConfigError
	if !errors.As(err, &pce) {
		return err.Error()
	}
	msg := pce.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		msg = msg[i+len("`: "):]
	}
	return msg
}

// hideValue removes the quoted value v from msg, an error text that repeats it.
func hideValue(msg, v string) string {
	return strings.ReplaceAll(msg, strconv.Quote(v)+" ", "")
}

// unwrapMessage returns err's message without the sentinel's prefix.
func unwrapMessage(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}

// splitLines returns one string per joined error.
func splitLines(err error) []string {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// pathError drops the path that *fs.PathError repeats.
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
