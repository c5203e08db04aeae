package adapter_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/kafkatest"
)

// kafkaTestConfig is a KafkaConfig for the test clusters: short backoffs so that
// retries and metadata lookups do not slow the tests down, no topic auto-creation so
// that a missing topic is an error.
func kafkaTestConfig(c *kafkatest.Cluster) adapter.KafkaConfig {
	return adapter.KafkaConfig{
		Brokers:     c.Addrs(),
		ClientID:    "millrace-test",
		DialTimeout: 2 * time.Second,
		PingTimeout: 2 * time.Second,
		// franz-go retries every 10ms at first, and refreshes metadata as often as
		// it needs (its default is at most every 5s); topics are never auto-created.
		RetryBackoff: 10 * time.Millisecond,
		// Records that cannot be sent (brokers unreachable) come back within a
		// second, so that the decorator's retries show in the tests.
		DeliveryTimeout: time.Second,
		Options:         []kgo.Opt{kgo.MetadataMinAge(10 * time.Millisecond)},
	}
}

// newKafkaPublisher returns a KafkaPublisher on c, closed when the test ends.
func newKafkaPublisher(tb testing.TB, c *kafkatest.Cluster, mutate func(*adapter.KafkaConfig)) *adapter.KafkaPublisher {
	tb.Helper()
	cfg := kafkaTestConfig(c)
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := adapter.NewKafkaPublisher(cfg)
	if err != nil {
		tb.Fatalf("NewKafkaPublisher: %v", err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

// kafkaMessages returns n messages with metadata and distinct payloads; the
// metadata "key" cycles over keys values when keys > 0.
func kafkaMessages(prefix string, n, keys int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		m := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf("%s-payload-%d", prefix, i)))
		m.Metadata.Set("seq", strconv.Itoa(i))
		m.Metadata.Set("origin", prefix)
		if keys > 0 {
			m.Metadata.Set("key", "k"+strconv.Itoa(i%keys))
		}
		msgs[i] = m
	}
	return msgs
}

// subscribeWatermill reads n messages of topic with watermill-kafka's subscriber,
// acking each, and fails the test when they do not arrive within timeout.
func subscribeWatermill(t *testing.T, c *kafkatest.Cluster, topic string, n int, timeout time.Duration) []*message.Message {
	t.Helper()
	sc := kafka.DefaultSaramaSubscriberConfig()
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               c.Addrs(),
		Unmarshaler:           kafka.DefaultMarshaler{},
		OverwriteSaramaConfig: sc,
		ConsumerGroup:         "millrace-test-" + topic,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("watermill-kafka NewSubscriber: %v", err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	var got []*message.Message
	for len(got) < n {
		select {
		case m := <-ch:
			m.Ack()
			got = append(got, m)
		case <-ctx.Done():
			t.Fatalf("watermill-kafka subscriber read %d of %d messages in %v", len(got), n, timeout)
		}
	}
	return got
}

func TestKafkaPublisher_roundTripThroughWatermillKafkaSubscriber(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 3)
	p := newKafkaPublisher(t, c, nil)

	msgs := kafkaMessages("rt", 1000, 0)
	msgs[0].Payload = nil        // empty payload
	msgs[1].Metadata = nil       // no metadata at all
	msgs[2].Metadata.Set("", "") // empty key and value
	if err := p.Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	got := subscribeWatermill(t, c, topic, len(msgs), 30*time.Second)
	want := make(map[string]*message.Message, len(msgs))
	for _, m := range msgs {
		want[m.UUID] = m
	}
	for _, g := range got {
		w, ok := want[g.UUID]
		if !ok {
			t.Fatalf("unexpected or duplicate message %s", g.UUID)
		}
		delete(want, g.UUID)
		if !bytes.Equal(g.Payload, w.Payload) {
			t.Errorf("message %s: payload %q, want %q", g.UUID, g.Payload, w.Payload)
		}
		if len(g.Metadata) != len(w.Metadata) {
			t.Errorf("message %s: metadata %v, want %v", g.UUID, g.Metadata, w.Metadata)
		}
		for k, v := range w.Metadata {
			if g.Metadata.Get(k) != v {
				t.Errorf("message %s: metadata %q = %q, want %q", g.UUID, k, g.Metadata.Get(k), v)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("%d messages never arrived", len(want))
	}
}

func TestKafkaPublisher_sameKeyGoesToOnePartitionInOrder(t *testing.T) {
	for _, tc := range []struct {
		name      string
		marshaler kafka.Marshaler
	}{
		{"KeyFromMetadata", adapter.KeyFromMetadata("key")},
		{"watermill-kafka partitioning marshaler", kafka.NewWithPartitioningMarshaler(
			func(_ string, m *message.Message) (string, error) { return m.Metadata.Get("key"), nil })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := kafkatest.New(t)
			topic := c.NewTopic(t, 4)
			p := newKafkaPublisher(t, c, func(cfg *adapter.KafkaConfig) { cfg.Marshaler = tc.marshaler })

			const keys = 7
			msgs := kafkaMessages("key", 1000, keys)
			if err := p.Publish(topic, msgs...); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			recs := c.Consume(t, topic, len(msgs), 30*time.Second)
			if len(recs) != len(msgs) {
				t.Fatalf("consumed %d records, want %d", len(recs), len(msgs))
			}
			partitionOf := map[string]int32{}
			lastSeq := map[string]int{}
			partitions := map[int32]bool{}
			for _, r := range recs {
				key := string(r.Key)
				if key != r.Headers["key"] {
					t.Fatalf("record key %q, metadata key %q", key, r.Headers["key"])
				}
				if p, ok := partitionOf[key]; ok && p != r.Partition {
					t.Fatalf("key %s in partitions %d and %d", key, p, r.Partition)
				}
				partitionOf[key] = r.Partition
				partitions[r.Partition] = true
				seq, _ := strconv.Atoi(r.Headers["seq"])
				if last, ok := lastSeq[key]; ok && seq <= last {
					t.Fatalf("key %s: seq %d after %d: order not kept", key, seq, last)
				}
				lastSeq[key] = seq
			}
			if len(partitionOf) != keys {
				t.Errorf("saw %d keys, want %d", len(partitionOf), keys)
			}
			if len(partitions) < 2 {
				t.Errorf("all keys in %d partition(s): the key is not used for partitioning", len(partitions))
			}
		})
	}
}

func TestKafkaPublisher_keysLandOnTheSamePartitionsAsWithWatermillKafka(t *testing.T) {
	c := kafkatest.New(t)
	ours, theirs := c.NewTopic(t, 5), c.NewTopic(t, 5)
	msgs := kafkaMessages("compat", 40, 20)

	p := newKafkaPublisher(t, c, func(cfg *adapter.KafkaConfig) { cfg.Marshaler = adapter.KeyFromMetadata("key") })
	if err := p.Publish(ours, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	sc := kafka.DefaultSaramaSyncPublisherConfig()
	wk, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers: c.Addrs(),
		Marshaler: kafka.NewWithPartitioningMarshaler(func(_ string, m *message.Message) (string, error) {
			return m.Metadata.Get("key"), nil
		}),
		OverwriteSaramaConfig: sc,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer wk.Close()
	if err := wk.Publish(theirs, msgs...); err != nil {
		t.Fatalf("watermill-kafka Publish: %v", err)
	}

	partitions := func(topic string) map[string]int32 {
		m := map[string]int32{}
		for _, r := range c.Consume(t, topic, len(msgs), 30*time.Second) {
			m[string(r.Key)] = r.Partition
		}
		return m
	}
	got, want := partitions(ours), partitions(theirs)
	if len(got) != 20 || len(want) != 20 {
		t.Fatalf("saw %d and %d keys, want 20", len(got), len(want))
	}
	for k, p := range want {
		if got[k] != p {
			t.Errorf("key %s: partition %d, watermill-kafka's %d", k, got[k], p)
		}
	}
}

func TestKafkaPublisher_orderIsKeptAcrossSaramaInternalRetries(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 2)
	// The first produce requests fail with an error sarama retries internally; the
	// idempotent producer must resend them before anything that follows.
	fault := c.FailProduce(t, topic, kerr.NotLeaderForPartition, 2)
	p := newKafkaPublisher(t, c, func(cfg *adapter.KafkaConfig) { cfg.Marshaler = adapter.KeyFromMetadata("key") })

	msgs := kafkaMessages("retry", 500, 3)
	if errs := p.PublishResults(topic, msgs...); errs != nil {
		t.Fatalf("PublishResults: %v", errs)
	}
	if hits := fault.Hits(); hits != 2 {
		t.Fatalf("the fault answered %d produce requests, want 2: sarama did not retry", hits)
	}
	recs := c.ConsumeAll(t, topic, time.Second)
	if len(recs) != len(msgs) {
		t.Fatalf("consumed %d records, want exactly %d (no loss, no duplicate)", len(recs), len(msgs))
	}
	lastSeq := map[string]int{}
	for _, r := range recs {
		seq, _ := strconv.Atoi(r.Headers["seq"])
		if last, ok := lastSeq[string(r.Key)]; ok && seq != last+3 {
			t.Fatalf("key %s: seq %d after %d", r.Key, seq, last)
		}
		lastSeq[string(r.Key)] = seq
	}
}

func TestKafkaPublisher_reportsTheOneMessageThatIsTooLarge(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 1)
	p := newKafkaPublisher(t, c, func(cfg *adapter.KafkaConfig) { cfg.MaxMessageBytes = 10_000 })

	msgs := kafkaMessages("large", 50, 0)
	const big = 17
	msgs[big].Payload = bytes.Repeat([]byte("x"), 20_000)

	errs := p.PublishResults(topic, msgs...)
	if len(errs) != len(msgs) {
		t.Fatalf("PublishResults returned %d errors, want one per message (%d)", len(errs), len(msgs))
	}
	for i, err := range errs {
		if i == big {
			if err == nil || !errors.Is(err, sarama.ErrMessageSizeTooLarge) {
				t.Errorf("message %d: error %v, want one wrapping sarama.ErrMessageSizeTooLarge", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("message %d: unexpected error %v", i, err)
		}
	}
	recs := c.ConsumeAll(t, topic, time.Second)
	if len(recs) != len(msgs)-1 {
		t.Fatalf("consumed %d records, want %d (every message but the large one, once)", len(recs), len(msgs)-1)
	}
	for _, r := range recs {
		if r.Headers[kafka.UUIDHeaderKey] == msgs[big].UUID {
			t.Fatalf("the too-large message was written")
		}
	}
}

func TestKafkaPublisher_badInputFailsOnlyTheBadMessages(t *testing.T) {
	c := kafkatest.New(t)
	p := newKafkaPublisher(t, c, func(cfg *adapter.KafkaConfig) { cfg.MaxMessageBytes = 4096 })

	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	for _, tc := range []struct {
		name  string
		topic string // "" means a new valid topic
		bad   func() *message.Message
		want  string // in the error text
		class adapter.Class
	}{
		{name: "an empty topic name fails every message", topic: "-empty-", want: "empty topic name", class: adapter.Permanent},
		{name: "a topic name with a slash fails every message", topic: "orders/eu", want: `invalid topic name "orders/eu"`, class: adapter.Permanent},
		{name: "the topic name '..' fails every message", topic: "..", want: `invalid topic name ".."`, class: adapter.Permanent},
		{name: "a topic name of 250 characters fails every message", topic: strings.Repeat("t", 250), want: "250 characters, more than 249", class: adapter.Permanent},
		{name: "a nil message fails alone", bad: func() *message.Message { return nil }, want: "nil message", class: adapter.Permanent},
		{
			name: "a message larger than MaxMessageBytes fails alone",
			bad: func() *message.Message {
				return message.NewMessage("big-one", bytes.Repeat([]byte("x"), 5000))
			},
			want: "message big-one is too large", class: adapter.Permanent,
		},
		{
			name: "a message the marshaler refuses fails alone",
			bad: func() *message.Message {
				m := message.NewMessage("reserved", []byte("x"))
				m.Metadata.Set(kafka.UUIDHeaderKey, "spoofed")
				return m
			},
			want: "cannot marshal message reserved", class: adapter.Permanent,
		},
		{
			name: "a message whose context ended fails alone",
			bad: func() *message.Message {
				m := message.NewMessage("late", []byte("x"))
				m.SetContext(canceled)
				return m
			},
			want: "message late not sent", class: adapter.Canceled,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := tc.topic
			if topic == "-empty-" {
				topic = ""
			}
			wholeCall := tc.bad == nil
			if !wholeCall {
				topic = c.NewTopic(t, 1)
			}
			msgs := kafkaMessages("bad", 5, 0)
			const at = 2
			if !wholeCall {
				msgs[at] = tc.bad()
			}

			errs := p.PublishResults(topic, msgs...)
			if len(errs) != len(msgs) {
				t.Fatalf("PublishResults returned %d errors, want %d", len(errs), len(msgs))
			}
			for i, err := range errs {
				if !wholeCall && i != at {
					if err != nil {
						t.Errorf("message %d: unexpected error %v", i, err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("message %d: no error", i)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("message %d: error %q does not say %q", i, err, tc.want)
				}
				if got := adapter.Classify(err); got != tc.class {
					t.Errorf("message %d: Classify = %s, want %s (error %v)", i, got, tc.class, err)
				}
			}

			// Publish reports the same through a *BatchError.
			err := p.Publish(topic, msgs...)
			var be *adapter.BatchError
			if !errors.As(err, &be) || len(be.Errors) != len(msgs) {
				t.Fatalf("Publish error %v, want a *BatchError with %d entries", err, len(msgs))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Publish error %q does not say %q", err, tc.want)
			}

			if !wholeCall {
				recs := c.ConsumeAll(t, topic, 500*time.Millisecond)
				if len(recs) != 2*(len(msgs)-1) {
					t.Errorf("consumed %d records, want the %d good messages of both calls", len(recs), 2*(len(msgs)-1))
				}
			}
		})
	}
}

func TestKafkaPublisher_brokerRejectionsComeBackWrappingTheKafkaError(t *testing.T) {
	c := kafkatest.New(t)
	t.Run("MESSAGE_TOO_LARGE from the topic's max.message.bytes is permanent", func(t *testing.T) {
		topic := c.NewTopic(t, 1)
		c.SetMaxMessageBytes(t, topic, 2000)
		p := newKafkaPublisher(t, c, nil)
		msgs := kafkaMessages("too-large-for-broker", 1, 0)
		msgs[0].Payload = make([]byte, 5000)
		_, _ = rand.Read(msgs[0].Payload) // incompressible: the default codec is snappy
		err := p.Publish(topic, msgs...)
		if !errors.Is(err, sarama.ErrMessageSizeTooLarge) {
			t.Fatalf("Publish error %v, want one wrapping sarama.ErrMessageSizeTooLarge", err)
		}
		if got := adapter.Classify(err); got != adapter.Permanent {
			t.Errorf("Classify = %s, want permanent", got)
		}
		if !strings.Contains(err.Error(), msgs[0].UUID) || !strings.Contains(err.Error(), topic) {
			t.Errorf("error %q does not name the message and the topic", err)
		}
	})
	t.Run("an unknown topic fails every message with UNKNOWN_TOPIC_OR_PARTITION, retriable", func(t *testing.T) {
		topic := kafkatest.UniqueTopic(t) // never created; auto-creation is off
		p := newKafkaPublisher(t, c, nil)
		msgs := kafkaMessages("unknown", 20, 0)
		start := time.Now()
		errs := p.PublishResults(topic, msgs...)
		if len(errs) != len(msgs) {
			t.Fatalf("PublishResults returned %d errors, want %d", len(errs), len(msgs))
		}
		for i, err := range errs {
			if !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				t.Fatalf("message %d: error %v, want one wrapping sarama.ErrUnknownTopicOrPartition", i, err)
			}
			if got := adapter.Classify(err); got != adapter.Retriable {
				t.Errorf("message %d: Classify = %s, want retriable", i, got)
			}
			if !strings.Contains(err.Error(), topic) {
				t.Errorf("message %d: error %q does not name the topic", i, err)
			}
		}
		t.Logf("unknown topic answered in %v; last error: %v", time.Since(start), errs[len(errs)-1])
	})
}

func TestKafkaPublisher_closeFlushesAndLaterPublishFailsWithErrClosed(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 2)
	p := newKafkaPublisher(t, c, nil)

	msgs := kafkaMessages("close", 2000, 0)
	done := make(chan error, 1)
	go func() { done <- p.Publish(topic, msgs...) }()
	// Close while the call is in progress: whatever was handed to sarama is flushed
	// and reported, whatever was not fails with ErrClosed; nothing is lost silently.
	time.Sleep(time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	written := len(msgs)
	if err := <-done; err != nil {
		var be *adapter.BatchError
		if !errors.As(err, &be) {
			t.Fatalf("Publish error %v, want nil or a *BatchError", err)
		}
		for i, e := range be.Errors {
			if e != nil {
				written--
				if !errors.Is(e, adapter.ErrClosed) {
					t.Fatalf("message %d: %v, want nil or ErrClosed", i, e)
				}
			}
		}
	}
	if recs := c.ConsumeAll(t, topic, time.Second); len(recs) != written {
		t.Fatalf("consumed %d records, want the %d reported written", len(recs), written)
	}

	if err := p.Publish(topic, kafkaMessages("after", 1, 0)...); !errors.Is(err, adapter.ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
	if got := adapter.Classify(p.Publish(topic, kafkaMessages("after", 1, 0)...)); got != adapter.Fatal {
		t.Errorf("Classify(Publish after Close) = %s, want fatal", got)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Ping(context.Background()); !errors.Is(err, adapter.ErrClosed) {
		t.Fatalf("Ping after Close: %v, want ErrClosed", err)
	}
}

func TestKafkaPublisher_closeWaitsForWhatIsWaitingForTheLinger(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 2)
	// A long linger holds the call in its round when Close starts. Close does
	// not cut the linger short: it waits for it, then for the answers.
	const linger = 2 * time.Second
	p := newKafkaPublisher(t, c, func(cfg *adapter.KafkaConfig) { cfg.Linger = linger })

	msgs := kafkaMessages("linger", 100, 0)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Publish(topic, msgs...) }()
	select {
	case err := <-done:
		t.Fatalf("Publish returned before the linger (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish: %v, want every message written before Close returned", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Publish still waits for its answers a second after Close returned")
	}
	if d := time.Since(start); d > linger+5*time.Second {
		t.Errorf("Publish and Close took %v", d)
	}
	if recs := c.ConsumeAll(t, topic, 500*time.Millisecond); len(recs) != len(msgs) {
		t.Fatalf("consumed %d records, want %d", len(recs), len(msgs))
	}
}

func TestKafkaPublisher_concurrentPublishAndCloseNeverPanic(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 3)
	for round := 0; round < 5; round++ {
		p := newKafkaPublisher(t, c, nil)
		var wg sync.WaitGroup
		errc := make(chan error, 100)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					errs := p.PublishResults(topic, kafkaMessages("race", 10, 0)...)
					for _, err := range errs {
						if err != nil && !errors.Is(err, adapter.ErrClosed) {
							errc <- err
							return
						}
					}
				}
			}()
		}
		var closers sync.WaitGroup
		for k := 0; k < 3; k++ {
			closers.Add(1)
			go func() {
				defer closers.Done()
				time.Sleep(time.Duration(round) * time.Millisecond)
				if err := p.Close(); err != nil {
					errc <- err
				}
			}()
		}
		wg.Wait()
		closers.Wait()
		close(errc)
		for err := range errc {
			t.Errorf("round %d: %v", round, err)
		}
	}
}

func TestKafkaPublisher_ping(t *testing.T) {
	t.Run("answers against the broker", func(t *testing.T) {
		c := kafkatest.New(t)
		p := newKafkaPublisher(t, c, nil)
		if err := p.Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("fails within its timeout when the brokers refuse connections", func(t *testing.T) {
		c := kafkatest.New(t, kafkatest.WithProxy())
		p := newKafkaPublisher(t, c, func(cfg *adapter.KafkaConfig) { cfg.PingTimeout = 500 * time.Millisecond })
		c.Proxy().Cut()
		start := time.Now()
		err := p.Ping(context.Background())
		if err == nil {
			t.Fatal("Ping succeeded with the brokers cut off")
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Ping took %v, want at most its 500ms timeout (+ slack)", d)
		}
		c.Proxy().Restore()
		if err := p.Ping(context.Background()); err != nil {
			t.Fatalf("Ping after Restore: %v", err)
		}
	})
	t.Run("fails on a closed port", func(t *testing.T) {
		c := kafkatest.New(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		// The client bootstraps from the live broker; Ping asks every bootstrap
		// address in turn, so a dead one first still lets it succeed...
		p := newKafkaPublisher(t, c, func(cfg *adapter.KafkaConfig) {
			cfg.Brokers = append([]string{dead}, cfg.Brokers...)
			cfg.PingTimeout = 500 * time.Millisecond
		})
		if err := p.Ping(context.Background()); err != nil {
			t.Fatalf("Ping with one dead and one live bootstrap broker: %v", err)
		}
		// ...and a closed port alone fails, naming it, well within the timeout.
		_, err = adapter.NewKafkaPublisher(adapter.KafkaConfig{Brokers: []string{dead}, DialTimeout: 500 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), dead) {
			t.Fatalf("NewKafkaPublisher on a closed port: %v, want an error naming %s", err, dead)
		}
	})
	t.Run("returns when its context ends", func(t *testing.T) {
		c := kafkatest.New(t, kafkatest.WithProxy())
		p := newKafkaPublisher(t, c, func(cfg *adapter.KafkaConfig) { cfg.PingTimeout = 10 * time.Second })
		c.Proxy().SetLatency(2 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := p.Ping(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Ping: %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Ping took %v after its context's 100ms deadline", d)
		}
	})
}

func TestKafkaPublisher_saslPlain(t *testing.T) {
	c := kafkatest.New(t, kafkatest.KfakeOptions(
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "alice", "wonderland-secret"),
		kfake.SeedTopics(1, "sasl-topic"),
	))
	c.RequireFake(t)

	cfg := kafkaTestConfig(c)
	cfg.SASL = adapter.KafkaSASL{User: "alice", Password: "wonderland-secret"}
	p, err := adapter.NewKafkaPublisher(cfg)
	if err != nil {
		t.Fatalf("NewKafkaPublisher with SASL/PLAIN: %v", err)
	}
	defer p.Close()
	if err := p.Publish("sasl-topic", kafkaMessages("sasl", 10, 0)...); err != nil {
		t.Fatalf("Publish with SASL/PLAIN: %v", err)
	}
	if err := p.Ping(context.Background()); err != nil {
		t.Fatalf("Ping with SASL/PLAIN: %v", err)
	}

	cfg.SASL.Password = "wrong-password-123"
	_, err = adapter.NewKafkaPublisher(cfg)
	if err == nil {
		t.Fatal("NewKafkaPublisher with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), "wrong-password-123") {
		t.Fatalf("error reveals the password: %v", err)
	}
	// kfake drops the connection on bad credentials (io.EOF) where Kafka answers
	// SASL_AUTHENTICATION_FAILED, so the class is not checked here.
	t.Logf("wrong password: %v (%s)", err, adapter.Classify(err))
}

func TestKafkaPublisher_saslSCRAM(t *testing.T) {
	for _, mech := range []adapter.SASLMechanism{adapter.SASLSCRAMSHA256, adapter.SASLSCRAMSHA512} {
		t.Run(string(mech), func(t *testing.T) {
			c := kafkatest.New(t, kafkatest.KfakeOptions(
				kfake.EnableSASL(),
				kfake.Superuser(string(mech), "alice", "wonderland-secret"),
				kfake.SeedTopics(1, "scram-topic"),
			))
			c.RequireFake(t)
			cfg := kafkaTestConfig(c)
			cfg.SASL = adapter.KafkaSASL{Mechanism: mech, User: "alice", Password: "wonderland-secret"}
			p, err := adapter.NewKafkaPublisher(cfg)
			if err != nil {
				t.Fatalf("NewKafkaPublisher with %s: %v", mech, err)
			}
			defer p.Close()
			if err := p.Publish("scram-topic", kafkaMessages("scram", 5, 0)...); err != nil {
				t.Fatalf("Publish with %s: %v", mech, err)
			}
			cfg.SASL.Password = "wrong-password-123"
			if _, err := adapter.NewKafkaPublisher(cfg); err == nil || strings.Contains(err.Error(), "wrong-password-123") {
				t.Fatalf("NewKafkaPublisher with a wrong %s password = %v, want an error without the password", mech, err)
			}
		})
	}
}

func TestNewKafka_returnsTheDecoratedPublisher(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 1)

	p, err := adapter.NewKafka(kafkaTestConfig(c), adapter.Config{})
	if err != nil {
		t.Fatalf("NewKafka: %v", err)
	}
	if err := p.Publish(topic, kafkaMessages("decorated", 10, 0)...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := p.HealthCheck(context.Background()); err != nil {
		t.Errorf("HealthCheck: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if recs := c.ConsumeAll(t, topic, 500*time.Millisecond); len(recs) != 10 {
		t.Errorf("consumed %d records, want 10", len(recs))
	}

	if _, err := adapter.NewKafka(kafkaTestConfig(c), adapter.Config{Multiplier: 0.5}); err == nil ||
		!strings.Contains(err.Error(), "Multiplier") {
		t.Errorf("NewKafka with an invalid Config: %v, want an error naming Multiplier", err)
	}
	if _, err := adapter.NewKafka(adapter.KafkaConfig{}, adapter.Config{}); err == nil ||
		!strings.Contains(err.Error(), "KafkaConfig.Brokers") {
		t.Errorf("NewKafka with an invalid KafkaConfig: %v, want an error naming KafkaConfig.Brokers", err)
	}
}
