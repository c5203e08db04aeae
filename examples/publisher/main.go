// Command publisher shows the two ways to publish to Kafka with millrace: watermill-kafka's
// Publisher wearing the adapter.Publisher decorator, and the batching publisher of
// adapter.NewKafka. It prints the decorator's metrics, its health and what a service would
// serve on /metrics, /readyz and /livez.
//
// It publishes to the brokers in KAFKA_BROKERS (comma-separated host:port list); when
// that is unset it starts an in-process Kafka broker, so `go run ./examples/publisher`
// needs no Kafka.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/millrace/millrace/adapter"
)

const topic = "millrace-example-publisher"

func main() {
	zerolog.DurationFieldFormat = zerolog.DurationFormatString // "2.3ms", not 2.3
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	brokers, stopKafka, err := kafkaBrokers(topic)
	if err != nil {
		fmt.Fprintln(os.Stderr, "publisher:", err)
		os.Exit(1)
	}
	err = run(ctx, os.Stdout, brokers, topic)
	stopKafka()
	if err != nil {
		fmt.Fprintln(os.Stderr, "publisher:", err)
		os.Exit(1)
	}
}

// batchSize is how many messages the batching publisher writes in one call.
const batchSize = 100

// run publishes three messages through the decorated watermill-kafka publisher and a
// batch through adapter.NewKafka, then reports metrics and health to out.
func run(ctx context.Context, out io.Writer, brokers []string, topic string) (err error) {
	// The decorator and Watermill log through the same zerolog logger. At debug level
	// the decorator logs every publish; retries are logged at warn, failures at error.
	logger := zerolog.New(zerolog.ConsoleWriter{Out: out, NoColor: true, TimeFormat: time.TimeOnly}).
		Level(zerolog.DebugLevel).With().Timestamp().Logger()
	// Both publishers register their collectors here; they share them, so the
	// Prometheus series add up the two.
	reg := prometheus.NewRegistry()

	// 1. Any Watermill publisher can be decorated; here watermill-kafka's own, which
	// sends the messages of a call one by one.
	kafkaPub, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers:   brokers,
		Marshaler: kafka.DefaultMarshaler{},
	}, adapter.NewWatermillLogger(logger))
	if err != nil {
		return fmt.Errorf("watermill-kafka publisher: %w", err)
	}
	pubLog := logger.With().Str("publisher", "watermill-kafka").Logger()
	pub, err := adapter.NewPublisher(kafkaPub, adapter.Config{
		MaxRetries:     5,                // retries after the first attempt (default 3)
		MaxElapsedTime: 30 * time.Second, // budget of one Publish call (default 2m)
		Logger:         &pubLog,
		Registerer:     reg,
	})
	if err != nil {
		_ = kafkaPub.Close()
		return err
	}
	// Close waits for the publishes in flight, then closes kafkaPub.
	defer func() { err = errors.Join(err, pub.Close()) }()

	for i := 1; i <= 3; i++ {
		msg := message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, "order-%d", i))
		// Publish has no context argument: a message carries its own. Its deadline
		// ends the decorator's retries and the waits between them. (It does not
		// interrupt an attempt in progress: watermill-kafka's producer ignores contexts.)
		msgCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		msg.SetContext(msgCtx)
		err := pub.Publish(topic, msg)
		cancel()
		if err != nil {
			// err is an *adapter.PublishError: errors.As gives its Class
			// (retriable, permanent, fatal, canceled) and the failed messages.
			return fmt.Errorf("publish order-%d: %w", i, err)
		}
	}

	// 2. The batching publisher: the same decorator over adapter's KafkaPublisher,
	// which writes a whole call in a few pipelined requests and reports each
	// message's outcome, so a retry resends only the messages that failed.
	batchLog := logger.With().Str("publisher", "batching").Logger()
	batch, err := adapter.NewKafka(adapter.KafkaConfig{Brokers: brokers}, adapter.Config{
		Logger:     &batchLog,
		Registerer: reg,
	})
	if err != nil {
		return fmt.Errorf("batching publisher: %w", err)
	}
	defer func() { err = errors.Join(err, batch.Close()) }()

	msgs := make([]*message.Message, batchSize)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, "batch-%03d", i+1))
	}
	start := time.Now()
	if err := batch.Publish(topic, msgs...); err != nil {
		return fmt.Errorf("publish batch: %w", err)
	}
	fmt.Fprintf(out, "published a batch of %d messages in %v\n", len(msgs), time.Since(start).Round(time.Millisecond))

	// Metrics() is a snapshot of one publisher's counters.
	printMetrics(out, "decorated watermill-kafka", pub.Metrics())
	printMetrics(out, "batching NewKafka", batch.Metrics())

	// HealthCheck fails after a fatal failure, at a high error rate, or when the broker
	// does not answer. The batching publisher can ping its broker; watermill-kafka's
	// cannot, so only the first two apply to it (or set Config.BrokerCheck).
	fmt.Fprintf(out, "health of decorated watermill-kafka: %s\n", healthString(pub.HealthCheck(ctx)))
	fmt.Fprintf(out, "health of batching NewKafka: %s\n", healthString(batch.HealthCheck(ctx)))

	// What a service serves; here the requests are answered in-process rather than by
	// http.ListenAndServe.
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/readyz", batch.ReadinessHandler()) // HealthCheck: take out of rotation
	mux.Handle("/livez", batch.LivenessHandler())   // only closed is dead: no restart on broker outage
	for _, path := range []string{"/readyz", "/livez", "/metrics"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil))
		fmt.Fprintf(out, "GET %s: %d\n", path, rec.Code)
		for line := range strings.Lines(rec.Body.String()) {
			// The counters only: no comments, no other collectors, no histogram buckets.
			if path != "/metrics" || strings.HasPrefix(line, "millrace_") && !strings.Contains(line, "_bucket") {
				fmt.Fprint(out, "  ", line)
			}
		}
	}
	return nil
}

func printMetrics(out io.Writer, name string, m adapter.Metrics) {
	fmt.Fprintf(out, "metrics of %s: published=%d given_up=%d retries=%d calls=%d avg=%v\n",
		name, m.MessagesPublished, m.MessagesGivenUp, m.RetriesTotal, m.PublishCalls, m.AvgPublishTime.Round(time.Microsecond))
}

func healthString(err error) string {
	if err != nil {
		return "unhealthy: " + err.Error()
	}
	return "healthy"
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
