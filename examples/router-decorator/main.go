// Command router-decorator shows the millrace decorator on a Watermill message.Router:
// a handler consumes orders from one topic and publishes confirmations to another, and
// router.AddPublisherDecorators(adapter.Decorator(cfg)) gives the handler's publisher
// retries, metrics and logs.
//
// It uses the brokers in KAFKA_BROKERS (comma-separated host:port list); when that is
// unset it starts an in-process Kafka broker, so `go run ./examples/router-decorator`
// needs no Kafka.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/millrace/millrace/adapter"
)

const (
	ordersTopic    = "millrace-example-router-orders"
	confirmedTopic = "millrace-example-router-confirmed"
)

func main() {
	zerolog.DurationFieldFormat = zerolog.DurationFormatString // "2.3ms", not 2.3
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	brokers, stopKafka, err := kafkaBrokers(ordersTopic, confirmedTopic)
	if err != nil {
		fmt.Fprintln(os.Stderr, "router-decorator:", err)
		os.Exit(1)
	}
	err = run(ctx, os.Stdout, brokers, ordersTopic, confirmedTopic)
	stopKafka()
	if err != nil {
		fmt.Fprintln(os.Stderr, "router-decorator:", err)
		os.Exit(1)
	}
}

// orders are the payloads published to the input topic.
var orders = []string{"order-1", "order-2", "order-3"}

// run starts a router whose handler turns each order of inTopic into a confirmation
// on outTopic, publishes the orders, prints the confirmations as they arrive on
// outTopic, and then the decorator's metrics.
func run(ctx context.Context, out io.Writer, brokers []string, inTopic, outTopic string) (err error) {
	logger := zerolog.New(zerolog.ConsoleWriter{Out: out, NoColor: true, TimeFormat: time.TimeOnly}).
		Level(zerolog.InfoLevel).With().Timestamp().Logger()
	// Watermill logs every subscription and handler at info: keep its warnings only.
	wlog := adapter.NewWatermillLogger(logger.Level(zerolog.WarnLevel))
	reg := prometheus.NewRegistry()

	pub, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers:   brokers,
		Marshaler: kafka.DefaultMarshaler{},
	}, wlog)
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	defer pub.Close() // the router closes it too when the handler stops; Close is idempotent
	sub, err := newSubscriber(brokers, inTopic+"-handler", wlog)
	if err != nil {
		return err
	}

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, wlog)
	if err != nil {
		return err
	}
	// The decorator wraps the publisher of every handler when the router starts it,
	// with its own adapter.Publisher per handler. It reaches only what the router
	// publishes for a handler (the messages it returns): not a publisher a handler
	// calls itself, nor the poison queue's, nor Watermill's forwarder's. Those need
	// adapter.NewPublisher directly. The per-handler publishers are not reachable from
	// here, so their metrics are read from the Prometheus registry they share.
	router.AddPublisherDecorators(adapter.Decorator(adapter.Config{
		MaxElapsedTime: 30 * time.Second,
		Logger:         &logger,
		Registerer:     reg,
	}))
	router.AddHandler("confirm-orders", inTopic, sub, outTopic, pub,
		func(msg *message.Message) ([]*message.Message, error) {
			confirmed := message.NewMessage(watermill.NewUUID(), append([]byte("confirmed "), msg.Payload...))
			confirmed.Metadata.Set("order_uuid", msg.UUID)
			// The decorator retries with the context of the published message: with the
			// input's, retries stop when its delivery ends (the subscriber closing).
			confirmed.SetContext(msg.Context())
			return []*message.Message{confirmed}, nil
		})

	var runErr error
	stopped := make(chan struct{})
	go func() { runErr = router.Run(ctx); close(stopped) }()
	// stopRouter stops the handler, waits for its messages and closes its publisher.
	stopRouter := sync.OnceValue(func() error {
		closeErr := router.Close()
		<-stopped
		return errors.Join(closeErr, runErr)
	})
	defer func() { err = errors.Join(err, stopRouter()) }()
	select {
	case <-router.Running():
	case <-stopped:
		return errors.New("router stopped before running")
	}

	// The orders are published with pub itself, outside the router, so the decorator
	// does not see them: the metrics below count the confirmations only.
	for _, order := range orders {
		if err := pub.Publish(inTopic, message.NewMessage(watermill.NewUUID(), []byte(order))); err != nil {
			return fmt.Errorf("publish %s: %w", order, err)
		}
		fmt.Fprintf(out, "published %s to %s\n", order, inTopic)
	}

	// Read the confirmations back with a subscriber of another consumer group.
	reader, err := newSubscriber(brokers, outTopic+"-reader", wlog)
	if err != nil {
		return err
	}
	defer reader.Close()
	confirmations, err := reader.Subscribe(ctx, outTopic)
	if err != nil {
		return err
	}
	for range orders {
		select {
		case msg, ok := <-confirmations:
			if !ok {
				return errors.New("subscription closed before every confirmation arrived")
			}
			fmt.Fprintf(out, "received %q on %s (order %s)\n", msg.Payload, outTopic, msg.Metadata.Get("order_uuid"))
			msg.Ack()
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	// The last confirmation can arrive before its Publish call has returned: stop the
	// router first, so that the metrics count every call.
	if err := stopRouter(); err != nil {
		return err
	}
	fmt.Fprintln(out, "metrics of the decorated handler publisher:")
	return printMetrics(out, reg)
}

// newSubscriber returns a watermill-kafka subscriber in a consumer group that starts
// from the oldest message when the group has no committed offset yet, so it sees the
// messages published before it joined.
func newSubscriber(brokers []string, group string, logger watermill.LoggerAdapter) (*kafka.Subscriber, error) {
	cfg := kafka.DefaultSaramaSubscriberConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               brokers,
		Unmarshaler:           kafka.DefaultMarshaler{},
		OverwriteSaramaConfig: cfg,
		ConsumerGroup:         group,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("subscriber %s: %w", group, err)
	}
	return sub, nil
}

// printMetrics prints the decorator's Prometheus series in the text format of /metrics,
// without comments and histogram buckets.
func printMetrics(out io.Writer, g prometheus.Gatherer) error {
	families, err := g.Gather()
	if err != nil {
		return err
	}
	var text strings.Builder
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(&text, f); err != nil {
			return err
		}
	}
	for line := range strings.Lines(text.String()) {
		if strings.HasPrefix(line, "millrace_") && !strings.Contains(line, "_bucket") {
			fmt.Fprint(out, "  ", line)
		}
	}
	return nil
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
