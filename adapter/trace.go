package adapter

import (
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
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
	ctx, span := p.tracer.Start(parent, "send "+topic,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", topic),
			attribute.Int("messaging.batch.message_count", len(msgs)),
		))
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
