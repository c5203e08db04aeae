package adapter_test

import (
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/kafkatest"
)

// The universal Watermill Pub/Sub suite, run with our publishers in front of
// watermill-kafka's Subscriber. Under `make test` it runs in short mode; set
// MILLRACE_FULL=1 (`make test-full`) for the full run.
//
// Features, and why each flag left off is off:
//   - ConsumerGroups and Persistent are Kafka's own.
//   - GuaranteedOrder holds per partition key: the ordered variants key each message
//     by its payload, which is how the suite groups the messages whose order it
//     checks (TestPublishSubscribeInOrder), so the suite verifies per-key order. The
//     unkeyed variants spread messages over partitions, where no order holds.
//   - ExactlyOnceDelivery is off: the decorator is at-least-once by design (a lost
//     broker answer is resent), and watermill-kafka's subscriber redelivers after a
//     rebalance.
//   - NewSubscriberReceivesOldMessages is off: the suite's subscribers use consumer
//     groups, which start from the committed offset, not from the oldest message.
//   - RestartServiceCommand is empty: there is no broker process to restart; the
//     broker-outage tests go through the kit's proxy instead.
func conformanceFeatures(ordered bool) tests.Features {
	return tests.Features{
		ConsumerGroups:                   true,
		Persistent:                       true,
		GuaranteedOrder:                  ordered,
		NewSubscriberReceivesOldMessages: false,
		ExactlyOnceDelivery:              false,
		ForceShort:                       os.Getenv("MILLRACE_FULL") == "",
	}
}

// payloadKey keys a message by its payload, the grouping the suite checks order in.
func payloadKey(_ string, m *message.Message) (string, error) { return string(m.Payload), nil }

func subscriber(t *testing.T, addrs []string, group string) message.Subscriber {
	t.Helper()
	cfg := kafka.DefaultSaramaSubscriberConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Timeout = 3 * time.Second
	cfg.ChannelBufferSize = 10240
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               addrs,
		Unmarshaler:           kafka.DefaultMarshaler{},
		OverwriteSaramaConfig: cfg,
		ConsumerGroup:         group,
		InitializeTopicDetails: &sarama.TopicDetail{
			NumPartitions:     8,
			ReplicationFactor: 1,
		},
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("watermill-kafka NewSubscriber: %v", err)
	}
	return sub
}

func runConformance(t *testing.T, ordered bool, newPub func(t *testing.T, addrs []string, m kafka.Marshaler) message.Publisher) {
	c := kafkatest.New(t, kafkatest.AutoCreateTopics())
	marshaler := kafka.Marshaler(kafka.DefaultMarshaler{})
	if ordered {
		marshaler = kafka.NewWithPartitioningMarshaler(payloadKey)
	}
	withGroup := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		return newPub(t, c.Addrs(), marshaler), subscriber(t, c.Addrs(), group)
	}
	tests.TestPubSub(t, conformanceFeatures(ordered),
		func(t *testing.T) (message.Publisher, message.Subscriber) { return withGroup(t, "test") },
		withGroup)
}

func decoratedWatermillKafka(t *testing.T, addrs []string, m kafka.Marshaler) message.Publisher {
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers:               addrs,
		Marshaler:             m,
		OverwriteSaramaConfig: kafkatest.SaramaConfig(),
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("watermill-kafka NewPublisher: %v", err)
	}
	p, err := adapter.NewPublisher(pub, adapter.Config{MaxElapsedTime: 30 * time.Second})
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	return p
}

func decoratedBatching(t *testing.T, addrs []string, m kafka.Marshaler) message.Publisher {
	p, err := adapter.NewKafka(adapter.KafkaConfig{Brokers: addrs, Marshaler: m},
		adapter.Config{MaxElapsedTime: 30 * time.Second})
	if err != nil {
		t.Fatalf("NewKafka: %v", err)
	}
	return p
}

func TestConformanceDecoratedWatermillKafka(t *testing.T) {
	runConformance(t, false, decoratedWatermillKafka)
}

func TestConformanceDecoratedWatermillKafkaOrdered(t *testing.T) {
	runConformance(t, true, decoratedWatermillKafka)
}

func TestConformanceDecoratedBatching(t *testing.T) {
	runConformance(t, false, decoratedBatching)
}

func TestConformanceDecoratedBatchingOrdered(t *testing.T) {
	runConformance(t, true, decoratedBatching)
}
