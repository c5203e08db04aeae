package adapter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of Config. They follow the Kafka Java producer where it has an equivalent
// (KIP-580 backoff, delivery.timeout.ms for the budget).
const (
	DefaultMaxRetries          = 3
	DefaultInitialInterval     = 100 * time.Millisecond
	DefaultMaxInterval         = 5 * time.Second
	DefaultMultiplier          = 2.0
	DefaultRandomizationFactor = 0.2
	DefaultMaxElapsedTime      = 2 * time.Minute
	DefaultCloseTimeout        = 30 * time.Second
	DefaultHealthWindow        = time.Minute
	DefaultHealthMaxErrorRate  = 0.5
	DefaultHealthMinSamples    = 10
	DefaultBrokerCheckTimeout  = 5 * time.Second
)

// Config configures the Publisher decorator. It is passed by value; a zero field means
// its default, and NewPublisher rejects invalid values with an error naming the field.
// No zero value weakens delivery: switching a feature off takes an explicit negative.
type Config struct {
	// MaxRetries is how many times a failed message is sent again after its first
	// attempt. A negative value disables retries. Defaults to 3.
	MaxRetries int
	// InitialInterval is the wait before the first retry. Defaults to 100ms.
	InitialInterval time.Duration
	// MaxInterval caps the wait between two attempts (before jitter). Defaults to 5s.
	MaxInterval time.Duration
	// Multiplier grows the wait after each retry; it must be at least 1. Defaults to 2.
	Multiplier float64
	// RandomizationFactor spreads each wait uniformly over
	// [wait*(1-factor), wait*(1+factor)] so that many publishers do not retry in step.
	// It must be at most 1; a negative value disables jitter. Defaults to 0.2.
	RandomizationFactor float64
	// MaxElapsedTime is the total budget of one Publish call, attempts and waits
	// included, like Kafka's delivery.timeout.ms: no retry starts after it, and a wait
	// that would end after it is not begun. It does not interrupt an attempt in
	// progress, which the inner publisher bounds with its own timeouts
	// (KafkaPublisher: KafkaConfig.DeliveryTimeout, which NewKafka sets to a quarter
	// of this budget; watermill-kafka: sarama's Net.WriteTimeout and
	// Producer.Timeout). A negative value means no budget
	// (MaxRetries alone bounds the call). Defaults to 2m.
	MaxElapsedTime time.Duration
	// CloseTimeout is how long Close waits for in-flight Publish calls before it stops
	// their retries and closes the inner publisher. Defaults to 30s.
	CloseTimeout time.Duration

	// Classifier decides the class of a failure. Defaults to Classify.
	Classifier func(error) Class

	// Logger receives one event per publish outcome at debug, each retried attempt at
	// warn, and each message given up on at warn, or at error when the failure is
	// fatal (info when canceled): the caller decides whether a message given up on
	// is lost, and logs that. Never with the payload. nil means no logs.
	Logger *zerolog.Logger
	// Registerer, when set, receives the Prometheus collectors of the publisher (the
	// Metric* constants name them). Several publishers may share one Registerer: they
	// then share the collectors; to tell them apart, give each a wrapped Registerer,
	// prometheus.WrapRegistererWith(prometheus.Labels{"publisher": "orders"}, reg).
	// nil means no Prometheus metrics.
	Registerer prometheus.Registerer

	// HealthWindow is the period over which HealthCheck computes the error rate of
	// attempts; only attempts after the last clean one (every message went through)
	// count. Defaults to 1m.
	HealthWindow time.Duration
	// HealthMaxErrorRate is the share of failed attempts in the window, from 0 to 1,
	// above which HealthCheck reports unhealthy. Defaults to 0.5.
	HealthMaxErrorRate float64
	// HealthMinSamples is how many attempts the window needs before its error rate
	// counts. Defaults to 10.
	HealthMinSamples int
	// BrokerCheck, when set, is called by HealthCheck to verify that the broker is
	// reachable. When nil and the inner publisher implements Pinger, its Ping is used.
	BrokerCheck func(ctx context.Context) error
	// BrokerCheckTimeout bounds one broker check. Defaults to 5s.
	BrokerCheckTimeout time.Duration

	// TracerProvider creates the span of each Publish call (see Publisher.Publish).
	// nil means the global provider of go.opentelemetry.io/otel, a no-op unless the
	// application installs one.
	TracerProvider trace.TracerProvider
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.InitialInterval == 0 {
		c.InitialInterval = DefaultInitialInterval
	}
	if c.MaxInterval == 0 {
		c.MaxInterval = DefaultMaxInterval
	}
	if c.Multiplier == 0 {
		c.Multiplier = DefaultMultiplier
	}
	if c.RandomizationFactor == 0 {
		c.RandomizationFactor = DefaultRandomizationFactor
	}
	if c.MaxElapsedTime == 0 {
		c.MaxElapsedTime = DefaultMaxElapsedTime
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.Classifier == nil {
		c.Classifier = Classify
	}
	if c.HealthWindow == 0 {
		c.HealthWindow = DefaultHealthWindow
	}
	if c.HealthMaxErrorRate == 0 {
		c.HealthMaxErrorRate = DefaultHealthMaxErrorRate
	}
	if c.HealthMinSamples == 0 {
		c.HealthMinSamples = DefaultHealthMinSamples
	}
	if c.BrokerCheckTimeout == 0 {
		c.BrokerCheckTimeout = DefaultBrokerCheckTimeout
	}
	return c
}

// Validate reports every invalid field of c after defaults are applied, each error
// naming the field and the allowed range.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("adapter: Config.%s %s", field, fmt.Sprintf(format, args...)))
	}
	if c.InitialInterval < 0 {
		bad("InitialInterval", "must not be negative, got %v", c.InitialInterval)
	}
	if c.MaxInterval < 0 {
		bad("MaxInterval", "must not be negative, got %v", c.MaxInterval)
	}
	if c.InitialInterval > 0 && c.MaxInterval > 0 && c.MaxInterval < c.InitialInterval {
		bad("MaxInterval", "(%v) must be at least InitialInterval (%v)", c.MaxInterval, c.InitialInterval)
	}
	if c.Multiplier < 1 {
		bad("Multiplier", "must be at least 1, got %v", c.Multiplier)
	}
	if c.RandomizationFactor > 1 {
		bad("RandomizationFactor", "must be at most 1 (negative disables jitter), got %v", c.RandomizationFactor)
	}
	if c.CloseTimeout < 0 {
		bad("CloseTimeout", "must not be negative, got %v", c.CloseTimeout)
	}
	if c.HealthWindow < 0 {
		bad("HealthWindow", "must not be negative, got %v", c.HealthWindow)
	}
	if c.HealthMaxErrorRate < 0 || c.HealthMaxErrorRate > 1 {
		bad("HealthMaxErrorRate", "must be within [0, 1], got %v", c.HealthMaxErrorRate)
	}
	if c.HealthMinSamples < 0 {
		bad("HealthMinSamples", "must not be negative, got %d", c.HealthMinSamples)
	}
	if c.BrokerCheckTimeout < 0 {
		bad("BrokerCheckTimeout", "must not be negative, got %v", c.BrokerCheckTimeout)
	}
	return errors.Join(errs...)
}
