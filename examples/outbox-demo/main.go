// Command outbox-demo is millrace end to end: an order service writes orders and
// their events in the same database transactions (package outbox), a router
// forwards the outbox to Kafka (package router, through the adapter decorator), and
// an independent consumer reads the topic and checks every event: nothing lost,
// per-customer order kept, duplicates only as copies of the same UUID. Midway the
// broker becomes unreachable for a few seconds, and one event too large for the
// topic is written; the demo shows the retries, the dead letter, and the verdict.
//
// It needs PostgreSQL (DATABASE_URL, default the local test database) or MySQL
// (mysql://...); Kafka is an in-process broker unless KAFKA_BROKERS is set. See
// README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

func main() {
	zerolog.DurationFieldFormat = zerolog.DurationFormatString // "100ms", not 100
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		if !errors.Is(err, errFlags) { // the flag package has printed those
			fmt.Fprintln(os.Stderr, "outbox-demo:", err)
		}
		os.Exit(2)
	}

	// The first Ctrl-C (or SIGTERM) ends the run early, gracefully: the writers stop,
	// the backlog drains and the summary is printed. stop() then restores the default
	// handling, so a second Ctrl-C kills the demo at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()

	_, err = run(ctx, os.Stdout, cfg)
	stop()
	if err != nil {
		if !errors.Is(err, errVerdict) { // the summary has already explained a verdict
			fmt.Fprintln(os.Stderr, "outbox-demo:", err)
		}
		os.Exit(1)
	}
}

// errFlags wraps the errors of flags that the flag package has already reported,
// with the usage.
var errFlags = errors.New("invalid flags")

// parseConfig reads the flags in args and the environment (KAFKA_BROKERS,
// DATABASE_URL) through getenv; usage goes to usageOut.
func parseConfig(args []string, getenv func(string) string, usageOut io.Writer) (config, error) {
	cfg := config{DatabaseURL: getenv("DATABASE_URL")}
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = defaultDatabaseURL
	}
	for _, b := range strings.Split(getenv("KAFKA_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.Brokers = append(cfg.Brokers, b)
		}
	}

	fs := flag.NewFlagSet("outbox-demo", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	fs.Usage = func() {
		fmt.Fprint(usageOut, `Usage: go run ./examples/outbox-demo [flags]

The transactional outbox end to end: orders and their events written in the same
transactions, forwarded to Kafka by the router, read back and checked, through a
broker outage and a poison event. See examples/outbox-demo/README.md.

Environment:
  DATABASE_URL   postgres://... or mysql://user:pass@host:port/db
                 (default `+defaultDatabaseURL+`)
  KAFKA_BROKERS  comma-separated host:port list (default: an in-process broker)

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Mode, "mode", modeAll, "all: the whole demo; writer: only the order service, writing to the outbox until stopped (a relay elsewhere forwards it)")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long the order service writes; 0 means until Ctrl-C or SIGTERM")
	fs.IntVar(&cfg.Rate, "rate", 500, "orders per second, all writers together (each a transaction with one event); 0 means as fast as possible")
	fs.IntVar(&cfg.Writers, "writers", 4, "goroutines writing orders concurrently")
	fs.IntVar(&cfg.Customers, "customers", 64, "customers, the partition keys; each belongs to one writer")
	fs.Float64Var(&cfg.Rollback, "rollback", 0.1, "share of transactions rolled back on purpose, after writing their event")
	fs.DurationVar(&cfg.Outage, "outage", 3*time.Second, "how long the in-process broker is unreachable, midway; 0 for no outage")
	fs.BoolVar(&cfg.Poison, "poison", true, "write one event too large for the topic, which becomes a dead letter")
	fs.DurationVar(&cfg.Drain, "drain", 30*time.Second, "how long to wait, after writing stops, for every event to be forwarded and read")
	fs.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:9464", "address of /metrics, /healthz and /readyz (a free port if taken); off for none")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the generated outbox tables, orders table and topic (an explicit -outbox or -topic is never dropped)")
	fs.StringVar(&cfg.Outbox, "outbox", "", `outbox table name (default: "demo_<random>" in mode all, "`+defaultWriterOutbox+`" in mode writer)`)
	fs.StringVar(&cfg.Topic, "topic", "", `Kafka topic (default: "millrace-demo-<random>" in mode all, "`+defaultWriterTopic+`" in mode writer)`)
	logLevel := fs.String("log", "info", "level of the router's logs: debug, info, warn, error or disabled")
	pubLogLevel := fs.String("publisher-log", "disabled", "level of the publisher decorator's logs, a line per failed message (see -log)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, fmt.Errorf("%w: %w", errFlags, err)
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	var err error
	if cfg.LogLevel, err = parseLevel("-log", *logLevel); err != nil {
		return cfg, err
	}
	if cfg.PublisherLogLevel, err = parseLevel("-publisher-log", *pubLogLevel); err != nil {
		return cfg, err
	}
	switch {
	case cfg.Mode != modeAll && cfg.Mode != modeWriter:
		return cfg, fmt.Errorf("-mode %q: want %s or %s", cfg.Mode, modeAll, modeWriter)
	case cfg.Duration < 0:
		return cfg, fmt.Errorf("-duration %v: must not be negative", cfg.Duration)
	case cfg.Writers < 1:
		return cfg, fmt.Errorf("-writers %d: want at least 1", cfg.Writers)
	case cfg.Customers < cfg.Writers:
		return cfg, fmt.Errorf("-customers %d: want at least one per writer (%d)", cfg.Customers, cfg.Writers)
	case cfg.Rollback < 0 || cfg.Rollback >= 1:
		return cfg, fmt.Errorf("-rollback %v: want a share in [0, 1)", cfg.Rollback)
	case cfg.Outage < 0:
		return cfg, fmt.Errorf("-outage %v: must not be negative", cfg.Outage)
	case cfg.Drain <= 0:
		return cfg, fmt.Errorf("-drain %v: must be positive", cfg.Drain)
	}
	return cfg, nil
}

// parseLevel parses the value of a log level flag.
func parseLevel(flagName, s string) (zerolog.Level, error) {
	switch s {
	case "debug", "info", "warn", "error", "disabled":
		return zerolog.ParseLevel(s)
	}
	return zerolog.NoLevel, fmt.Errorf("%s %q: want debug, info, warn, error or disabled", flagName, s)
}
