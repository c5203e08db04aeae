package outbox

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Reserved metadata keys of the trace context that Publish captures.
const (
	// TraceParentMetadata carries the W3C traceparent of the message's context in the
	// stored row.
	TraceParentMetadata = ReservedPrefix + "traceparent"
	// TraceStateMetadata carries the W3C tracestate of the message's context in the
	// stored row.
	TraceStateMetadata = ReservedPrefix + "tracestate"
)

// Names of the metadata entries (and so of the Kafka headers) that carry the trace
// context of a forwarded event: the W3C Trace Context field names, which the
// OpenTelemetry Kafka instrumentations read.
const (
	TraceParentHeader = "traceparent"
	TraceStateHeader  = "tracestate"
)

// TraceContext is the W3C trace context (https://www.w3.org/TR/trace-context/) that
// a message's context carried when Publish wrote it: the span of the writer, so
// that the consumer of the event can continue the writer's trace. The zero value
// means the context carried no valid span.
type TraceContext struct {
	// TraceParent is the traceparent value, "00-<trace id>-<span id>-<flags>".
	TraceParent string
	// TraceState is the tracestate value, "" when the span had none.
	TraceState string
}

// IsZero reports whether t carries no trace context.
func (t TraceContext) IsZero() bool { return t.TraceParent == "" }

// SpanContext returns the span context that t describes, marked remote; it is not
// valid when t is zero or malformed.
func (t TraceContext) SpanContext() trace.SpanContext {
	if t.IsZero() {
		return trace.SpanContext{}
	}
	carrier := propagation.MapCarrier{TraceParentHeader: t.TraceParent}
	if t.TraceState != "" {
		carrier[TraceStateHeader] = t.TraceState
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), carrier)
	return trace.SpanContextFromContext(ctx)
}

// TraceContextOf returns the W3C trace context of the span in ctx, zero when ctx
// holds no valid span context. It uses the W3C format whatever propagator the
// application installed globally.
func TraceContextOf(ctx context.Context) TraceContext {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return TraceContext{TraceParent: carrier[TraceParentHeader], TraceState: carrier[TraceStateHeader]}
}

// captureTrace stores the trace context of ctx in md under the reserved keys; it
// leaves md alone when ctx holds no valid span context.
func captureTrace(ctx context.Context, md message.Metadata) {
	tc := TraceContextOf(ctx)
	if tc.IsZero() {
		return
	}
	md[TraceParentMetadata] = tc.TraceParent
	if tc.TraceState != "" {
		md[TraceStateMetadata] = tc.TraceState
	}
}

// storedTrace returns the trace context stored in a row's metadata by captureTrace,
// zero when there is none or when the stored traceparent is malformed (a row
// written by hand): a bad trace context is dropped, never an error.
func storedTrace(stored map[string]string) TraceContext {
	tc := TraceContext{TraceParent: stored[TraceParentMetadata]}
	if tc.TraceParent == "" {
		return TraceContext{}
	}
	tc.TraceState = stored[TraceStateMetadata]
	if !tc.SpanContext().IsValid() {
		return TraceContext{}
	}
	return tc
}

// setOn writes t into md as the traceparent and tracestate entries, replacing
// entries of those names; it leaves md alone when t is zero.
func (t TraceContext) setOn(md message.Metadata) {
	if t.IsZero() {
		return
	}
	md[TraceParentHeader] = t.TraceParent
	if t.TraceState != "" {
		md[TraceStateHeader] = t.TraceState
	} else {
		delete(md, TraceStateHeader)
	}
}
