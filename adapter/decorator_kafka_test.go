package adapter_test

import (
	"context"
	"errors"
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

// watermillKafka returns watermill-kafka's own Publisher on addrs, with the test kit's
// sarama settings (sarama retries inside itself 3 times, 10 ms apart).
func watermillKafka(t testing.TB, addrs []string) *kafka.Publisher {
	t.Helper()
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers:               addrs,
		Marshaler:             kafka.DefaultMarshaler{},
		OverwriteSaramaConfig: kafkatest.SaramaConfig(),
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("watermill-kafka NewPublisher: %v", err)
	}
	return pub
}

// decorated returns watermill-kafka's Publisher wearing the decorator.
func decorated(t testing.TB, addrs []string, cfg adapter.Config) *adapter.Publisher {
	t.Helper()
	p, err := adapter.NewPublisher(watermillKafka(t, addrs), cfg)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func kafkaConfig() adapter.Config {
	return adapter.Config{
		InitialInterval: 20 * time.Millisecond,
		MaxInterval:     200 * time.Millisecond,
		MaxElapsedTime:  30 * time.Second,
	}
}

func TestDecoratorRetriesAFaultSaramaDoesNotRetry(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 1)
	p := decorated(t, c.Addrs(), kafkaConfig())
	// REPLICA_NOT_AVAILABLE reaches the caller: sarama's producer does not retry it.
	c.FailProduce(t, topic, kerr.ReplicaNotAvailable, 1)

	m := message.NewMessage(watermill.NewUUID(), []byte("hello"))
	if err := p.Publish(topic, m); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := p.Metrics(); got.RetriesTotal != 1 || got.MessagesPublished != 1 {
		t.Fatalf("metrics = %+v, want one retry and one message published", got)
	}
	recs := c.ConsumeAll(t, topic, time.Second)
	if len(recs) != 1 || string(recs[0].Value) != "hello" || recs[0].Headers[kafka.UUIDHeaderKey] != m.UUID {
		t.Fatalf("topic holds %d records (%+v), want exactly the one message", len(recs), recs)
	}
}

func TestDecoratorDoesNotRetryPermanentOrFatalBrokerErrors(t *testing.T) {
	tests := []struct {
		name      string
		err       *kerr.Error
		want      error
		wantClass adapter.Class
		unhealthy bool
	}{
		{"message too large is permanent", kerr.MessageTooLarge, sarama.ErrMessageSizeTooLarge, adapter.Permanent, false},
		{"topic authorization failure is fatal", kerr.TopicAuthorizationFailed, sarama.ErrTopicAuthorizationFailed, adapter.Fatal, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := kafkatest.New(t)
			topic := c.NewTopic(t, 1)
			p := decorated(t, c.Addrs(), kafkaConfig())
			c.FailProduce(t, topic, tt.err, -1)

			err := p.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("x")))
			var pe *adapter.PublishError
			if !errors.As(err, &pe) || !errors.Is(err, tt.want) {
				t.Fatalf("Publish error = %v, want a PublishError matching %v", err, tt.want)
			}
			if pe.Class != tt.wantClass || pe.Attempts != 1 {
				t.Fatalf("class %v after %d attempts, want %v after 1", pe.Class, pe.Attempts, tt.wantClass)
			}
			if got := p.Metrics().RetriesTotal; got != 0 {
				t.Fatalf("RetriesTotal = %d, want 0", got)
			}
			if err := p.HealthCheck(context.Background()); (err != nil) != tt.unhealthy {
				t.Fatalf("HealthCheck = %v, want unhealthy: %v", err, tt.unhealthy)
			}
		})
	}
}

func TestDecoratorRidesOutABrokerOutage(t *testing.T) {
	c := kafkatest.New(t, kafkatest.WithProxy())
	topic := c.NewTopic(t, 1)
	cfg := kafkaConfig()
	cfg.MaxRetries = 1000 // the budget decides
	p := decorated(t, c.Addrs(), cfg)
	if err := p.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("before"))); err != nil {
		t.Fatalf("Publish before the outage: %v", err)
	}

	c.Proxy().Cut()
	done := make(chan error, 1)
	m := message.NewMessage(watermill.NewUUID(), []byte("during"))
	go func() { done <- p.Publish(topic, m) }()
	time.Sleep(2 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("Publish returned during the outage: %v", err)
	default:
	}
	if got := p.Metrics().RetriesTotal; got == 0 {
		t.Fatal("no retry during the outage: the failures were not classified retriable")
	}
	c.Proxy().Restore()

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish after the broker came back: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Publish did not succeed within 20s of the broker coming back")
	}
	recs := c.ConsumeAll(t, topic, time.Second)
	var during int
	for _, r := range recs {
		if r.Headers[kafka.UUIDHeaderKey] == m.UUID {
			during++
		}
	}
	if during < 1 {
		t.Fatalf("the message published during the outage is not in the topic (%d records)", len(recs))
	}
}
