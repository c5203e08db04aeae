package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// devDatabaseURL is the database of relay dev and relay emit when
// RELAY_DATABASE_URL is not set: the "postgres" database of a PostgreSQL on this
// machine, as user postgres. It has no password, so that a server trusting local
// connections just works; otherwise pgx takes the password from PGPASSWORD or
// ~/.pgpass, or set RELAY_DATABASE_URL.
const devDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Defaults of relay dev.
const (
	devDefaultPort       = 9092
	devDefaultPartitions = 3
	devPreviewBytes      = 64 // payload bytes printed per event
)

const devHelp = `
For development only. Starts an in-memory Kafka broker (franz-go's kfake) on
127.0.0.1:--port, creates the outbox tables if they are missing, forwards the
outbox to that broker like 'relay run', and prints every event that lands: topic,
partition, offset, key, UUID and the start of the payload. Other programs (a
consumer, kcat, your service) can use the broker at the address printed.

The broker keeps nothing: its topics and records are gone when relay dev stops.
Topics are created on first use with --partitions partitions, like a broker with
auto.create.topics.enable. Do not use it in production: use 'relay run' against a
Kafka cluster.

RELAY_DATABASE_URL defaults to ` + devDatabaseURL + `
(a local PostgreSQL; the password comes from PGPASSWORD or ~/.pgpass). The database, forwarder, http and log settings are those of
'relay run' (LOG_FORMAT defaults to console); the Kafka settings do not apply.

Write an event from another terminal with 'relay emit --topic orders --key k1
'{"id":1}'', or from your application through outbox.NewPublisher.`

// devEnviron is the environment of relay dev: the process's, with the development
// defaults for what it does not set and without the Kafka settings, which belong
// to the embedded broker.
func devEnviron(environ map[string]string, broker string) map[string]string {
	out := make(map[string]string, len(environ)+4)
	for k, v := range environ {
		if !strings.HasPrefix(k, "RELAY_KAFKA_") {
			out[k] = v
		}
	}
	setDefault := func(k, v string) {
		if out[k] == "" {
			out[k] = v
		}
	}
	setDefault("RELAY_DATABASE_URL", devDatabaseURL)
	setDefault("LOG_FORMAT", "console")
	out["RELAY_MIGRATE"] = "true"
	out["RELAY_KAFKA_BROKERS"] = broker
	out["RELAY_KAFKA_CLIENT_ID"] = "millrace-relay-dev"
	out["RELAY_KAFKA_COMPRESSION"] = "none" // readable in a packet capture
	return out
}

func (a *app) cmdDev(args []string) int {
	c := commandNamed("dev")
	fs := newFlagSet(c.name)
	port := fs.Int("port", devDefaultPort, "port of the in-memory broker on 127.0.0.1; 0 picks a free one")
	partitions := fs.Int("partitions", devDefaultPartitions, "partitions of the topics the broker creates on first use")
	// The Kafka group is loaded from fixed values, with no flags: dev has one broker.
	cfg := &config{}
	set := newSettingsSet(fs, devEnviron(a.environ, "127.0.0.1:"+strconv.Itoa(devDefaultPort)),
		group{"database", &cfg.DB}, group{"forwarder", &cfg.Forward}, group{"http", &cfg.HTTP}, group{"log", &cfg.Log})
	if ok, code := a.parseFlags(fs, c, args); !ok {
		return code
	}
	a.protect(set)
	var problems []problem
	if *port < 0 || *port > 65535 {
		problems = append(problems, problem{"", fmt.Sprintf("--port: must be in 0..65535, got %d", *port)})
	}
	if *partitions < 1 || *partitions > 1000 {
		problems = append(problems, problem{"", fmt.Sprintf("--partitions: must be in 1..1000, got %d", *partitions)})
	}
	kset := newSettingsSet(newFlagSet("dev-kafka"), set.environ, group{"kafka", &cfg.Kafka})
	problems = append(problems, kset.load()...)
	problems = append(problems, collectProblems(set, cfg, true)...)
	a.red.Add(cfg.secrets...)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(a.stderr, "relay dev: %s\n", p.text)
		}
		fmt.Fprintf(a.stderr, "relay dev: %d invalid setting(s); run 'relay dev --help'\n", len(problems))
		return exitUsage
	}
	log := newLogger(a.stderr, cfg.Log, cfg.logLevel)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	cluster, err := startDevBroker(*port, *partitions)
	if err != nil {
		fmt.Fprintf(a.stderr, "relay dev: %v\n", err)
		return exitFailure
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]
	cfg.Kafka.Brokers = []string{broker}
	a.printDevBanner(broker, cfg, *partitions)

	var stopping atomic.Bool
	r, signalled, err := a.startUnlessSignalled(cfg, log, sigs, &stopping)
	if err != nil {
		if signalled {
			return exitOK
		}
		log.Error().Err(err).Msg("relay dev cannot start")
		return exitFailure
	}

	printer, err := newDevPrinter(broker, a.stdout)
	if err != nil {
		stopping.Store(true)
		_ = r.fwd.Close()
		r.close(log)
		log.Error().Err(err).Msg("relay dev cannot read its broker")
		return exitFailure
	}
	runDone := make(chan error, 1)
	go func() { runDone <- r.fwd.Run(context.Background()) }()
	if r.http != nil {
		fmt.Fprintf(a.stdout, "relay dev: console at http://%s/\n", r.http.Addr())
	}
	fmt.Fprintf(a.stdout, "relay dev: forwarding; waiting for events (Ctrl-C stops)\n")

	code := exitOK
	if !signalled {
		select {
		case sig := <-sigs:
			log.Info().Str("signal", sig.String()).Msg("stopping relay dev")
		case err := <-runDone:
			log.Error().Err(err).Msg("forwarder stopped unexpectedly")
			runDone <- err
			code = exitFailure
		}
	}
	stopping.Store(true)
	code = max(code, a.stop(r, cfg, log, sigs, runDone))
	printer.close() // after the forwarder: what it forwarded last is printed
	return code
}

// startDevBroker starts the in-memory broker on 127.0.0.1:port, creating topics
// on first use with partitions partitions.
func startDevBroker(port, partitions int) (*kfake.Cluster, error) {
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions),
	)
	if err != nil {
		if isAddrInUse(err) {
			return nil, fmt.Errorf("port %d on 127.0.0.1 is in use (another Kafka broker or relay dev?): choose another with --port", port)
		}
		return nil, fmt.Errorf("starting the in-memory broker: %w", err)
	}
	// A producer that does not ask for topic creation (franz-go's default) still
	// gets its topic, as from a broker with auto.create.topics.enable.
	cluster.ControlKey(int16(kmsg.Metadata), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if m, ok := req.(*kmsg.MetadataRequest); ok {
			m.AllowAutoTopicCreation = true
		}
		return nil, nil, false
	})
	return cluster, nil
}

func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

func (a *app) printDevBanner(broker string, cfg *config, partitions int) {
	w := a.stdout
	fmt.Fprintf(w, `
  relay dev: FOR DEVELOPMENT ONLY. Not for production.
  The Kafka broker lives in this process's memory and keeps nothing when it stops.

  Kafka broker   %s   (KAFKA_BROKERS=%s for other programs)
  Database       %s
  Outbox         %s (consumer group %s), tables created if missing
  Topics         created on first use, %d partitions each

  Write an event:  relay emit --topic orders --key customer-7 '{"order_id":42}'

`, broker, broker, cfg.database.masked, cfg.DB.Outbox, cfg.DB.ConsumerGroup, partitions)
}

// devPrinter reads every topic of the broker from the start and prints each
// record as it lands. It is the developer's own terminal, so it prints the start
// of each payload; the relay's logs never do.
type devPrinter struct {
	cl       *kgo.Client
	cancel   context.CancelFunc
	done     chan struct{}
	lastSeen atomic.Int64 // unix nanoseconds of the last record printed
}

func newDevPrinter(broker string, out io.Writer) (*devPrinter, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(broker),
		kgo.ConsumeRegex(),
		kgo.ConsumeTopics(".*"), // every topic but the internal ones
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(100*time.Millisecond),
		kgo.MetadataMaxAge(time.Second), // finds a new topic within a second
		kgo.ClientID("millrace-relay-dev-printer"),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &devPrinter{cl: cl, cancel: cancel, done: make(chan struct{})}
	var mu sync.Mutex
	go func() {
		defer close(p.done)
		for {
			fetches := cl.PollFetches(ctx)
			if ctx.Err() != nil || fetches.IsClientClosed() {
				return
			}
			fetches.EachRecord(func(r *kgo.Record) {
				mu.Lock()
				defer mu.Unlock()
				fmt.Fprintln(out, formatDevRecord(r))
				p.lastSeen.Store(time.Now().UnixNano())
			})
		}
	}()
	return p, nil
}

// close stops the printer once records have stopped arriving for 300ms (at most
// 2s), so that what the relay forwarded last is printed.
func (p *devPrinter) close() {
	start := time.Now()
	quiet := func() bool {
		last := time.Unix(0, p.lastSeen.Load())
		if last.Before(start) {
			last = start
		}
		return time.Since(last) >= 300*time.Millisecond
	}
	for time.Since(start) < 2*time.Second && !quiet() {
		time.Sleep(50 * time.Millisecond)
	}
	p.cancel()
	<-p.done
	p.cl.Close()
}

// formatDevRecord is the line printed for r:
//
//	orders  p=1 offset=0  key="customer-7"  uuid=0b3f...  payload(15 B): {"order_id":42}
func formatDevRecord(r *kgo.Record) string {
	uuid := "-"
	for _, h := range r.Headers {
		if h.Key == "_watermill_message_uuid" {
			uuid = string(h.Value)
		}
	}
	key := "-"
	if r.Key != nil {
		key = strconv.Quote(string(r.Key))
	}
	return fmt.Sprintf("%s %s p=%d offset=%d key=%s uuid=%s payload(%d B): %s",
		r.Timestamp.Local().Format("15:04:05.000"), r.Topic, r.Partition, r.Offset, key, uuid,
		len(r.Value), previewPayload(r.Value, devPreviewBytes))
}

// previewPayload returns the start of a payload for a terminal: up to max bytes of
// text with control characters escaped and "…" when cut, or a byte count when the
// payload is not text.
func previewPayload(b []byte, max int) string {
	if len(b) == 0 {
		return "(empty)"
	}
	if !utf8.Valid(b) {
		return "(binary)"
	}
	cut := false
	if len(b) > max {
		b, cut = b[:max], true
		for len(b) > 0 && !utf8.Valid(b) { // do not split a character
			b = b[:len(b)-1]
		}
	}
	var s strings.Builder
	for _, r := range string(b) {
		if unicode.IsControl(r) || !unicode.IsPrint(r) && r != ' ' {
			q := strconv.QuoteRune(r)
			s.WriteString(q[1 : len(q)-1])
			continue
		}
		s.WriteRune(r)
	}
	if cut {
		s.WriteString("…")
	}
	return s.String()
}
