package adapter_test

import (
	"crypto/rand"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/kafkatest"
)

// newDecoratedKafka returns the decorated batching publisher keyed by the "key"
// metadata, closed when the test ends.
func newDecoratedKafka(t *testing.T, c *kafkatest.Cluster, cfg adapter.Config) *adapter.Publisher {
	t.Helper()
	kcfg := kafkaTestConfig(c)
	kcfg.Marshaler = adapter.KeyFromMetadata("key")
	if cfg.InitialInterval == 0 {
		cfg.InitialInterval, cfg.MaxInterval = 20*time.Millisecond, 200*time.Millisecond
	}
	p, err := adapter.NewKafka(kcfg, cfg)
	if err != nil {
		t.Fatalf("NewKafka: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// keyFor returns a key that sarama's hash partitioner puts on partition p of n.
func keyFor(t *testing.T, prefix string, p, n int32) string {
	t.Helper()
	part := sarama.NewHashPartitioner("")
	for i := range 10000 {
		k := prefix + strconv.Itoa(i)
		got, err := part.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(k)}, n)
		if err != nil {
			t.Fatal(err)
		}
		if got == p {
			return k
		}
	}
	t.Fatalf("no key for partition %d", p)
	return ""
}

func keyed(key, payload string) *message.Message {
	m := message.NewMessage(watermill.NewUUID(), []byte(payload))
	m.Metadata.Set("key", key)
	return m
}

func TestDecoratorResendsOnlyTheMessagesTheBrokerFailedRetriably(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 3)
	c.SetMaxMessageBytes(t, topic, 2048)
	p := newDecoratedKafka(t, c, adapter.Config{})

	// One message per partition, so each broker verdict concerns one message only.
	big := make([]byte, 8192) // random: compression cannot bring it under the limit
	_, _ = rand.Read(big)
	ok := keyed(keyFor(t, "ok", 0, 3), "ok")
	tooLarge := keyed(keyFor(t, "big", 1, 3), string(big))
	flaky := keyed(keyFor(t, "flaky", 2, 3), "flaky")
	// REPLICA_NOT_AVAILABLE once for the flaky message: sarama does not retry it
	// itself, so the decorator must.
	fault := c.FailProduceWhere(t, topic, kerr.ReplicaNotAvailable, 1, func(r kafkatest.Record) bool {
		return string(r.Value) == "flaky"
	})

	err := p.Publish(topic, ok, tooLarge, flaky)
	var pe *adapter.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, sarama.ErrMessageSizeTooLarge) || pe.Class != adapter.Permanent {
		t.Fatalf("Publish error = %v, want a permanent PublishError for the too large message", err)
	}
	if len(pe.Failed) != 1 || pe.Failed[0].UUID != tooLarge.UUID {
		t.Fatalf("Failed = %+v, want only the too large message", pe.Failed)
	}
	if fault.Hits() != 1 {
		t.Fatalf("the retriable fault answered %d times, want 1", fault.Hits())
	}
	if m := p.Metrics(); m.RetriesTotal != 1 || m.MessagesPublished != 2 || m.GivenUp(adapter.Permanent) != 1 {
		t.Fatalf("metrics = %+v, want exactly one resend (the flaky message), 2 published, 1 permanent", m)
	}
	recs := c.ConsumeAll(t, topic, time.Second)
	count := map[string]int{}
	for _, r := range recs {
		count[r.Headers[kafka.UUIDHeaderKey]]++
	}
	if count[ok.UUID] != 1 || count[flaky.UUID] != 1 || count[tooLarge.UUID] != 0 || len(recs) != 2 {
		t.Fatalf("records by UUID = %v (%d records), want ok and flaky once each and nothing else", count, len(recs))
	}
}

func TestOrderPerKeyHoldsThroughLeaderMovesAndRetriableFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("10k messages with injected faults")
	}
	c := kafkatest.New(t, kafkatest.Brokers(3))
	c.RequireFake(t)
	topic := c.NewTopic(t, 6)
	p := newDecoratedKafka(t, c, adapter.Config{MaxElapsedTime: time.Minute, MaxRetries: 100})

	const total, keys, perCall = 10000, 100, 250
	seq := 0
	next := func() []*message.Message {
		msgs := make([]*message.Message, perCall)
		for i := range msgs {
			m := message.NewMessage(watermill.NewUUID(), []byte("v"))
			m.Metadata.Set("key", "key-"+strconv.Itoa(seq%keys))
			m.Metadata.Set("seq", strconv.Itoa(seq))
			msgs[i] = m
			seq++
		}
		return msgs
	}
	fake := c.Fake()
	for call := range total / perCall {
		switch call {
		case 10:
			fake.ShufflePartitionLeaders()
		case 15:
			// Retried inside sarama by the idempotent producer.
			c.FailProduce(t, topic, kerr.NotEnoughReplicas, 3)
			c.FailProduce(t, topic, kerr.RequestTimedOut, 2)
		case 20:
			for part := int32(0); part < 6; part++ {
				if err := fake.MoveTopicPartition(topic, part, (fake.LeaderFor(topic, part)+1)%3); err != nil {
					t.Fatalf("MoveTopicPartition: %v", err)
				}
			}
		case 25:
			fake.ShufflePartitionLeaders()
			c.FailProduce(t, topic, kerr.NotLeaderForPartition, 3)
		case 30, 32, 34, 36, 38:
			// Not retried by sarama: the decorator resends, and the later messages
			// of the same keys must not overtake the resent ones.
			c.FailProduce(t, topic, kerr.NetworkException, 1+call%3)
		}
		if err := p.Publish(topic, next()...); err != nil {
			t.Fatalf("call %d: %v", call, err)
		}
	}

	recs := c.Consume(t, topic, total, time.Minute)
	recs = append(recs, c.ConsumeAll(t, topic, 500*time.Millisecond)[len(recs):]...)
	seen := map[string]bool{}
	last := map[string]int{}
	dups := 0
	for _, r := range recs {
		id := r.Headers[kafka.UUIDHeaderKey]
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		s, _ := strconv.Atoi(r.Headers["seq"])
		k := string(r.Key)
		if l, ok := last[k]; ok && s <= l {
			t.Fatalf("key %s: seq %d after %d: order broken", k, s, l)
		}
		last[k] = s
	}
	if len(seen) != total {
		t.Fatalf("%d distinct messages, want %d", len(seen), total)
	}
	t.Logf("%d messages, %d duplicates, metrics %+v", total, dups, p.Metrics())
}

func TestBatchingPublisherRidesOutABrokerOutage(t *testing.T) {
	c := kafkatest.New(t, kafkatest.WithProxy())
	topic := c.NewTopic(t, 3)
	p := newDecoratedKafka(t, c, adapter.Config{MaxElapsedTime: time.Minute, MaxRetries: 1000})
	if err := p.Publish(topic, keyed("k", "warm-up")); err != nil {
		t.Fatalf("Publish before the outage: %v", err)
	}

	c.Proxy().Cut()
	const publishers, perCall = 4, 100
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for g := range publishers {
		wg.Go(func() {
			msgs := make([]*message.Message, perCall)
			for i := range msgs {
				msgs[i] = keyed("k"+strconv.Itoa(g), strconv.Itoa(i))
			}
			errs <- p.Publish(topic, msgs...)
		})
	}
	time.Sleep(3 * time.Second)
	if m := p.Metrics(); m.InFlight != publishers || m.RetriesTotal == 0 {
		t.Fatalf("during the outage: metrics %+v, want %d calls in flight retrying", m, publishers)
	}
	c.Proxy().Restore()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Publish across the outage: %v", err)
		}
	}
	recs := c.ConsumeAll(t, topic, time.Second)
	distinct := map[string]bool{}
	for _, r := range recs {
		distinct[r.Headers[kafka.UUIDHeaderKey]] = true
	}
	if len(distinct) != 1+publishers*perCall {
		t.Fatalf("%d distinct messages after the outage, want %d", len(distinct), 1+publishers*perCall)
	}
	t.Logf("%d records for %d messages; metrics %+v", len(recs), len(distinct), p.Metrics())
}

func TestAnOversizedRecordDoesNotFailTheRecordsThatShareItsBatch(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 1) // one partition: every record of the call shares a batch
	c.SetMaxMessageBytes(t, topic, 4096)
	p := newKafkaPublisher(t, c, nil)

	big := make([]byte, 8192) // random: compression cannot bring it under the limit
	_, _ = rand.Read(big)
	msgs := kafkaMessages("split", 20, 0)
	msgs[7] = message.NewMessage(watermill.NewUUID(), big)
	errs := p.PublishResults(topic, msgs...)
	for i, err := range errs {
		if i == 7 {
			if !errors.Is(err, sarama.ErrMessageSizeTooLarge) || adapter.Classify(err) != adapter.Permanent {
				t.Fatalf("the oversized message: %v, want a permanent MESSAGE_TOO_LARGE", err)
			}
		} else if err != nil {
			t.Fatalf("message %d, which fits, failed: %v", i, err)
		}
	}
	if recs := c.ConsumeAll(t, topic, time.Second); len(recs) != 19 {
		t.Fatalf("%d records written, want the 19 that fit, once each", len(recs))
	}
}
