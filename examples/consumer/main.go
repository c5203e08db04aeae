// Command consumer shows a watermill-kafka consumer that tolerates at-least-once
// delivery: a router middleware (Dedup, in dedup.go) handles each message UUID once.
// It publishes a message twice with the same UUID, as a publisher does when it resends
// a message whose broker answer was lost, and the handler sees it once.
//
// It uses the brokers in KAFKA_BROKERS (comma-separated host:port list); when that is
// unset it starts an in-process Kafka broker, so `go run ./examples/consumer` needs no
// Kafka.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/millrace/millrace/adapter"
)

const topic = "millrace-example-consumer-payments"

func main() {
	zerolog.DurationFieldFormat = zerolog.DurationFormatString // "2.3ms", not 2.3
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	brokers, stopKafka, err := kafkaBrokers(topic)
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
	err = run(ctx, os.Stdout, brokers, topic, "millrace-example-consumer")
	stopKafka()
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

// run publishes payment-1, payment-2 and payment-1 again with the same UUID to topic,
// then consumes topic in consumer group group until all three were handled or dropped.
func run(ctx context.Context, out io.Writer, brokers []string, topic, group string) (err error) {
	logger := zerolog.New(zerolog.ConsoleWriter{Out: out, NoColor: true, TimeFormat: time.TimeOnly}).
		Level(zerolog.WarnLevel).With().Timestamp().Logger()
	wlog := adapter.NewWatermillLogger(logger)

	// Publish a message, another, and a copy of the first: same UUID, as when the
	// first attempt reached the broker but its answer was lost and it was resent.
	pub, err := adapter.NewKafka(adapter.KafkaConfig{Brokers: brokers}, adapter.Config{Logger: &logger})
	if err != nil {
		return err
	}
	first := message.NewMessage(watermill.NewUUID(), []byte("payment-1"))
	second := message.NewMessage(watermill.NewUUID(), []byte("payment-2"))
	if err := pub.Publish(topic, first, second, first.Copy()); err != nil {
		return errors.Join(err, pub.Close())
	}
	if err := pub.Close(); err != nil {
		return err
	}
	fmt.Fprintf(out, "published payment-1 (%s), payment-2 (%s), payment-1 again (%s)\n", first.UUID, second.UUID, first.UUID)

	// A consumer group that starts at the oldest message the first time it runs, so
	// that it sees what was published before it joined.
	cfg := kafka.DefaultSaramaSubscriberConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               brokers,
		Unmarshaler:           kafka.DefaultMarshaler{},
		OverwriteSaramaConfig: cfg,
		ConsumerGroup:         group,
	}, wlog)
	if err != nil {
		return err
	}

	// Every message ends handled or dropped; run stops once the three published have.
	var handled, dropped, pending atomic.Int32
	pending.Store(3)
	settled := make(chan struct{})
	settle := func(n *atomic.Int32) {
		n.Add(1)
		if pending.Add(-1) == 0 {
			close(settled)
		}
	}
	// Remember up to 10000 handled UUIDs for 10 minutes: longer than the publisher's
	// retry budget (adapter.Config.MaxElapsedTime, 2 minutes by default).
	dedup := NewDedup(10_000, 10*time.Minute)
	dedup.OnDuplicate = func(msg *message.Message) {
		fmt.Fprintf(out, "dropped duplicate %s (%s)\n", msg.Payload, msg.UUID)
		settle(&dropped)
	}

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, wlog)
	if err != nil {
		return err
	}
	router.AddMiddleware(dedup.Middleware)
	var failedOnce atomic.Bool
	router.AddConsumerHandler("payments", topic, sub, func(msg *message.Message) error {
		// A transient failure: the router nacks the message and watermill-kafka
		// redelivers it. Dedup has not remembered it, so the redelivery is handled.
		if string(msg.Payload) == "payment-2" && failedOnce.CompareAndSwap(false, true) {
			fmt.Fprintf(out, "failed %s (%s) once: it will be redelivered\n", msg.Payload, msg.UUID)
			return errors.New("simulated transient failure")
		}
		fmt.Fprintf(out, "handled %s (%s)\n", msg.Payload, msg.UUID)
		settle(&handled)
		return nil
	})

	var runErr error
	stopped := make(chan struct{})
	go func() { runErr = router.Run(ctx); close(stopped) }()
	// Close stops the handler and waits for the messages in progress.
	defer func() {
		closeErr := router.Close()
		<-stopped
		err = errors.Join(err, closeErr, runErr)
	}()
	select {
	case <-settled:
		fmt.Fprintf(out, "handled %d messages, dropped %d duplicate(s)\n", handled.Load(), dropped.Load())
		return nil
	case <-stopped:
		return errors.New("router stopped early")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kafkaBrokers returns the brokers of KAFKA_BROKERS. When it is unset, it starts an
// in-process Kafka broker (franz-go's kfake, which speaks the Kafka protocol) holding
// topics; stop shuts it down.
func kafkaBrokers(topics ...string) (brokers []string, stop func(), err error) {
	for _, b := range strings.Split(os.Getenv("KAFKA_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if len(brokers) > 0 {
		return brokers, func() {}, nil
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		return nil, nil, fmt.Errorf("in-process Kafka: %w", err)
	}
	return cluster.ListenAddrs(), cluster.Close, nil
}
