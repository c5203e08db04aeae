package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/console"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

const runHelp = `
Forwards the events of the outbox to Kafka until SIGTERM or SIGINT, then stops
gracefully: the batch in flight is finished (or abandoned after 60% of
RELAY_SHUTDOWN_TIMEOUT, to be sent again by the next start), the producer is flushed
and closed, final counters are logged, and the exit code is 0. A second signal exits
at once with code 1; so does a stop that outlasts RELAY_SHUTDOWN_TIMEOUT. Killing
the relay at any moment loses nothing: events are acknowledged in the outbox only
after Kafka acknowledged them, so at most the batch in flight is sent again.

At start the relay waits up to RELAY_CONNECT_TIMEOUT for the database and the
brokers, checks that the outbox tables exist (RELAY_MIGRATE=true creates them), and
serves on RELAY_HTTP_ADDR:
  /          the live console: state, events/s and lag charts, backlog, dead
             letters and failures by class (read-only)
  /metrics   Prometheus: the relay's, the publisher's, Go runtime and process metrics
  /healthz   liveness: 200 while the forwarder runs
  /readyz    readiness: 200 when the database and a broker answer within
             RELAY_READY_TIMEOUT, no fatal failure, no failure lasting
             RELAY_UNHEALTHY_AFTER, publish attempts failing at most
             RELAY_READY_ERROR_RATE since the last clean one, lag under RELAY_MAX_LAG
The address actually listened on is logged ("http server listening", addr).

` + tracingHelp

// relay is a started relay: everything cmdRun stops at the end.
type relay struct {
	db   *sql.DB
	pub  *adapter.Publisher
	fwd  *router.Forwarder
	http *httpServer // nil when RELAY_HTTP_ADDR=off
	// stopTracing flushes and stops the OpenTelemetry SDK (tracing.go); nil before.
	stopTracing func(context.Context) error
	console     *console.Console // the page at / (console.go); nil when HTTP is off
}

func (a *app) cmdRun(args []string) int {
	c := commandNamed("run")
	fs := newFlagSet(c.name)
	cfg, ok, code := a.loadConfig(fs, c, args, true, runGroups)
	if !ok {
		return code
	}
	log := newLogger(a.stderr, cfg.Log, cfg.logLevel)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	// A signal during start-up cancels it.
	var stopping atomic.Bool
	r, signalled, err := a.startUnlessSignalled(cfg, log, sigs, &stopping)
	if err != nil {
		if signalled {
			return exitOK
		}
		log.Error().Err(err).Msg("relay cannot start")
		return exitFailure
	}

	runDone := make(chan error, 1)
	go func() { runDone <- r.fwd.Run(context.Background()) }()

	code = exitOK
	if !signalled {
		select {
		case sig := <-sigs:
			log.Info().Str("signal", sig.String()).Dur("timeout", cfg.shutdown).Msg("shutting down")
		case err := <-runDone:
			// Run returns by itself only when it cannot run at all.
			log.Error().Err(err).Msg("forwarder stopped unexpectedly")
			runDone <- err
			code = exitFailure
		}
	}
	stopping.Store(true)
	return max(code, a.stop(r, cfg, log, sigs, runDone))
}

// start opens the database, checks the outbox, connects to Kafka, builds the
// forwarder and serves HTTP.
// startUnlessSignalled runs start, abandoning it when a signal arrives on sigs
// before it has finished. signalled reports that such a signal was received (and
// consumed): the caller stops at once, with exit code 0 if start failed because
// of it.
func (a *app) startUnlessSignalled(cfg *config, log zerolog.Logger, sigs <-chan os.Signal, stopping *atomic.Bool) (r *relay, signalled bool, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			log.Info().Str("signal", sig.String()).Msg("signal received during start-up: stopping")
			cancel()
		case <-started:
		}
	}()
	r, err = a.start(ctx, cfg, log, stopping)
	close(started)
	return r, ctx.Err() != nil, err
}

func (a *app) start(ctx context.Context, cfg *config, log zerolog.Logger, stopping *atomic.Bool) (*relay, error) {
	ocfg := cfg.outboxConfig()
	kcfg := cfg.kafkaConfig()
	log.Info().Str("version", readBuildInfo().Version).Str("database", cfg.database.masked).
		Str("dialect", ocfg.Dialect.String()).Str("outbox", ocfg.Name).Str("consumer_group", ocfg.ConsumerGroup).
		Strs("brokers", kcfg.Brokers).Int("batch_size", cfg.Forward.BatchSize).Msg("relay starting")

	r := &relay{}
	ok := false
	defer func() {
		if !ok {
			r.close(log)
		}
	}()

	var err error
	if r.db, err = openDB(ctx, cfg, log); err != nil {
		return nil, err
	}
	if cfg.Forward.Migrate {
		if err := outbox.InitializeSchema(ctx, r.db, ocfg); err != nil {
			return nil, fmt.Errorf("RELAY_MIGRATE: %w", err)
		}
		log.Info().Str("outbox", ocfg.Name).Msg("outbox tables ready")
	}
	st, err := backlog(ctx, r.db, ocfg)
	if err != nil {
		return nil, err
	}
	log.Info().Int64("pending", st.Pending).Dur("oldest_pending", st.OldestPending).
		Int64("dead_letters", st.DeadLetters).Msg("outbox backlog")

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfoCollector(),
	)
	tp, stopTracing, err := setupTracing(ctx, a.environ) // OTEL_*: see tracing.go
	if err != nil {
		return nil, err
	}
	r.stopTracing = stopTracing
	pubLog := log.With().Str("component", "publisher").Logger()
	pcfg := cfg.publisherConfig(&pubLog, reg)
	pcfg.TracerProvider = tp
	if r.pub, err = connectKafka(ctx, cfg, kcfg, pcfg, log); err != nil {
		return nil, err
	}

	fcfg := cfg.forwarderConfig()
	fcfg.DB, fcfg.Publisher, fcfg.Logger, fcfg.Registerer = r.db, r.pub, &log, reg
	fcfg.TracerProvider = tp
	if r.fwd, err = router.NewForwarder(fcfg); err != nil {
		return nil, err
	}

	if !cfg.httpOff {
		r.console = a.startConsole(r, ocfg)
		h := newHandler(reg, probes{
			alive: r.fwd.Alive, ready: r.fwd.HealthCheck, stopping: stopping, red: a.red, stats: r.fwd.Stats,
			console: r.console.Handler(),
		}, cfg.HTTP.Pprof)
		if r.http, err = listenHTTP(cfg.HTTP.Addr, h); err != nil {
			return nil, fmt.Errorf("RELAY_HTTP_ADDR: %w", err)
		}
		ev := log.Info().Str("addr", r.http.Addr()).Str("console", "http://"+r.http.Addr()+"/").
			Str("metrics", "http://"+r.http.Addr()+"/metrics")
		if cfg.HTTP.Pprof {
			ev = ev.Str("pprof", "http://"+r.http.Addr()+"/debug/pprof/")
		}
		ev.Msg("http server listening")
	}
	ok = true
	return r, nil
}

// connectKafka creates the decorated Kafka publisher, waiting up to
// RELAY_CONNECT_TIMEOUT for a broker to answer. Invalid settings and refused
// credentials fail at once.
func connectKafka(ctx context.Context, cfg *config, kcfg adapter.KafkaConfig, acfg adapter.Config,
	log zerolog.Logger) (*adapter.Publisher, error) {
	deadline := time.Now().Add(cfg.DB.ConnectTimeout)
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pub, err := adapter.NewKafka(kcfg, acfg)
		if err == nil {
			return pub, nil
		}
		msg := err.Error()
		if strings.HasPrefix(msg, "adapter: KafkaConfig") || strings.HasPrefix(msg, "adapter: Config") {
			return nil, fmt.Errorf("kafka settings: %w", err)
		}
		if c := adapter.Classify(err); c == adapter.Fatal || c == adapter.Permanent {
			return nil, fmt.Errorf("kafka refused the connection: %w", err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().Add(wait).After(deadline) {
			hint := ""
			if errors.Is(err, io.EOF) || strings.HasSuffix(msg, "EOF") {
				hint = " (brokers that close the connection usually mean a TLS or SASL mismatch)"
			}
			return nil, fmt.Errorf("no Kafka broker reachable after %v (RELAY_CONNECT_TIMEOUT)%s: %w", cfg.DB.ConnectTimeout, hint, err)
		}
		log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", wait).Msg("kafka unreachable, retrying")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// stop shuts r down within the shutdown timeout and returns the exit code: 0 when
// everything stopped in time, 1 after a second signal or the timeout.
func (a *app) stop(r *relay, cfg *config, log zerolog.Logger, sigs <-chan os.Signal, runDone <-chan error) int {
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.fwd.Close() // finishes the batch in flight, up to 60% of the budget
		if err := <-runDone; err != nil && !errors.Is(err, router.ErrClosed) {
			log.Warn().Err(err).Msg("forwarder")
		}
		r.close(log)
	}()
	timer := time.NewTimer(cfg.shutdown)
	defer timer.Stop()
	select {
	case <-done:
		a.logFinal(r, log, time.Since(start))
		return exitOK
	case sig := <-sigs:
		log.Warn().Str("signal", sig.String()).Msg("second signal: exiting now; the batch in flight is sent again at the next start")
		return exitFailure
	case <-timer.C:
		log.Error().Dur("timeout", cfg.shutdown).
			Msg("shutdown timed out (RELAY_SHUTDOWN_TIMEOUT): exiting; unacknowledged events are sent again at the next start")
		return exitFailure
	}
}

// close releases what r holds, in order: the publisher (flush), HTTP, the database.
func (r *relay) close(log zerolog.Logger) {
	if r.pub != nil {
		if err := r.pub.Close(); err != nil {
			log.Warn().Err(err).Msg("closing the publisher")
		}
	}
	if r.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := r.http.shutdown(ctx); err != nil {
			log.Warn().Err(err).Msg("closing the http server")
		}
		cancel()
	}
	if r.console != nil {
		_ = r.console.Close()
	}
	if r.db != nil {
		_ = r.db.Close()
	}
	if r.stopTracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := r.stopTracing(ctx); err != nil {
			log.Warn().Err(err).Msg("flushing the traces")
		}
		cancel()
	}
}

func (a *app) logFinal(r *relay, log zerolog.Logger, took time.Duration) {
	st := r.fwd.Stats()
	m := r.pub.Metrics()
	log.Info().Dur("shutdown", took).
		Int64("events_forwarded", st.EventsForwarded).Int64("batches", st.Batches).
		Int64("dead_letters", st.DeadLetters).Int64("batch_failures", st.BatchFailures).
		Int64("messages_published", m.MessagesPublished).Int64("messages_given_up", m.MessagesGivenUp).
		Int64("attempt_failures", m.AttemptFailures).
		Int64("retries", m.RetriesTotal).Int64("publish_calls", m.PublishCalls).
		Dur("avg_publish_time", m.AvgPublishTime).Int64("pending", st.Backlog.Pending).
		Msg("relay stopped")
}

// buildInfoCollector exports millrace_relay_build_info{version,revision,go_version} 1.
func buildInfoCollector() prometheus.Collector {
	bi := readBuildInfo()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "millrace_relay_build_info",
		Help: "Always 1; the labels describe the relay binary.",
		ConstLabels: prometheus.Labels{
			"version": bi.Version, "revision": bi.Revision, "go_version": bi.GoVersion,
		},
	})
	g.Set(1)
	return g
}
