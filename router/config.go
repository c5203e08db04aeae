package router

import (
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/outbox"
)

// Defaults of Config.
const (
	DefaultBatchSize          = 1000
	DefaultPollInterval       = time.Second
	DefaultRetryInitial       = 100 * time.Millisecond
	DefaultRetryMax           = 10 * time.Second
	DefaultFatalRetryInterval = 30 * time.Second
	DefaultUnhealthyAfter     = time.Minute
	DefaultMaxLag             = 5 * time.Minute
	DefaultStatsInterval      = 5 * time.Second
	DefaultRetention          = 24 * time.Hour
	DefaultRetentionInterval  = time.Minute
	DefaultRetentionBatch     = 1000
	DefaultCloseTimeout       = 30 * time.Second
	DefaultHealthCheckTimeout = 5 * time.Second
)

// Config configures a Forwarder. It is passed by value; a zero field means its
// default, and NewForwarder rejects invalid values with an error naming the field.
type Config struct {
	// DB is the database holding the outbox. Required. For LISTEN/NOTIFY on
	// PostgreSQL it must use the pgx stdlib driver ("pgx").
	DB *sql.DB
	// Outbox describes the outbox tables and the consumer group. Outbox.Dialect is
	// required.
	Outbox outbox.Config
	// Publisher writes the events to Kafka. Required. Use the adapter decorator
	// around adapter.KafkaPublisher configured with Marshaler() (see NewKafkaPublisher):
	// the forwarder reads per-message failures from *adapter.PublishError, and the
	// decorator's HealthCheck joins the forwarder's.
	Publisher message.Publisher

	// BatchSize is how many events one batch reads, publishes and acknowledges at
	// most; it bounds the forwarder's memory and the duplicates after a crash.
	// 1..outbox.MaxBatchSize. Defaults to 1000.
	BatchSize int
	// PollInterval is how often an idle forwarder looks for new events. On
	// PostgreSQL, writers also notify commits (LISTEN/NOTIFY) and the forwarder wakes
	// at once; polling remains the fallback. Defaults to 1s.
	PollInterval time.Duration
	// DisableNotify turns LISTEN/NOTIFY off on PostgreSQL: the forwarder only polls.
	DisableNotify bool

	// RetryInitial and RetryMax bound the forwarder's own backoff after a batch failed
	// for a retriable reason (the publisher's retry budget ran out, or the database
	// failed): it waits RetryInitial, doubling up to RetryMax, and tries the same
	// events again, for as long as the failure lasts. Defaults to 100ms and 10s.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// FatalRetryInterval is how long the forwarder waits after a fatal failure
	// (authorization, SASL, unsupported version) before it tries again; it resumes by
	// itself once the cause is fixed. Defaults to 30s.
	FatalRetryInterval time.Duration
	// UnhealthyAfter is how long retriable failures may last before HealthCheck
	// reports unhealthy. Defaults to 1m.
	UnhealthyAfter time.Duration
	// MaxLag is the age of the oldest pending event above which HealthCheck reports
	// unhealthy. A negative value disables the check. Defaults to 5m.
	MaxLag time.Duration
	// HealthCheckTimeout bounds the database ping of HealthCheck (the publisher's
	// broker check has its own timeout). Defaults to 5s.
	HealthCheckTimeout time.Duration
	// StatsInterval is how often the backlog (pending events, lag, dead letters) is
	// read from the database for Stats, metrics and health. Defaults to 5s.
	StatsInterval time.Duration

	// Retention is how long forwarded events stay in the outbox before they are
	// deleted. A negative value disables the deletion. Defaults to 24h.
	Retention time.Duration
	// RetentionInterval is how often forwarded events are deleted. Defaults to 1m.
	RetentionInterval time.Duration
	// RetentionBatch is how many rows one deletion transaction removes at most, so
	// the outbox is never locked for long. Defaults to 1000.
	RetentionBatch int

	// CloseTimeout is how long Close waits for the batch in flight to finish before
	// it abandons it (its events are then sent again by the next forwarder).
	// Defaults to 30s.
	CloseTimeout time.Duration

	// Logger receives the forwarder's logs (never payloads). nil means no logs.
	Logger *zerolog.Logger
	// Registerer, when set, receives the forwarder's Prometheus collectors.
	Registerer prometheus.Registerer

	// TracerProvider creates the span of each batch (see the package documentation on
	// tracing). nil means the global provider of go.opentelemetry.io/otel, a no-op
	// unless the application installs one.
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.RetryInitial, DefaultRetryInitial)
	def(&c.RetryMax, DefaultRetryMax)
	def(&c.FatalRetryInterval, DefaultFatalRetryInterval)
	def(&c.UnhealthyAfter, DefaultUnhealthyAfter)
	def(&c.MaxLag, DefaultMaxLag)
	def(&c.StatsInterval, DefaultStatsInterval)
	def(&c.Retention, DefaultRetention)
	def(&c.RetentionInterval, DefaultRetentionInterval)
	def(&c.CloseTimeout, DefaultCloseTimeout)
	def(&c.HealthCheckTimeout, DefaultHealthCheckTimeout)
	if c.RetentionBatch == 0 {
		c.RetentionBatch = DefaultRetentionBatch
	}
	return c
}

// Validate reports every invalid field of c after defaults are applied, each error
// naming the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("router: Config.%s %s", field, fmt.Sprintf(format, args...)))
	}
	if c.DB == nil {
		bad("DB", "is required")
	}
	if c.Publisher == nil {
		bad("Publisher", "is required")
	}
	if err := c.Outbox.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("router: Config.Outbox: %w", err))
	}
	if c.BatchSize < 1 || c.BatchSize > outbox.MaxBatchSize {
		bad("BatchSize", "must be in 1..%d, got %d", outbox.MaxBatchSize, c.BatchSize)
	}
	positive := []struct {
		name string
		v    time.Duration
	}{
		{"PollInterval", c.PollInterval}, {"RetryInitial", c.RetryInitial}, {"RetryMax", c.RetryMax},
		{"FatalRetryInterval", c.FatalRetryInterval}, {"UnhealthyAfter", c.UnhealthyAfter},
		{"StatsInterval", c.StatsInterval}, {"RetentionInterval", c.RetentionInterval},
		{"CloseTimeout", c.CloseTimeout}, {"HealthCheckTimeout", c.HealthCheckTimeout},
	}
	for _, p := range positive {
		if p.v < 0 {
			bad(p.name, "must not be negative, got %v", p.v)
		}
	}
	if c.RetryMax < c.RetryInitial {
		bad("RetryMax", "(%v) must be at least RetryInitial (%v)", c.RetryMax, c.RetryInitial)
	}
	if c.RetentionBatch < 1 {
		bad("RetentionBatch", "must be positive, got %d", c.RetentionBatch)
	}
	return errors.Join(errs...)
}
