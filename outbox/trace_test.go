package outbox_test

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/outbox"
)

// spanContext returns a context holding a fixed, sampled remote span with a
// tracestate.
func spanContext(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, err := trace.ParseTraceState("vendor=abc,other=1")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
	return trace.ContextWithSpanContext(context.Background(), sc), sc
}

func TestPublishStoresTheTraceContextOfEachMessageAndTheReaderReturnsIt(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		ctx, sc := spanContext(t)
		traced := newMsg([]byte("a"), "k", map[string]string{"traceparent": "user-value", "x": "1"})
		traced.SetContext(ctx)
		plain := newMsg([]byte("b"), "k", nil)
		h.publishTx(t, true, "orders", traced, plain)

		evs := readN(t, h.reader(t), 10, 2)
		if len(evs) != 2 {
			t.Fatalf("read %d events, want 2", len(evs))
		}
		want := outbox.TraceContext{
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			TraceState:  "vendor=abc,other=1",
		}
		if evs[0].Trace != want {
			t.Errorf("Trace = %+v, want %+v", evs[0].Trace, want)
		}
		if got := evs[0].Trace.SpanContext(); got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() ||
			!got.IsSampled() || got.TraceState().Get("vendor") != "abc" {
			t.Errorf("SpanContext = %v, want the writer's %v", got, sc)
		}
		if !evs[1].Trace.IsZero() || evs[1].Trace.SpanContext().IsValid() {
			t.Errorf("event published without a span has Trace %+v, want zero", evs[1].Trace)
		}
		for _, ev := range evs {
			for k := range ev.Metadata {
				if strings.HasPrefix(k, outbox.ReservedPrefix) || k == "tracestate" {
					t.Errorf("event %s: Metadata has %q; the trace context must not leak into user metadata", ev.UUID, k)
				}
			}
		}
		// The user's own entry is kept in the event's metadata...
		if evs[0].Metadata["traceparent"] != "user-value" || evs[0].Metadata["x"] != "1" {
			t.Errorf("Metadata = %v, want the user's entries unchanged", evs[0].Metadata)
		}
		// ...but the message for Kafka carries the captured context.
		m := evs[0].Message()
		if m.Metadata.Get("traceparent") != want.TraceParent || m.Metadata.Get("tracestate") != want.TraceState {
			t.Errorf("Message metadata = %v, want traceparent/tracestate of the writer", m.Metadata)
		}
		if m2 := evs[1].Message(); m2.Metadata.Get("traceparent") != "" || m2.Metadata.Get("tracestate") != "" {
			t.Errorf("untraced event's Message metadata = %v, want no trace entries", m2.Metadata)
		}
		// The caller's message is not modified by Publish.
		if _, ok := traced.Metadata[outbox.TraceParentMetadata]; ok {
			t.Error("Publish wrote the reserved trace key into the caller's message")
		}
	})
}

func TestPublishRejectsReservedTraceKeysSetByTheCaller(t *testing.T) {
	h := newHarness(t, dialects[0])
	m := newMsg([]byte("a"), "", map[string]string{outbox.TraceParentMetadata: "00-x"})
	err := h.tryPublishTx(false, "orders", m)
	if err == nil || !strings.Contains(err.Error(), outbox.TraceParentMetadata) {
		t.Fatalf("Publish with %s in metadata: err = %v, want an error naming the key", outbox.TraceParentMetadata, err)
	}
}

func TestTraceContextOfAContextWithoutASpanIsZero(t *testing.T) {
	if tc := outbox.TraceContextOf(context.Background()); !tc.IsZero() {
		t.Fatalf("TraceContextOf(Background) = %+v, want zero", tc)
	}
	if sc := (outbox.TraceContext{TraceParent: "garbage"}).SpanContext(); sc.IsValid() {
		t.Fatalf("SpanContext of a malformed traceparent is valid: %v", sc)
	}
}
