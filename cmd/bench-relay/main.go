// Command bench-relay compares the stock Watermill outbox path with millrace's relay
// on the same PostgreSQL and the same Kafka broker, and prints a markdown report:
// drain throughput of a backlog, commit-to-Kafka latency at a steady trickle (both
// at each latency the proxy adds), and the peak RSS of millrace's forwarder draining
// a large and a small backlog.
//
//	go run ./cmd/bench-relay                  # full run, several minutes
//	go run ./cmd/bench-relay -quick           # smoke test, under a minute
//	go run ./cmd/bench-relay -latency 0,1ms -events 20000
//
// PostgreSQL: -dsn, else POSTGRES_DSN, else postgres://postgres@127.0.0.1:5432/test.
// Kafka: an in-process broker behind an in-process latency proxy, unless
// KAFKA_BROKERS is set (then no latency is injected). See package
// internal/benchrelay for what is measured and how.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/millrace/millrace/internal/benchrelay"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-relay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench-relay", flag.ContinueOnError)
	var (
		mode       = fs.String("mode", "bench", `"bench", or "`+benchrelay.ChildMode+`" (internal: the memory test's child)`)
		child      = fs.String("child", "", "internal: the child's configuration")
		quick      = fs.Bool("quick", false, "smoke test: 5,000 events, no added latency, 3 s trickle, small memory test")
		dsn        = fs.String("dsn", "", "PostgreSQL DSN (pgx); default $POSTGRES_DSN or "+benchrelay.DefaultDSN)
		latency    = fs.String("latency", "0,2.5ms", "one-way latencies the proxy adds, comma-separated (0 = none)")
		events     = fs.Int("events", benchrelay.DefaultEvents, "drain backlog, events")
		payload    = fs.Int("payload", benchrelay.DefaultPayloadBytes, "payload bytes of drain and trickle events")
		keys       = fs.String("keys", strconv.Itoa(benchrelay.DefaultKeys), "partition keys; a comma-separated list runs a sweep, one run per count, and ends with a sweep table")
		txEvents   = fs.Int("tx", benchrelay.DefaultTxEvents, "events per backlog transaction")
		partitions = fs.Int("partitions", benchrelay.DefaultPartitions, "partitions per topic")
		rate       = fs.Int("rate", benchrelay.DefaultTrickleRate, "trickle events per second")
		trickle    = fs.Duration("trickle", benchrelay.DefaultTrickleDuration, "trickle duration")
		memEvents  = fs.String("mem-events", "200000,20000", `memory test backlogs, comma-separated ("" or "0" skips it)`)
		memPayload = fs.Int("mem-payload", benchrelay.DefaultMemoryPayloadBytes, "payload bytes of the memory test")
		timeout    = fs.Duration("phase-timeout", benchrelay.DefaultPhaseTimeout, "longest wait for one test's events")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mode == benchrelay.ChildMode {
		return benchrelay.ChildMain(ctx, []string{"-child", *child}, os.Stdout)
	}
	if *mode != "bench" {
		return fmt.Errorf("-mode %q: want bench or %s", *mode, benchrelay.ChildMode)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		// Explicit flags still win over the quick defaults.
		quickDefaults := map[string]func(){
			"events":     func() { *events = 5000 },
			"latency":    func() { *latency = "0" },
			"trickle":    func() { *trickle = 3 * time.Second },
			"mem-events": func() { *memEvents = "20000,2000" },
		}
		for name, apply := range quickDefaults {
			if !set[name] {
				apply()
			}
		}
	}
	lats, err := parseLatencies(*latency)
	if err != nil {
		return err
	}
	mems, err := parseInts(*memEvents)
	if err != nil {
		return fmt.Errorf("-mem-events: %w", err)
	}
	keyCounts, err := parseInts(*keys)
	if err != nil || len(keyCounts) == 0 {
		return fmt.Errorf("-keys %q: want positive counts, comma-separated", *keys)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if len(mems) == 0 {
		mems = []int{-1}
	}
	var results []*benchrelay.Result
	for i, k := range keyCounts {
		cfg := benchrelay.Config{
			DSN:                *dsn,
			Latencies:          lats,
			Events:             *events,
			PayloadBytes:       *payload,
			Keys:               k,
			TxEvents:           *txEvents,
			Partitions:         *partitions,
			TrickleRate:        *rate,
			TrickleDuration:    *trickle,
			MemoryEvents:       mems,
			MemoryPayloadBytes: *memPayload,
			Executable:         exe,
			PhaseTimeout:       *timeout,
			Progress:           os.Stderr,
		}
		if i > 0 {
			cfg.MemoryEvents = []int{-1} // the memory test runs once, with the first key count
		}
		res, err := benchrelay.Run(ctx, cfg)
		if res != nil {
			if len(keyCounts) > 1 {
				fmt.Printf("## Keys: %d\n\n", k)
			}
			fmt.Printf("Command: %s\n\n", strings.TrimSpace("bench-relay "+strings.Join(args, " ")))
			res.Markdown(os.Stdout)
			results = append(results, res)
		}
		if err != nil {
			return err
		}
	}
	if len(keyCounts) > 1 {
		benchrelay.SweepMarkdown(os.Stdout, results)
	}
	return nil
}

func parseLatencies(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if f == "0" {
			out = append(out, 0)
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil {
			return nil, fmt.Errorf("-latency %q: %w", f, err)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, errors.New("-latency: no latency given")
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(strings.ReplaceAll(f, "_", ""))
		if f == "" || f == "0" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}
