package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// Modes of the demo.
const (
	modeAll    = "all"    // order service, router, checker, chaos: the whole demo
	modeWriter = "writer" // the order service only (a relay elsewhere forwards)
)

// config is the demo's settings, from flags and the environment (see main.go).
type config struct {
	Mode        string        // modeAll or modeWriter
	DatabaseURL string        // postgres://... or mysql://...
	Brokers     []string      // Kafka bootstrap addresses; none: the in-process broker (mode all)
	Duration    time.Duration // how long the order service writes; 0: until ctx ends
	Rate        int           // transactions per second, all writers together; <= 0: flat out
	Writers     int           // goroutines writing orders
	Customers   int           // partition keys
	Rollback    float64       // share of transactions rolled back on purpose
	Outage      time.Duration // how long the broker is cut; 0: no outage
	Poison      bool          // write one event too large for the topic
	Drain       time.Duration // how long to wait for the backlog after writing stops
	HTTPAddr    string        // address of /metrics, /healthz, /readyz; "off": none
	Keep        bool          // keep the generated tables and topic
	Outbox      string        // outbox name; "": generated (all), "outbox" (writer)
	Topic       string        // Kafka topic; "": generated (all), "orders" (writer)
	LogLevel    zerolog.Level // of the router's logs
	// PublisherLogLevel is the level of the publisher decorator's logs, which has
	// a line per failed message.
	PublisherLogLevel zerolog.Level
}

// Defaults of the writer mode, shared with the relay of a compose stack.
const (
	defaultWriterOutbox = "outbox"
	defaultWriterTopic  = "orders"
)

// partitions is the number of partitions of the topic the demo creates.
const partitions = 6

// errVerdict is returned when the run broke a promise; the summary says which.
var errVerdict = errors.New("the verdict is negative")

// run runs the demo in cfg.Mode, printing to out, and returns its summary. When ctx
// ends the run stops early but gracefully: the writers stop, the backlog is
// drained and the summary is printed as at the end of cfg.Duration. The error is
// errVerdict when a committed event was lost, an event came out of order, or an
// event was read that was never committed.
func run(ctx context.Context, out io.Writer, cfg config) (*summary, error) {
	con := newConsole(out)
	if cfg.Mode == modeWriter {
		return runWriter(ctx, con, cfg)
	}
	return runAll(ctx, con, cfg)
}

// cleanups runs functions in reverse order of registration, once.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }

func (c *cleanups) run() {
	for _, f := range slices.Backward(*c) {
		f()
	}
	*c = nil
}

// runAll is the whole demo: see the README.
func runAll(ctx context.Context, con *console, cfg config) (*summary, error) {
	var cleanup cleanups
	defer cleanup.run()
	// bg outlives ctx: after an early stop the demo still drains, reports and
	// cleans up.
	bg := context.WithoutCancel(ctx)

	// 1. The database, the outbox and the order service's table.
	db, err := openDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	cleanup.add(func() { _ = db.Close() })
	id := randomID()
	name, generated := cfg.Outbox, cfg.Outbox == ""
	if generated {
		name = "demo_" + id
	}
	ocfg := outbox.Config{Dialect: db.dialect, Name: name}
	ordersTable := name + "_orders"
	if err := outbox.InitializeSchema(ctx, db.DB, ocfg); err != nil {
		return nil, err
	}
	if generated && !cfg.Keep {
		cleanup.add(func() {
			dctx, cancel := context.WithTimeout(bg, 10*time.Second)
			defer cancel()
			if err := dropTables(dctx, db, ocfg, ordersTable); err != nil {
				con.Printf("cleanup: %v", err)
			}
		})
	}
	if err := createOrdersTable(ctx, db, ordersTable); err != nil {
		return nil, err
	}
	if err := requireEmpty(ctx, db, ocfg); err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(cfg.Writers + 10) // the writers, and the router's few
	db.SetMaxIdleConns(cfg.Writers + 10)
	con.Printf("database %s (%s): outbox %q, orders table %s", db.display, db.dialect, name, ordersTable)

	// 2. Kafka: the in-process broker behind its proxy, or KAFKA_BROKERS.
	brokers := cfg.Brokers
	var kafka *inProcessKafka
	var direct []kgo.Opt // how the checker and the admin client reach the broker
	if len(brokers) == 0 {
		if kafka, err = startKafka(); err != nil {
			return nil, err
		}
		cleanup.add(kafka.Close)
		brokers, direct = kafka.Addrs(), []kgo.Opt{kafka.DirectDialer()}
		con.Printf("kafka: in-process broker (kfake) behind a proxy at %s", brokers[0])
	} else {
		con.Printf("kafka: %v (KAFKA_BROKERS); no outage is injected into a real cluster", brokers)
	}
	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID("millrace-demo-admin")}, direct...)...)
	if err != nil {
		return nil, err
	}
	cleanup.add(admin.Close)
	topic, topicGenerated := cfg.Topic, cfg.Topic == ""
	if topicGenerated {
		topic = "millrace-demo-" + id
	}
	maxBytes := 0
	if cfg.Poison {
		maxBytes = topicMaxMessageBytes
	}
	limited, err := createTopic(ctx, admin, topic, partitions, maxBytes)
	if errors.Is(err, kerr.TopicAlreadyExists) {
		// The checker reads the topic from its start, and judges every record.
		return nil, fmt.Errorf("%w: mode %s needs a new topic (omit -topic)", err, modeAll)
	}
	if err != nil {
		return nil, err
	}
	if kafka == nil && topicGenerated && !cfg.Keep {
		cleanup.add(func() {
			if err := deleteTopic(bg, admin, topic); err != nil {
				con.Printf("cleanup: %v", err)
			}
		})
	}
	switch {
	case cfg.Poison && !limited:
		con.Printf("kafka: topic %s, %d partitions; the cluster refused max.message.bytes, so no poison event", topic, partitions)
		cfg.Poison = false
	case cfg.Poison:
		con.Printf("kafka: topic %s, %d partitions, max.message.bytes %d", topic, partitions, maxBytes)
	default:
		con.Printf("kafka: topic %s, %d partitions", topic, partitions)
	}

	// 3. The router: the decorated batching Kafka publisher and the forwarder. They
	// log through the console and register their metrics on reg.
	logger := zerolog.New(zerolog.ConsoleWriter{Out: con, NoColor: !con.tty, PartsExclude: []string{zerolog.TimestampFieldName}})
	routerLog := logger.Level(cfg.LogLevel)
	pubLog := logger.Level(cfg.PublisherLogLevel).With().Str("component", "publisher").Logger()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	pub, err := router.NewKafkaPublisher(adapter.KafkaConfig{
		Brokers:  brokers,
		ClientID: "millrace-demo",
		// The other fields keep their defaults: an idempotent producer (acks=all),
		// snappy compression, 1 MiB messages at most. NewKafka bounds franz-go's own
		// retries (DeliveryTimeout) by a quarter of the decorator's budget, so an
		// outage reaches the decorator, whose retries and metrics handle it.
	}, adapter.Config{
		// The decorator's defaults: 3 retries, backoff from 100ms doubling to 5s with
		// 20% jitter, a 2m budget per call.
		Logger:     &pubLog,
		Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	cleanup.add(func() { _ = pub.Close() })
	fwd, err := router.NewForwarder(router.Config{
		DB:            db.DB,
		Outbox:        ocfg,
		Publisher:     pub,
		PollInterval:  100 * time.Millisecond, // MySQL polls; PostgreSQL is also woken by NOTIFY
		RetryMax:      time.Second,            // after an outage, notice the broker within a second
		StatsInterval: time.Second,            // backlog for metrics and health
		Logger:        &routerLog,
		Registerer:    reg,
	})
	if err != nil {
		return nil, err
	}
	fwdDone := make(chan error, 1)
	go func() { fwdDone <- fwd.Run(bg) }()
	cleanup.add(func() { _ = fwd.Close(); <-fwdDone })

	// 4. The checker reads the topic from the start.
	chk, err := newChecker(brokers, topic, direct...)
	if err != nil {
		return nil, err
	}
	chkDone := make(chan struct{})
	go func() { defer close(chkDone); chk.run(bg) }()
	cleanup.add(func() { chk.Close(); <-chkDone })

	// 5. The order service, and the demo's own metrics.
	led := newLedger()
	svc := &orderService{db: db, outbox: ocfg, ordersTable: ordersTable, topic: topic, rollback: cfg.Rollback, ledger: led}
	registerDemoMetrics(reg, led, chk)

	web := newWebConsole(fwd, pub, db, ocfg) // the relay's live console (webconsole.go)
	cleanup.add(func() { _ = web.Close() })
	srv, err := serveHTTP(cfg.HTTPAddr, withConsole(newHandler(reg, probes{alive: fwd.Alive, ready: fwd.HealthCheck}), web))
	if err != nil {
		return nil, err
	}
	if srv != nil {
		cleanup.add(srv.Close)
		con.Printf("http: http://%s/metrics  /healthz  /readyz", srv.addr)
		con.Printf("console: http://%s/", srv.addr)
	}

	// 6. Write for cfg.Duration (or until ctx ends), with chaos on the way.
	writeCtx, stopWriting := writingContext(ctx, cfg.Duration)
	defer stopWriting()
	con.Printf("order service: %d writers, %s, %.0f%% rolled back on purpose, for %s",
		cfg.Writers, rateString(cfg.Rate), cfg.Rollback*100, durationString(cfg.Duration))
	period := cfg.Duration
	if period <= 0 {
		period = 20 * time.Second // the chaos schedule of an open-ended run
	}
	ch := &chaos{con: con, svc: svc, kafka: kafka, pub: pub, fwd: fwd, poison: cfg.Poison, outage: cfg.Outage, period: period}
	chaosCtx, stopChaos := context.WithCancel(ctx)
	chaosDone := make(chan struct{})
	go func() { defer close(chaosDone); ch.run(chaosCtx, writeCtx.Done()) }()
	cleanup.add(func() { stopChaos(); <-chaosDone })

	writeStart := time.Now()
	writersDone := make(chan error, 1)
	go func() {
		writersDone <- svc.runWriters(bg, writeCtx.Done(), cfg.Writers, cfg.Customers, cfg.Rate)
	}()
	status := func() string { return statusLine(led, chk, fwd, pub, ch) }
	con.Printf("%s", statusLegend)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var writeErr error
writing:
	for {
		select {
		case writeErr = <-writersDone:
			break writing
		case <-tick.C:
			con.Status(status())
		}
	}
	wrote := time.Since(writeStart)
	con.EndStatus(status())
	if writeErr != nil {
		return nil, writeErr
	}
	con.Printf("writers stopped after %s; waiting up to %v for the router and the checker to catch up",
		wrote.Round(100*time.Millisecond), cfg.Drain)

	// 7. Drain: wait until every committed event was read or is a dead letter.
	deadline := time.Now().Add(cfg.Drain)
	var deadLetters []string
	for {
		deadLetters, err = listDeadLetters(bg, db, ocfg)
		if err != nil {
			return nil, err
		}
		if chk.missing(led.snapshot(), toSet(deadLetters)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			con.Printf("gave up waiting after %v", cfg.Drain)
			break
		}
		<-tick.C
		con.Status(status())
	}
	con.EndStatus(status())

	// 8. Stop everything, then judge by what the checker read. The counters are read
	// once the router has stopped, so they include its last batch.
	cleanup.run()
	fstats, pstats := fwd.Stats(), pub.Metrics()
	s := &summary{
		Mode:       modeAll,
		Outbox:     name,
		Topic:      topic,
		Committed:  led.count.Load(),
		RolledBack: led.rolledBack.Load(),
		Failed:     led.failed.Load(),
		Forwarded:  fstats.EventsForwarded,
		Retries:    pstats.RetriesTotal,
		Chaos:      ch.Result(),
		Writing:    wrote,
	}
	s.check(led.snapshot(), chk.snapshot(), deadLetters, writeStart)
	s.print(con)
	if !s.OK() {
		return s, errVerdict
	}
	return s, nil
}

// requireEmpty fails when the outbox has events to forward: the checker judges by
// this run's events only, and an outbox named with -outbox may hold older ones.
func requireEmpty(ctx context.Context, db *database, ocfg outbox.Config) error {
	reader, err := outbox.NewReader(db.DB, ocfg)
	if err != nil {
		return err
	}
	st, err := reader.Stats(ctx)
	if err != nil {
		return err
	}
	if st.Pending > 0 {
		return fmt.Errorf("outbox %q has %d events to forward: mode %s needs an empty outbox (omit -outbox)",
			ocfg.Name, st.Pending, modeAll)
	}
	return nil
}

// statusLegend names the numbers of the status line, printed once before it.
const statusLegend = "status: router state, written/forwarded/consumed, lag, publisher retries, dead letters"

// statusLine is the live progress line, state first, short enough for an
// 80-column terminal (see TestStatusLineFits80Columns).
func statusLine(led *ledger, chk *checker, fwd *router.Forwarder, pub *adapter.Publisher, ch *chaos) string {
	st := fwd.Stats()
	written, consumed := led.count.Load(), chk.distinct.Load()
	return formatStatus(st.State, ch.Result().Cut, written, st.EventsForwarded, consumed,
		pub.Metrics().RetriesTotal, st.DeadLetters)
}

func formatStatus(state router.State, cut bool, written, forwarded, consumed, retries, dead int64) string {
	s := string(state)
	if cut {
		s += " (cut)"
	}
	lag := max(written-consumed-dead, 0)
	return fmt.Sprintf("%-14s %d/%d/%d  lag %d  retries %d  dead %d", s, written, forwarded, consumed, lag, retries, dead)
}

// listDeadLetters returns the UUIDs of the outbox's dead letters.
func listDeadLetters(ctx context.Context, db *database, ocfg outbox.Config) ([]string, error) {
	dls, err := outbox.List(ctx, db.DB, ocfg, outbox.Filter{})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(dls))
	for i, dl := range dls {
		ids[i] = dl.UUID // the payload is never printed
	}
	return ids, nil
}

// runWriter is the order service alone, as in a compose stack where a relay
// forwards the outbox: it creates the outbox and its table if missing, writes
// until ctx ends or cfg.Duration passes, and never drops anything.
func runWriter(ctx context.Context, con *console, cfg config) (*summary, error) {
	db, err := openDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	name, topic := cfg.Outbox, cfg.Topic
	if name == "" {
		name = defaultWriterOutbox
	}
	if topic == "" {
		topic = defaultWriterTopic
	}
	ocfg := outbox.Config{Dialect: db.dialect, Name: name}
	ordersTable := name + "_orders"
	if err := outbox.InitializeSchema(ctx, db.DB, ocfg); err != nil {
		return nil, err
	}
	if err := createOrdersTable(ctx, db, ordersTable); err != nil {
		return nil, err
	}
	con.Printf("database %s (%s): outbox %q, orders table %s, events for topic %s",
		db.display, db.dialect, name, ordersTable, topic)

	led := newLedger()
	svc := &orderService{db: db, outbox: ocfg, ordersTable: ordersTable, topic: topic, rollback: cfg.Rollback, ledger: led}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	registerDemoMetrics(reg, led, nil)
	srv, err := serveHTTP(cfg.HTTPAddr, newHandler(reg, probes{
		alive: func() error { return nil },
		ready: db.PingContext,
	}))
	if err != nil {
		return nil, err
	}
	if srv != nil {
		defer srv.Close()
		con.Printf("http: http://%s/metrics  /healthz  /readyz", srv.addr)
	}

	writeCtx, stop := writingContext(ctx, cfg.Duration)
	defer stop()
	con.Printf("order service: %d writers, %s, %.0f%% rolled back on purpose, for %s",
		cfg.Writers, rateString(cfg.Rate), cfg.Rollback*100, durationString(cfg.Duration))
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		done <- svc.runWriters(context.WithoutCancel(ctx), writeCtx.Done(), cfg.Writers, cfg.Customers, cfg.Rate)
	}()
	status := func() string {
		n := led.count.Load()
		return fmt.Sprintf("written %d  rolled back %d  (%.0f/s)", n, led.rolledBack.Load(), float64(n)/time.Since(start).Seconds())
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			con.EndStatus(status())
			if err != nil {
				return nil, err
			}
			return &summary{
				Mode:       modeWriter,
				Outbox:     name,
				Topic:      topic,
				Committed:  led.count.Load(),
				RolledBack: led.rolledBack.Load(),
				Failed:     led.failed.Load(),
				Writing:    time.Since(start),
			}, nil
		case <-tick.C:
			con.Status(status())
		}
	}
}

// registerDemoMetrics adds the demo's own counters to reg, next to the library's.
// chk may be nil (writer mode).
func registerDemoMetrics(reg prometheus.Registerer, led *ledger, chk *checker) {
	counter := func(name, help string, v func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v()) })
	}
	reg.MustRegister(
		counter("millrace_demo_events_committed_total", "Events of committed order transactions.", led.count.Load),
		counter("millrace_demo_transactions_rolled_back_total", "Order transactions rolled back on purpose.", led.rolledBack.Load),
	)
	if chk != nil {
		reg.MustRegister(
			counter("millrace_demo_events_consumed_total", "Distinct events read from Kafka by the checker.", chk.distinct.Load),
			counter("millrace_demo_duplicates_total", "Extra copies of events read by the checker.", chk.duplicates.Load),
		)
	}
}

// writingContext returns the context of the writing period: it ends with ctx or
// after d (d <= 0: with ctx only).
func writingContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

func toSet(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// randomID returns 12 random hex digits, for names unique to a run.
func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func rateString(rate int) string {
	if rate <= 0 {
		return "as fast as they can"
	}
	return fmt.Sprintf("%d transactions/s", rate)
}

func durationString(d time.Duration) string {
	if d <= 0 {
		return "until interrupted"
	}
	return d.String()
}
