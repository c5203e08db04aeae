package kafkatest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/millrace/millrace/internal/kafkatest"
)

// syncProducer returns a sarama SyncProducer on addrs, closed when the test ends.
func syncProducer(tb testing.TB, addrs []string, cfg *sarama.Config) sarama.SyncProducer {
	tb.Helper()
	if cfg == nil {
		cfg = kafkatest.SaramaConfig()
	}
	p, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		tb.Fatalf("sarama.NewSyncProducer: %v", err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

func send(p sarama.SyncProducer, topic, key, value string) error {
	msg := &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(value)}
	if key != "" {
		msg.Key = sarama.StringEncoder(key)
	}
	_, _, err := p.SendMessage(msg)
	return err
}

func mustSend(tb testing.TB, p sarama.SyncProducer, topic, key, value string) {
	tb.Helper()
	if err := send(p, topic, key, value); err != nil {
		tb.Fatalf("SendMessage(%s=%s): %v", key, value, err)
	}
}

func TestProduceConsume(t *testing.T) {
	for _, brokers := range []int{1, 3} {
		t.Run(fmt.Sprintf("sarama writes and Consume reads back on %d broker(s)", brokers), func(t *testing.T) {
			c := kafkatest.New(t, kafkatest.Brokers(brokers))
			topic := c.NewTopic(t, 6)
			p := syncProducer(t, c.Addrs(), nil)

			const n = 30
			leaders := map[int32]bool{}
			for i := range n {
				msg := &sarama.ProducerMessage{
					Topic:   topic,
					Key:     sarama.StringEncoder(fmt.Sprintf("k%d", i)),
					Value:   sarama.StringEncoder(fmt.Sprintf("v%d", i)),
					Headers: []sarama.RecordHeader{{Key: []byte("h"), Value: []byte(fmt.Sprintf("x%d", i))}},
				}
				part, _, err := p.SendMessage(msg)
				if err != nil {
					t.Fatalf("SendMessage %d: %v", i, err)
				}
				if c.Fake() != nil {
					leaders[c.Fake().LeaderFor(topic, part)] = true
				}
			}
			if c.Fake() != nil && brokers > 1 && len(leaders) < 2 {
				t.Errorf("all records went to one broker (%v); want partitions led by several", leaders)
			}

			recs := kafkatest.Consume(t, c.Addrs(), topic, n, 10*time.Second)
			if len(recs) != n {
				t.Fatalf("Consume returned %d records, want %d", len(recs), n)
			}
			seen := map[string]bool{}
			for _, r := range recs {
				k, v := string(r.Key), string(r.Value)
				if "v"+strings.TrimPrefix(k, "k") != v || r.Headers["h"] != "x"+strings.TrimPrefix(k, "k") {
					t.Errorf("record %s=%s headers %v: mismatched", k, v, r.Headers)
				}
				if r.Topic != topic || r.Offset < 0 || r.Timestamp.IsZero() {
					t.Errorf("record %s: topic %q offset %d timestamp %v", k, r.Topic, r.Offset, r.Timestamp)
				}
				seen[k] = true
			}
			if len(seen) != n {
				t.Errorf("read %d distinct keys, want %d", len(seen), n)
			}
			if all := c.ConsumeAll(t, topic, 300*time.Millisecond); len(all) != n {
				t.Errorf("ConsumeAll read %d records, want %d", len(all), n)
			}
		})
	}
}

func TestNewTopicIsVisibleToANewSaramaClientAtOnce(t *testing.T) {
	c := kafkatest.New(t, kafkatest.Brokers(3))
	topic := c.NewTopic(t, 5)

	client, err := sarama.NewClient(c.Addrs(), kafkatest.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("Partitions(%s): %v", topic, err)
	}
	if len(parts) != 5 {
		t.Fatalf("sarama sees %d partitions, want 5", len(parts))
	}
	// And a topic nobody created does not exist: auto-creation is off.
	if _, err := client.Partitions(kafkatest.UniqueTopic(t)); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		t.Fatalf("Partitions(uncreated topic): err = %v, want ErrUnknownTopicOrPartition", err)
	}
}
