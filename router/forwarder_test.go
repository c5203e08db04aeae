package router_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/internal/kafkatest"
	"github.com/millrace/millrace/internal/syncbuf"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// env is one test's outbox, broker and topic.
type env struct {
	db    *sql.DB
	ocfg  outbox.Config
	kc    *kafkatest.Cluster
	topic string
}

var dialects = []outbox.Dialect{outbox.Postgres, outbox.MySQL}

func forEachDialect(t *testing.T, fn func(t *testing.T, d outbox.Dialect)) {
	for _, d := range dialects {
		t.Run(d.String(), func(t *testing.T) { fn(t, d) })
	}
}

func newEnv(t *testing.T, d outbox.Dialect, opts ...kafkatest.Option) *env {
	t.Helper()
	var db *sql.DB
	if d == outbox.Postgres {
		db = dbtest.Postgres(t)
	} else {
		db = dbtest.MySQL(t)
	}
	db.SetMaxOpenConns(32)
	ocfg := outbox.Config{Dialect: d, Name: dbtest.UniqueName("rt"), LockPollInterval: 50 * time.Millisecond}
	ctx := context.Background()
	if err := outbox.InitializeSchema(ctx, db, ocfg); err != nil {
		t.Fatalf("InitializeSchema: %v", err)
	}
	t.Cleanup(func() { _ = outbox.DropSchema(context.Background(), db, ocfg) })
	kc := kafkatest.New(t, opts...)
	return &env{db: db, ocfg: ocfg, kc: kc, topic: kc.NewTopic(t, 6)}
}

// publisher returns the decorated batching publisher with the router's marshaler.
func (e *env) publisher(t *testing.T, cfg adapter.Config) *adapter.Publisher {
	t.Helper()
	if cfg.InitialInterval == 0 {
		cfg.InitialInterval = 10 * time.Millisecond
		cfg.MaxInterval = 100 * time.Millisecond
	}
	if cfg.MaxElapsedTime == 0 {
		cfg.MaxElapsedTime = 2 * time.Second
	}
	p, err := router.NewKafkaPublisher(adapter.KafkaConfig{Brokers: e.kc.Addrs()}, cfg)
	if err != nil {
		t.Fatalf("NewKafkaPublisher: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func (e *env) forwarder(t *testing.T, pub message.Publisher, mod func(*router.Config)) *router.Forwarder {
	t.Helper()
	cfg := router.Config{
		DB:                 e.db,
		Outbox:             e.ocfg,
		Publisher:          pub,
		BatchSize:          200,
		PollInterval:       50 * time.Millisecond,
		RetryInitial:       20 * time.Millisecond,
		RetryMax:           200 * time.Millisecond,
		FatalRetryInterval: 200 * time.Millisecond,
		StatsInterval:      100 * time.Millisecond,
		Logger:             debugLogger,
	}
	if mod != nil {
		mod(&cfg)
	}
	f, err := router.NewForwarder(cfg)
	if err != nil {
		t.Fatalf("NewForwarder: %v", err)
	}
	return f
}

// start runs f until the test ends and fails the test if Run returns an error.
func start(t *testing.T, f *router.Forwarder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := f.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// ev is an event to write: key and a sequence number within the key.
type ev struct {
	key     string
	seq     int
	payload []byte
}

// write commits events in one transaction (or rolls it back) and returns their UUIDs.
func (e *env) write(t testing.TB, topic string, evs []ev, commit bool) []string {
	t.Helper()
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	pub, err := outbox.NewPublisher(tx, e.ocfg)
	if err != nil {
		t.Fatalf("outbox.NewPublisher: %v", err)
	}
	uuids := make([]string, len(evs))
	msgs := make([]*message.Message, len(evs))
	for i, x := range evs {
		payload := x.payload
		if payload == nil {
			payload = []byte(x.key + ":" + strconv.Itoa(x.seq))
		}
		m := message.NewMessage(watermill.NewUUID(), payload)
		m.Metadata.Set("seq", strconv.Itoa(x.seq))
		outbox.SetKey(m, x.key)
		uuids[i], msgs[i] = m.UUID, m
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		_ = tx.Rollback()
		t.Fatalf("outbox Publish: %v", err)
	}
	if commit {
		err = tx.Commit()
	} else {
		err = tx.Rollback()
	}
	if err != nil {
		t.Fatalf("end tx: %v", err)
	}
	return uuids
}

// consumeDistinct reads the whole topic until it holds at least want distinct
// events (by UUID) and nothing new arrives for a moment, and returns every record
// read, duplicates included. It fails the test after timeout.
func (e *env) consumeDistinct(t *testing.T, want int, timeout time.Duration) []kafkatest.Record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := e.kc.ConsumeAll(t, e.topic, 300*time.Millisecond)
		if first, _ := delivered(recs); len(first) >= want {
			return recs
		} else if time.Now().After(deadline) {
			t.Fatalf("%d distinct events in Kafka after %v, want %d", len(first), timeout, want)
		}
	}
}

// delivered de-duplicates records by UUID (keeping the first) and reports the
// duplicates.
func delivered(recs []kafkatest.Record) (first []kafkatest.Record, dups int) {
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		id := r.Headers[kafka.UUIDHeaderKey]
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		first = append(first, r)
	}
	return first, dups
}

// checkOrder fails when, per key, the seq headers do not increase in partition order.
func checkOrder(t *testing.T, recs []kafkatest.Record) {
	t.Helper()
	last := map[string]int{}
	part := map[string]int32{}
	for _, r := range recs {
		k := string(r.Key)
		seq, err := strconv.Atoi(r.Headers["seq"])
		if err != nil {
			t.Fatalf("record without a seq header: %+v", r.Headers)
		}
		if p, ok := part[k]; ok && p != r.Partition {
			t.Fatalf("key %q on partitions %d and %d", k, p, r.Partition)
		}
		part[k] = r.Partition
		if l, ok := last[k]; ok && seq <= l {
			t.Fatalf("key %q: seq %d after %d: per-key order broken", k, seq, l)
		}
		last[k] = seq
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEveryCommittedEventArrivesInOrderAndNoRolledBackOne(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d)
		f := e.forwarder(t, e.publisher(t, adapter.Config{}), nil)
		start(t, f)

		const writers, keys, perTx, total = 8, 100, 10, 10000
		var (
			mu         sync.Mutex
			committed  = map[string]bool{}
			rolledBack = map[string]bool{}
			wg         sync.WaitGroup
		)
		for w := range writers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				seq := map[string]int{}
				for range total / writers / perTx {
					evs := make([]ev, perTx)
					for i := range evs {
						// Each key belongs to one writer, so its commit order is the
						// writer's order.
						k := fmt.Sprintf("key-%03d", w+writers*rng.IntN(keys/writers))
						seq[k]++
						evs[i] = ev{key: k, seq: seq[k]}
					}
					commit := rng.IntN(10) != 0
					ids := e.write(t, e.topic, evs, commit)
					mu.Lock()
					for _, id := range ids {
						if commit {
							committed[id] = true
						} else {
							rolledBack[id] = true
						}
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()

		recs := e.consumeDistinct(t, len(committed), time.Minute)
		first, dups := delivered(recs)
		for _, r := range first {
			id := r.Headers[kafka.UUIDHeaderKey]
			if rolledBack[id] {
				t.Fatalf("rolled-back event %s reached Kafka", id)
			}
			if !committed[id] {
				t.Fatalf("unknown event %s reached Kafka", id)
			}
		}
		if len(first) != len(committed) {
			t.Fatalf("%d distinct events in Kafka, want the %d committed", len(first), len(committed))
		}
		checkOrder(t, first)
		t.Logf("%s: %d committed, %d rolled back, %d duplicates, stats %+v",
			d, len(committed), len(rolledBack), dups, f.Stats())
	})
}

func TestATransactionLeftOpenIsForwardedAfterItCommits(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d)
		f := e.forwarder(t, e.publisher(t, adapter.Config{}), nil)
		start(t, f)

		ctx := context.Background()
		held, err := e.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := outbox.NewPublisher(held, e.ocfg)
		if err != nil {
			t.Fatal(err)
		}
		m := message.NewMessage(watermill.NewUUID(), []byte("held"))
		m.Metadata.Set("seq", "1")
		outbox.SetKey(m, "held")
		if err := pub.Publish(e.topic, m); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			e.write(t, e.topic, []ev{{key: "other", seq: i + 1}}, true)
		}
		time.Sleep(300 * time.Millisecond) // several polls while the transaction is open
		if err := held.Commit(); err != nil {
			t.Fatal(err)
		}
		recs := e.consumeDistinct(t, 21, 30*time.Second)
		first, _ := delivered(recs)
		found := false
		for _, r := range first {
			if r.Headers[kafka.UUIDHeaderKey] == m.UUID {
				found = true
			}
		}
		if !found || len(first) != 21 {
			t.Fatalf("%d distinct events, held one found: %v; want all 21 including the held one", len(first), found)
		}
		checkOrder(t, first)
	})
}

func TestACanceledForwarderLosesNothingAndResendsAtMostOneBatch(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d, kafkatest.WithProxy())
		const total, batch = 3000, 100
		for i := range total / 100 {
			evs := make([]ev, 100)
			for j := range evs {
				evs[j] = ev{key: "k" + strconv.Itoa(j%10), seq: i*100 + j + 1}
			}
			e.write(t, e.topic, evs, true)
		}
		e.kc.Proxy().SetLatency(2 * time.Millisecond) // slow enough to stop mid-stream
		pub := e.publisher(t, adapter.Config{})
		f1 := e.forwarder(t, pub, func(c *router.Config) { c.BatchSize = batch })
		stop := start(t, f1)
		waitFor(t, 30*time.Second, "forwarding to start", func() bool { return f1.Stats().EventsForwarded >= 500 })
		stop() // abrupt: cancel without Close
		if n := f1.Stats().EventsForwarded; n >= total {
			t.Fatalf("forwarder finished (%d) before it was stopped; the test stopped nothing", n)
		}

		f2 := e.forwarder(t, pub, func(c *router.Config) { c.BatchSize = batch })
		start(t, f2)
		recs := e.consumeDistinct(t, total, time.Minute)
		first, dups := delivered(recs)
		if len(first) != total {
			t.Fatalf("%d distinct events, want %d", len(first), total)
		}
		if dups > batch {
			t.Fatalf("%d duplicates, want at most one batch (%d)", dups, batch)
		}
		checkOrder(t, first)
		t.Logf("%s: stopped after %d forwarded; %d duplicates after restart", d, f1.Stats().EventsForwarded, dups)
	})
}

func TestAPoisonEventBecomesADeadLetterAndTheRestFlows(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d)
		e.kc.SetMaxMessageBytes(t, e.topic, 4096)
		big := make([]byte, 8000) // random, so that compression cannot shrink it
		for i := range big {
			big[i] = byte(rand.IntN(256))
		}
		poison := e.write(t, e.topic, []ev{{key: "p", seq: 1, payload: big}}, true)[0]
		for i := range 10 {
			evs := make([]ev, 100)
			for j := range evs {
				evs[j] = ev{key: "k" + strconv.Itoa(j%20), seq: i*100 + j + 1}
			}
			e.write(t, e.topic, evs, true)
		}
		f := e.forwarder(t, e.publisher(t, adapter.Config{}), nil)
		start(t, f)

		recs := e.consumeDistinct(t, 1000, 30*time.Second)
		first, _ := delivered(recs)
		if len(first) != 1000 {
			t.Fatalf("%d distinct events arrived, want the 1000 behind the poison one", len(first))
		}
		checkOrder(t, first)
		ctx := context.Background()
		var dl []outbox.DeadLetter
		waitFor(t, 5*time.Second, "the dead letter", func() bool {
			var err error
			dl, err = outbox.List(ctx, e.db, e.ocfg, outbox.Filter{})
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			return len(dl) > 0
		})
		if len(dl) != 1 {
			t.Fatalf("%d dead letters, want only the poison event: %+v", len(dl), dl)
		}
		if dl[0].UUID != poison || dl[0].Class != "permanent" || !strings.Contains(strings.ToLower(dl[0].Reason), "large") {
			t.Fatalf("dead letter = %+v, want the poison event, permanent, too large", dl[0])
		}
		if got := f.Stats().DeadLetters; got != 1 {
			t.Fatalf("Stats().DeadLetters = %d, want 1", got)
		}

		e.kc.SetMaxMessageBytes(t, e.topic, 1<<20)
		if n, err := outbox.Replay(ctx, e.db, e.ocfg, outbox.Filter{IDs: []int64{dl[0].ID}}); err != nil || n != 1 {
			t.Fatalf("Replay = %d, %v; want 1", n, err)
		}
		waitFor(t, 30*time.Second, "the replayed event", func() bool {
			for _, r := range e.kc.ConsumeAll(t, e.topic, 200*time.Millisecond) {
				if r.Headers[kafka.UUIDHeaderKey] == poison {
					return true
				}
			}
			return false
		})
	})
}

// A fatal failure is logged at error once, when forwarding halts; the tries while
// it stays halted are warnings, and the end is an info line.
func TestAFatalFailureHaltsForwardingUntilItIsLifted(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d)
		fault := e.kc.FailProduce(t, e.topic, kerr.TopicAuthorizationFailed, -1)
		e.write(t, e.topic, []ev{{key: "a", seq: 1}, {key: "b", seq: 1}}, true)
		logs := &syncbuf.Buffer{}
		f := e.forwarder(t, e.publisher(t, adapter.Config{}), func(c *router.Config) { c.Logger = captureLogger(logs) })
		start(t, f)

		waitFor(t, 10*time.Second, "the fatal state", func() bool { return f.Stats().State == router.StateFatal })
		err := f.HealthCheck(context.Background())
		if !errors.Is(err, router.ErrUnhealthy) || !strings.Contains(err.Error(), "fatal") {
			t.Fatalf("HealthCheck = %v, want unhealthy naming the fatal failure", err)
		}
		time.Sleep(500 * time.Millisecond) // a few slow retries
		if dl, err := outbox.List(context.Background(), e.db, e.ocfg, outbox.Filter{}); err != nil || len(dl) != 0 {
			t.Fatalf("dead letters = %d (%v), want none for a fatal failure", len(dl), err)
		}

		fault.Remove()
		recs := e.kc.Consume(t, e.topic, 2, 10*time.Second)
		if len(recs) != 2 {
			t.Fatalf("%d events after the fault was lifted, want 2", len(recs))
		}
		waitFor(t, 5*time.Second, "health to recover", func() bool { return f.HealthCheck(context.Background()) == nil })
		waitFor(t, 5*time.Second, "the recovery logged", func() bool { return countLogs(logs, "info", "forwarding recovered") == 1 })
		if n := countLogs(logs, "error", "forwarding halted by a fatal failure"); n != 1 {
			t.Errorf("%d errors for the halt, want 1:\n%s", n, logs)
		}
		if n := countLogs(logs, "warn", "forwarding still halted by a fatal failure"); n < 1 {
			t.Errorf("no warning for the tries while halted:\n%s", logs)
		}
		// The halt, and health turning bad (HealthCheck was called during it).
		if n := countLogs(logs, "error", ""); n != 2 || countLogs(logs, "error", "forwarder unhealthy") != 1 {
			t.Errorf("%d errors logged, want the halt and health turning bad:\n%s", n, logs)
		}
	})
}

// captureLogger returns a logger writing JSON lines to buf.
func captureLogger(buf *syncbuf.Buffer) *zerolog.Logger {
	l := zerolog.New(buf).Level(zerolog.DebugLevel)
	return &l
}

// countLogs counts the lines of buf at level whose message is msg ("" for any).
func countLogs(buf *syncbuf.Buffer, level, msg string) int {
	n := 0
	for line := range strings.SplitSeq(buf.String(), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev["level"] == level && (msg == "" || ev["message"] == msg) {
			n++
		}
	}
	return n
}

func TestTwoForwardersOnOneOutboxDeliverEverythingInOrder(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d)
		f1 := e.forwarder(t, e.publisher(t, adapter.Config{}), nil)
		f2 := e.forwarder(t, e.publisher(t, adapter.Config{}), nil)
		start(t, f1)
		start(t, f2)
		const total = 2000
		for i := range total / 50 {
			evs := make([]ev, 50)
			for j := range evs {
				evs[j] = ev{key: "k" + strconv.Itoa(j%25), seq: i*50 + j + 1}
			}
			e.write(t, e.topic, evs, true)
		}
		recs := e.consumeDistinct(t, total, time.Minute)
		first, dups := delivered(recs)
		if len(first) != total {
			t.Fatalf("%d distinct events, want %d", len(first), total)
		}
		checkOrder(t, first)
		t.Logf("%s: forwarder 1 sent %d, forwarder 2 sent %d, %d duplicates",
			d, f1.Stats().EventsForwarded, f2.Stats().EventsForwarded, dups)
	})
}

// A broker outage loses nothing. Health turning bad is logged at error once, its
// end at info, and every batch tried again at warn.
func TestABrokerOutageLosesNothingAndTheBacklogDrains(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d, kafkatest.WithProxy())
		pub := e.publisher(t, adapter.Config{MaxElapsedTime: time.Second})
		logs := &syncbuf.Buffer{}
		f := e.forwarder(t, pub, func(c *router.Config) {
			c.UnhealthyAfter = 500 * time.Millisecond
			c.Logger = captureLogger(logs)
		})
		start(t, f)
		e.write(t, e.topic, []ev{{key: "k", seq: 1}}, true)
		e.kc.Consume(t, e.topic, 1, 10*time.Second)

		e.kc.Proxy().Cut()
		for i := range 20 {
			evs := make([]ev, 50)
			for j := range evs {
				evs[j] = ev{key: "k" + strconv.Itoa(j%10), seq: 1 + i*50 + j + 1}
			}
			e.write(t, e.topic, evs, true)
		}
		waitFor(t, 15*time.Second, "health to report the outage", func() bool {
			return f.HealthCheck(context.Background()) != nil
		})
		time.Sleep(2 * time.Second)
		e.kc.Proxy().Restore()

		recs := e.consumeDistinct(t, 1001, time.Minute)
		first, dups := delivered(recs)
		if len(first) != 1001 {
			t.Fatalf("%d distinct events after the outage, want 1001", len(first))
		}
		checkOrder(t, first)
		if dl, _ := outbox.List(context.Background(), e.db, e.ocfg, outbox.Filter{}); len(dl) != 0 {
			t.Fatalf("%d dead letters after an outage, want none", len(dl))
		}
		waitFor(t, 10*time.Second, "health to recover", func() bool { return f.HealthCheck(context.Background()) == nil })
		t.Logf("%s: %d duplicates, %d batches tried again", d, dups, f.Stats().BatchFailures)
		if n := countLogs(logs, "error", ""); n != 1 || countLogs(logs, "error", "forwarder unhealthy") != 1 {
			t.Errorf("%d errors logged, want only one for turning unhealthy:\n%s", n, logs)
		}
		if n := countLogs(logs, "info", "forwarder healthy again"); n != 1 {
			t.Errorf("%d returns to health logged, want 1", n)
		}
		if n := countLogs(logs, "info", "forwarding recovered"); n != 1 {
			t.Errorf("%d recoveries logged, want 1", n)
		}
		if n := countLogs(logs, "warn", "batch failed, retrying"); int64(n) != f.Stats().BatchFailures || n == 0 {
			t.Errorf("%d batch warnings for %d batch failures", n, f.Stats().BatchFailures)
		}
	})
}

func TestACommitWakesTheForwarderAtOnceOnPostgres(t *testing.T) {
	e := newEnv(t, outbox.Postgres)
	f := e.forwarder(t, e.publisher(t, adapter.Config{}), func(c *router.Config) { c.PollInterval = time.Minute })
	start(t, f)
	waitFor(t, 10*time.Second, "the forwarder to idle", func() bool { return f.Stats().State == router.StateIdle })
	for i := range 5 {
		start := time.Now()
		e.write(t, e.topic, []ev{{key: "k", seq: i + 1}}, true)
		e.kc.Consume(t, e.topic, i+1, 5*time.Second)
		if took := time.Since(start); took > time.Second {
			t.Fatalf("event %d took %v to arrive with a 1m poll interval: the commit did not wake the forwarder", i, took)
		}
	}
}

func TestCloseFinishesTheBatchAndStopsRun(t *testing.T) {
	e := newEnv(t, outbox.Postgres)
	f := e.forwarder(t, e.publisher(t, adapter.Config{}), nil)
	done := make(chan error, 1)
	go func() { done <- f.Run(context.Background()) }()
	e.write(t, e.topic, []ev{{key: "k", seq: 1}}, true)
	e.kc.Consume(t, e.topic, 1, 10*time.Second)
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after Close = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := f.Run(context.Background()); !errors.Is(err, router.ErrClosed) {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
	if err := f.Alive(); err == nil {
		t.Fatal("Alive after Close = nil, want an error")
	}
}

func TestInvalidConfigsNameTheField(t *testing.T) {
	db := &sql.DB{}
	pub := nopPublisher{}
	ok := router.Config{DB: db, Publisher: pub, Outbox: outbox.Config{Dialect: outbox.Postgres}}
	tests := []struct {
		field string
		mod   func(*router.Config)
	}{
		{"DB", func(c *router.Config) { c.DB = nil }},
		{"Publisher", func(c *router.Config) { c.Publisher = nil }},
		{"Outbox", func(c *router.Config) { c.Outbox.Dialect = 0 }},
		{"BatchSize", func(c *router.Config) { c.BatchSize = -1 }},
		{"PollInterval", func(c *router.Config) { c.PollInterval = -1 }},
		{"RetryMax", func(c *router.Config) { c.RetryInitial, c.RetryMax = time.Second, time.Millisecond }},
		{"RetentionBatch", func(c *router.Config) { c.RetentionBatch = -5 }},
	}
	for _, tt := range tests {
		cfg := ok
		tt.mod(&cfg)
		if _, err := router.NewForwarder(cfg); err == nil || !strings.Contains(err.Error(), "Config."+tt.field) {
			t.Errorf("NewForwarder with a bad %s: %v, want an error naming Config.%s", tt.field, err, tt.field)
		}
	}
	if _, err := router.NewForwarder(ok); err != nil {
		t.Fatalf("NewForwarder with a valid config: %v", err)
	}
}

type nopPublisher struct{}

func (nopPublisher) Publish(string, ...*message.Message) error { return nil }
func (nopPublisher) Close() error                              { return nil }
