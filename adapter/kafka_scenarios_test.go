package adapter_test

import (
	"crypto/rand"
	"errors"
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
	"github.com/twmb/franz-go/pkg/kmsg"

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
	// UNKNOWN_SERVER_ERROR once for the flaky message: franz-go does not retry it
	// itself (kerr says not retriable), Classify does, so the decorator must.
	fault := c.FailProduceWhere(t, topic, kerr.UnknownServerError, 1, func(r kafkatest.Record) bool {
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
	orderUnderFaults(t, 100)
}

func TestOrderPerKeyHoldsThroughLeaderMovesAndRetriableFaults_oneKey(t *testing.T) {
	orderUnderFaults(t, 1)
}

func TestOrderPerKeyHoldsThroughLeaderMovesAndRetriableFaults_tenKeys(t *testing.T) {
	orderUnderFaults(t, 10)
}

// orderUnderFaults publishes 10k messages over keys keys in calls of 250 through
// leader moves and injected errors, some retried inside franz-go, some given back
// to the decorator, and checks that every key's messages arrive in order.
func orderUnderFaults(t *testing.T, keys int) {
	if testing.Short() {
		t.Skip("10k messages with injected faults")
	}
	c := kafkatest.New(t, kafkatest.Brokers(3))
	c.RequireFake(t)
	topic := c.NewTopic(t, 6)
	p := newDecoratedKafka(t, c, adapter.Config{MaxElapsedTime: time.Minute, MaxRetries: 100})

	const total, perCall = 10000, 250
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
			// Retried inside franz-go by the idempotent producer.
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
			c.FailProduce(t, topic, kerr.NetworkException, 1+call%3)
		case 31, 33, 35, 37:
			// Not retried by franz-go: the decorator resends, and the later messages
			// of the same keys must not overtake the resent ones.
			c.FailProduce(t, topic, kerr.UnknownServerError, 1+call%3)
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
	if m := p.Metrics(); m.RetriesTotal == 0 {
		t.Fatalf("metrics %+v: the decorator resent nothing, the faults it should see did not reach it", m)
	}
	t.Logf("%d messages over %d keys, %d duplicates, metrics %+v", total, keys, dups, p.Metrics())
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

// TestAThousandMessagesOfOneKeyTakeAHandfulOfProduceRequests counts the produce
// requests the broker sees for one call of 1000 small messages of a single key:
// no round trip per message.
func TestAThousandMessagesOfOneKeyTakeAHandfulOfProduceRequests(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 3)
	p := newKafkaPublisher(t, c, func(cfg *adapter.KafkaConfig) { cfg.Marshaler = adapter.KeyFromMetadata("key") })
	if err := p.Publish(topic, keyed("warm-up", "x")); err != nil { // metadata and producer id
		t.Fatalf("warm-up: %v", err)
	}
	produces := c.Fault(t, kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Count: -1, Observe: true})

	msgs := make([]*message.Message, 1000)
	for i := range msgs {
		msgs[i] = keyed("the-only-key", strconv.Itoa(i))
	}
	start := time.Now()
	if err := p.Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	elapsed := time.Since(start)
	if n := produces.Hits(); n < 1 || n > 5 {
		t.Fatalf("1000 messages of one key took %d produce requests, want at most a handful (1 to 5)", n)
	}
	recs := c.ConsumeAll(t, topic, 500*time.Millisecond)
	if len(recs) != 1001 {
		t.Fatalf("%d records, want 1001", len(recs))
	}
	prev := -1
	for _, r := range recs {
		if string(r.Key) != "the-only-key" {
			continue
		}
		v, _ := strconv.Atoi(string(r.Value))
		if v != prev+1 {
			t.Fatalf("value %d after %d: order broken", v, prev)
		}
		prev = v
	}
	t.Logf("1000 messages of one key: %d produce request(s) in %v", produces.Hits(), elapsed)
}

// TestARecordFailedWithItsBadNeighbourIsHeldBackNotDeadLettered builds the case
// where franz-go fails good records with a permanent error because a bad record
// before them in their partition was rejected, and isolating the bad one is cut
// short by a retriable failure: the good ones must come back Retriable
// (ErrHeldBack), never Permanent, and go through when resent.
func TestARecordFailedWithItsBadNeighbourIsHeldBackNotDeadLettered(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 1)
	p := newKafkaPublisher(t, c, func(cfg *adapter.KafkaConfig) { cfg.Marshaler = adapter.KeyFromMetadata("key") })
	if err := p.Publish(topic, keyed("k", "warm-up")); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	// The broker rejects every batch holding "bad" (INVALID_RECORD, permanent for
	// that record); the first resend that isolates it fails with
	// UNKNOWN_SERVER_ERROR, once, which franz-go gives back at once.
	invalid := c.FailProduceWhere(t, topic, kerr.InvalidRecord, -1, func(r kafkatest.Record) bool { return string(r.Value) == "bad" })
	c.Fault(t, kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.UnknownServerError, Count: 1,
		When: func(kmsg.Request) bool { return invalid.Hits() >= 1 }})

	msgs := []*message.Message{keyed("k", "a"), keyed("k", "bad"), keyed("k", "c"), keyed("k", "d")}
	errs := p.PublishResults(topic, msgs...)
	if errs == nil {
		t.Fatal("every message written, want the faults to fail them")
	}
	for i, err := range errs {
		if err == nil {
			continue
		}
		if got := adapter.Classify(err); got == adapter.Permanent {
			t.Fatalf("message %d (%s): %v is permanent: a record that may be good would be dead-lettered", i, msgs[i].Payload, err)
		}
	}
	for _, i := range []int{2, 3} {
		if !errors.Is(errs[i], adapter.ErrHeldBack) || !errors.Is(errs[i], kerr.InvalidRecord) {
			t.Errorf("message %d: %v, want ErrHeldBack wrapping INVALID_RECORD", i, errs[i])
		}
	}

	// Resent, the bad record is isolated and alone permanent; the others go through.
	errs = p.PublishResults(topic, msgs...)
	for i, err := range errs {
		if i == 1 {
			if adapter.Classify(err) != adapter.Permanent || !errors.Is(err, kerr.InvalidRecord) {
				t.Errorf("the bad record on resend: %v, want a permanent INVALID_RECORD", err)
			}
		} else if err != nil {
			t.Errorf("message %d (%s) on resend: %v", i, msgs[i].Payload, err)
		}
	}
	var got []string
	for _, r := range c.ConsumeAll(t, topic, 500*time.Millisecond) {
		got = append(got, string(r.Value))
	}
	if strings.Join(got, ",") != "warm-up,a,c,d" {
		t.Errorf("the partition holds %v, want warm-up,a,c,d", got)
	}
}
