package benchrelay

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultDSN                = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultEvents             = 50_000
	DefaultPayloadBytes       = 200
	DefaultKeys               = 100
	DefaultTxEvents           = 100
	DefaultPartitions         = 6
	DefaultTrickleRate        = 200
	DefaultTrickleDuration    = 10 * time.Second
	DefaultMemoryPayloadBytes = 1024
	DefaultMemoryTxEvents     = 1000
	DefaultPhaseTimeout       = 30 * time.Minute
)

// DefaultLatencies are the one-way latencies the proxy adds by default: none, and
// 2.5 ms each way (a 5 ms round trip, a cross-zone or cross-datacenter link).
var DefaultLatencies = []time.Duration{0, 2500 * time.Microsecond}

// DefaultMemoryEvents are the backlogs of the memory test: the large one, and a
// tenth of it to show that the peak does not grow with the backlog.
var DefaultMemoryEvents = []int{200_000, 20_000}

// Config configures a benchmark run. It is passed by value; a zero field means its
// default.
type Config struct {
	// DSN is the PostgreSQL database (pgx driver). Defaults to $POSTGRES_DSN, else
	// DefaultDSN.
	DSN string
	// Brokers is a real Kafka cluster; latency injection is then skipped (only a
	// latency of 0 may be asked). Defaults to $KAFKA_BROKERS (comma-separated), else
	// an in-process kfake broker behind an in-process toxiproxy.
	Brokers []string

	// Latencies are the one-way latencies the proxy adds, each a separate round of
	// the drain and trickle tests. Defaults to DefaultLatencies (0 and 2.5ms).
	Latencies []time.Duration

	// Events is the backlog of the drain test. Defaults to 50,000.
	Events int
	// PayloadBytes is the payload size of the drain and trickle events. Defaults to 200.
	PayloadBytes int
	// Keys is the number of partition keys, drawn uniformly at random. Defaults to 100.
	Keys int
	// TxEvents is how many events one backlog transaction writes. Defaults to 100.
	TxEvents int
	// Partitions of every topic. Defaults to 6.
	Partitions int

	// TrickleRate is the events per second of the latency test, one event per
	// transaction. Defaults to 200.
	TrickleRate int
	// TrickleDuration is how long the latency test writes. Defaults to 10s.
	TrickleDuration time.Duration

	// MemoryEvents are the backlogs of the memory test, each drained by our
	// forwarder in a child process. A negative first entry skips the test. Defaults
	// to DefaultMemoryEvents (200,000 and 20,000).
	MemoryEvents []int
	// MemoryPayloadBytes is the payload size of the memory test. Defaults to 1024.
	MemoryPayloadBytes int
	// Executable is the binary that runs the child of the memory test
	// (`Executable -mode drain-child -child JSON`, see ChildMain). Empty skips the
	// memory test.
	Executable string

	// PhaseTimeout bounds the wait for one test's events to reach Kafka; what has not
	// arrived by then is reported as lost. Defaults to 30m.
	PhaseTimeout time.Duration

	// Progress receives progress lines. nil means none.
	Progress io.Writer
}

func (c Config) withDefaults() Config {
	if c.DSN == "" {
		c.DSN = os.Getenv("POSTGRES_DSN")
	}
	if c.DSN == "" {
		c.DSN = DefaultDSN
	}
	c.DSN = tagDSN(c.DSN)
	if c.Brokers == nil {
		for _, s := range strings.Split(os.Getenv("KAFKA_BROKERS"), ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.Brokers = append(c.Brokers, s)
			}
		}
	}
	if c.Latencies == nil {
		c.Latencies = DefaultLatencies
	}
	if len(c.Brokers) > 0 {
		c.Latencies = []time.Duration{0}
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Events, DefaultEvents)
	def(&c.PayloadBytes, DefaultPayloadBytes)
	def(&c.Keys, DefaultKeys)
	def(&c.TxEvents, DefaultTxEvents)
	def(&c.Partitions, DefaultPartitions)
	def(&c.TrickleRate, DefaultTrickleRate)
	def(&c.MemoryPayloadBytes, DefaultMemoryPayloadBytes)
	if c.TrickleDuration == 0 {
		c.TrickleDuration = DefaultTrickleDuration
	}
	if c.MemoryEvents == nil {
		c.MemoryEvents = DefaultMemoryEvents
	}
	if len(c.MemoryEvents) > 0 && c.MemoryEvents[0] < 0 {
		c.MemoryEvents = []int{}
	}
	if c.PhaseTimeout == 0 {
		c.PhaseTimeout = DefaultPhaseTimeout
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// applicationName tags every connection of the benchmark (and of its child), so
// that the interference sampler can tell them from other sessions on the server.
const applicationName = "bench-relay"

// tagDSN sets application_name in a URL or key=value DSN that has none.
func tagDSN(dsn string) string {
	if strings.Contains(dsn, "application_name") {
		return dsn
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "application_name=" + applicationName
	}
	return dsn + " application_name=" + applicationName
}

func (c Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("benchrelay: Config.%s %s", field, fmt.Sprintf(format, args...)))
	}
	for _, l := range c.Latencies {
		if l < 0 {
			bad("Latencies", "must not be negative, got %v", l)
		}
	}
	if len(c.Latencies) == 0 {
		bad("Latencies", "must not be empty")
	}
	if c.Events < 1 {
		bad("Events", "must be positive, got %d", c.Events)
	}
	if c.PayloadBytes < 64 || c.MemoryPayloadBytes < 64 {
		bad("PayloadBytes", "and MemoryPayloadBytes must be at least 64, got %d and %d", c.PayloadBytes, c.MemoryPayloadBytes)
	}
	if c.Keys < 1 || c.TxEvents < 1 || c.Partitions < 1 || c.TrickleRate < 1 || c.TrickleDuration < 0 {
		bad("Keys", "TxEvents, Partitions, TrickleRate must be positive and TrickleDuration not negative")
	}
	for _, n := range c.MemoryEvents {
		if n < 1 {
			bad("MemoryEvents", "entries must be positive, got %d", n)
		}
	}
	return errors.Join(errs...)
}
