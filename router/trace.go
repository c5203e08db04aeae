package router

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
)

// TracerName is the instrumentation name of the spans the forwarder creates.
const TracerName = "github.com/millrace/millrace/router"

// batchSpan is the span of one batch.
type batchSpan struct{ span trace.Span }

// startBatchSpan starts the span of a batch of events, "forward <outbox>": the root
// of a trace of its own (a batch serves many writers), linked to the producer span
// of each event that carries a trace context, one link per distinct span. The
// Publish calls of the batch are its children. The events' own trace context still
// travels with each event to Kafka (the traceparent and tracestate headers), so
// that consumers continue the writer's trace, not the forwarder's.
//
// An SDK keeps a limited number of links per span (128 by default in
// OpenTelemetry's Go SDK); events beyond it are not linked.
func (f *Forwarder) startBatchSpan(ctx context.Context, events []outbox.Event) (context.Context, batchSpan) {
	tp := f.cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	var links []trace.Link
	seen := make(map[trace.SpanID]bool)
	for _, ev := range events {
		if ev.Trace.IsZero() {
			continue
		}
		sc := ev.Trace.SpanContext()
		if !sc.IsValid() || seen[sc.SpanID()] {
			continue
		}
		seen[sc.SpanID()] = true
		links = append(links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{
			attribute.String("messaging.message.id", ev.UUID),
		}})
	}
	ctx, span := tp.Tracer(TracerName).Start(ctx, "forward "+f.cfg.Outbox.Name,
		trace.WithNewRoot(),
		trace.WithLinks(links...),
		trace.WithAttributes(
			attribute.String("millrace.outbox", f.cfg.Outbox.Name),
			attribute.String("millrace.consumer_group", f.cfg.Outbox.ConsumerGroup),
			attribute.Int("messaging.batch.message_count", len(events)),
		))
	return ctx, batchSpan{span: span}
}

// end ends the span of a batch that stopped with err (of class), nil when the
// whole batch was handled.
func (s batchSpan) end(class adapter.Class, err error) {
	if err != nil && s.span.IsRecording() {
		s.span.SetAttributes(attribute.String(adapter.AttrErrorClass, class.String()),
			attribute.String("error.type", class.String()))
		s.span.RecordError(err)
		s.span.SetStatus(codes.Error, class.String())
	}
	s.span.End()
}
