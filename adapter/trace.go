package adapter

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracerName is the instrumentation name of the spans the decorator creates.
const TracerName = "github.com/millrace/millrace/adapter"

// Names of the metadata entries that carry the W3C trace context of a message (and so
// of its Kafka headers, with a marshaler that turns metadata into headers, such as
// watermill-kafka's default one): the names OpenTelemetry's Kafka instrumentations
// read.
const (
	TraceParentMetadata = "traceparent"
	TraceStateMetadata  = "tracestate"
)

// Span attribute and event names of the publish span (see Publisher.Publish).
const (
	AttrErrorClass = "millrace.error.class"
	AttrAttempts   = "millrace.publish.attempts"
	EventAttempt   = "attempt"
	EventRetry     = "retry"
)

// newTracer returns the decorator's tracer of tp, or of the global provider when tp
// is nil.
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(TracerName)
}

// globalProviderSet reports whether the application installed a global tracer
// provider (otel.SetTracerProvider) other than a no-op one. Until it does, otel's
// global provider is a placeholder of its internal package whose spans cost
// allocations and do nothing; should that type change name, this reports true
// and the spans are merely created for nothing.
func globalProviderSet() bool {
	switch tp := otel.GetTracerProvider().(type) {
	case noop.TracerProvider:
		return false
	default:
		return reflect.TypeOf(tp).String() != "*global.tracerProvider"
	}
}

// producerSpan is the start option of every publish span.
var producerSpan = trace.WithSpanKind(trace.SpanKindProducer)

// publishSpan is the span of one Publish call.
type publishSpan struct{ span trace.Span }

// startSpan starts the producer span of a Publish call as a child of the span in the
// first message's context, and writes the trace context into the metadata of every
// message that has no traceparent entry yet: the publish span's for messages whose
// context holds the same span as the first message's, the span of their own context
// for the others. Messages whose context holds no valid span get nothing.
func (p *Publisher) startSpan(topic string, msgs []*message.Message) publishSpan {
	parent := context.Background()
	for _, m := range msgs {
		if m != nil {
			parent = m.Context()
			break
		}
	}
	// Without a tracer provider the call keeps the caller's span context (as a no-op
	// tracer would) and allocates nothing for tracing.
	ctx, span := parent, trace.Span(noop.Span{})
	if p.cfg.TracerProvider != nil || globalProviderSet() {
		ctx, span = p.tracer.Start(parent, "send "+topic, producerSpan)
	}
	if span.IsRecording() {
		// Set after the start, so that without a tracer provider (a non-recording
		// span) a call allocates nothing for them.
		span.SetAttributes(
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", topic),
			attribute.Int("messaging.batch.message_count", len(msgs)),
		)
	}
	parentSC := trace.SpanContextFromContext(parent)
	var tc propagation.TraceContext
	for _, m := range msgs {
		if m == nil || m.Metadata.Get(TraceParentMetadata) != "" {
			continue
		}
		from := m.Context()
		if sc := trace.SpanContextFromContext(from); sc.Equal(parentSC) {
			from = ctx
		} else if !sc.IsValid() {
			continue
		}
		if !trace.SpanContextFromContext(from).IsValid() {
			continue // nothing to write: no span, no provider
		}
		if m.Metadata == nil {
			m.Metadata = make(message.Metadata)
		}
		tc.Inject(from, propagation.MapCarrier(m.Metadata))
	}
	return publishSpan{span: span}
}

// attempt records the outcome of attempt n as a span event: it sent the pending
// messages (all total of them when pending is nil).
func (s publishSpan) attempt(n, total int, pending []int, retry, final []FailedMessage) {
	if !s.span.IsRecording() {
		return
	}
	sent := total
	if pending != nil {
		sent = len(pending)
	}
	s.span.AddEvent(EventAttempt, trace.WithAttributes(
		attribute.Int("attempt", n),
		attribute.Int("messages", sent),
		attribute.Int("retriable_failures", len(retry)),
		attribute.Int("final_failures", len(final)),
	))
}

// retry records that n messages are sent again after wait.
func (s publishSpan) retry(attempt, n int, wait time.Duration) {
	if !s.span.IsRecording() {
		return
	}
	s.span.AddEvent(EventRetry, trace.WithAttributes(
		attribute.Int("attempt", attempt),
		attribute.Int("messages", n),
		attribute.Int64("wait_ms", wait.Milliseconds()),
	))
}

// end ends the span after attempts, with the class and the error of a failure, and
// returns err.
func (s publishSpan) end(attempts int, err error) error {
	if s.span.IsRecording() {
		s.span.SetAttributes(attribute.Int(AttrAttempts, attempts))
		if err != nil {
			class := Classify(err)
			var pe *PublishError
			if errors.As(err, &pe) {
				class = pe.Class
			}
			s.span.SetAttributes(attribute.String(AttrErrorClass, class.String()),
				attribute.String("error.type", class.String()))
			s.span.RecordError(err)
			s.span.SetStatus(codes.Error, class.String())
		}
	}
	s.span.End()
	return err
}
