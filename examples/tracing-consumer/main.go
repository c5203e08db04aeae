// Command tracing-consumer shows a Watermill handler that continues the trace of the
// code that published the message it handles.
//
// The publisher side is the adapter decorator inside an application span: it writes
// the span's W3C trace context into the message's "traceparent" and "tracestate"
// metadata, which watermill-kafka's marshaler sends as Kafka headers. Events
// forwarded by the relay from the outbox carry the same headers, with the context of
// the span that wrote them. The consumer side is a router middleware (Tracing, in
// this file) that extracts the context from the metadata with the OpenTelemetry
// API and starts the handler's span as its child.
//
// It prints the spans as they end, so the shared trace id can be seen. It uses the
// brokers in KAFKA_BROKERS (comma-separated host:port list); when that is unset it
// starts an in-process Kafka broker, so `go run ./examples/tracing-consumer` needs no
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
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/adapter"
)

const topic = "millrace-example-traced-orders"

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	brokers, stopKafka, err := kafkaBrokers(topic)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracing-consumer:", err)
		os.Exit(1)
	}
	err = run(ctx, os.Stdout, brokers, topic, "millrace-example-tracing-consumer")
	stopKafka()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracing-consumer:", err)
		os.Exit(1)
	}
}

// Tracing returns a router middleware that continues, in the handler, the trace
// whose W3C context the message carries in its metadata (the traceparent and
// tracestate Kafka headers): it starts a consumer span, child of the publisher's
// span, and puts it in the message's context for the handler. A message without
// trace context gets a span of a new trace.
func Tracing(tracer trace.Tracer) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := propagation.TraceContext{}.Extract(msg.Context(), propagation.MapCarrier(msg.Metadata))
			ctx, span := tracer.Start(ctx, "process "+message.SubscribeTopicFromCtx(msg.Context()),
				trace.WithSpanKind(trace.SpanKindConsumer))
			defer span.End()
			msg.SetContext(ctx)
			out, err := h(msg)
			if err != nil {
				span.RecordError(err)
			}
			return out, err
		}
	}
}

// run publishes one message inside an application span, then handles it with a
// Watermill router whose handler runs in a span of the same trace.
func run(ctx context.Context, out io.Writer, brokers []string, topic, group string) (err error) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(&printer{out: out}))
	defer func() { err = errors.Join(err, tp.Shutdown(context.Background())) }()

	// The publishing application: a request handler's span, and the decorator.
	pub, err := adapter.NewKafka(adapter.KafkaConfig{Brokers: brokers}, adapter.Config{TracerProvider: tp})
	if err != nil {
		return err
	}
	reqCtx, req := tp.Tracer("orders-api").Start(ctx, "POST /orders")
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order":42}`))
	msg.SetContext(reqCtx)
	err = pub.Publish(topic, msg)
	req.End()
	if err = errors.Join(err, pub.Close()); err != nil {
		return err
	}
	fmt.Fprintf(out, "published %s with traceparent %s\n", msg.UUID, msg.Metadata.Get("traceparent"))

	// The consuming application.
	cfg := kafka.DefaultSaramaSubscriberConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers: brokers, Unmarshaler: kafka.DefaultMarshaler{}, OverwriteSaramaConfig: cfg, ConsumerGroup: group,
	}, watermill.NopLogger{})
	if err != nil {
		return err
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		return err
	}
	router.AddMiddleware(Tracing(tp.Tracer("shipping")))
	handled := make(chan struct{})
	var once sync.Once
	router.AddConsumerHandler("ship", topic, sub, func(m *message.Message) error {
		sc := trace.SpanContextFromContext(m.Context())
		fmt.Fprintf(out, "handled %s in trace %s\n", m.UUID, sc.TraceID())
		once.Do(func() { close(handled) })
		return nil
	})

	var runErr error
	stopped := make(chan struct{})
	go func() { runErr = router.Run(ctx); close(stopped) }()
	defer func() {
		closeErr := router.Close()
		<-stopped
		err = errors.Join(err, closeErr, runErr)
	}()
	select {
	case <-handled:
		return nil
	case <-stopped:
		return errors.New("router stopped early")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// printer is a span exporter that prints one line per span: trace id, span id,
// parent span id and name.
type printer struct {
	mu  sync.Mutex
	out io.Writer
}

func (p *printer) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range spans {
		parent := "-"
		if s.Parent().IsValid() {
			parent = s.Parent().SpanID().String()
		}
		fmt.Fprintf(p.out, "span trace=%s id=%s parent=%s name=%q\n",
			s.SpanContext().TraceID(), s.SpanContext().SpanID(), parent, s.Name())
	}
	return nil
}

func (p *printer) Shutdown(context.Context) error { return nil }

// kafkaBrokers returns the brokers of KAFKA_BROKERS. When it is unset, it starts an
// in-process Kafka broker (franz-go's kfake) holding topics; stop shuts it down.
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
