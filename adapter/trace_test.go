package adapter_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/millrace/millrace/adapter"
)

// tracing returns a tracer provider that records every span in memory.
func tracing(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}

func spanNamed(t *testing.T, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1 (spans: %v)", len(found), name, exp.GetSpans().Snapshots())
	}
	return found[0]
}

func attr(s tracetest.SpanStub, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func TestPublishSpanIsAChildOfTheCallersSpanWithAttemptsAndRetriesAsEvents(t *testing.T) {
	tp, exp := tracing(t)
	inner := newScripted(step{all: errRetriable}, step{}) // one retriable failure, then success
	cfg := fast()
	cfg.TracerProvider = tp
	p := newPub(t, inner, cfg)

	ctx, parent := tp.Tracer("app").Start(context.Background(), "handler")
	m1, m2 := msg("a"), msg("b")
	m1.SetContext(ctx)
	m2.SetContext(ctx)
	if err := p.Publish("orders", m1, m2); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	parent.End()

	s := spanNamed(t, exp, "send orders")
	if s.Parent.SpanID() != parent.SpanContext().SpanID() || s.SpanContext.TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("publish span's parent = %v, want the caller's span %v", s.Parent, parent.SpanContext())
	}
	if s.SpanKind != trace.SpanKindProducer {
		t.Errorf("SpanKind = %v, want producer", s.SpanKind)
	}
	var names []string
	for _, e := range s.Events {
		names = append(names, e.Name)
	}
	want := []string{adapter.EventAttempt, adapter.EventRetry, adapter.EventAttempt}
	if len(names) != len(want) || names[0] != want[0] || names[1] != want[1] || names[2] != want[2] {
		t.Errorf("span events = %v, want %v", names, want)
	}
	if v, _ := attr(s, adapter.AttrAttempts); v.AsInt64() != 2 {
		t.Errorf("%s = %v, want 2", adapter.AttrAttempts, v.AsInt64())
	}
	if s.Status.Code == codes.Error {
		t.Errorf("status = %v, want not an error", s.Status)
	}
	// Both messages carry the publish span's context, for the consumer to continue.
	for _, m := range []*message.Message{m1, m2} {
		sc := extract(m.Metadata)
		if sc.SpanID() != s.SpanContext.SpanID() || sc.TraceID() != s.SpanContext.TraceID() {
			t.Errorf("message %s: traceparent %q, want the publish span %v", m.UUID, m.Metadata.Get("traceparent"), s.SpanContext.SpanID())
		}
	}
}

func TestAFailedPublishSpanCarriesTheClass(t *testing.T) {
	tp, exp := tracing(t)
	cfg := fast()
	cfg.TracerProvider = tp
	p := newPub(t, newScripted(step{all: errPermanent}), cfg)
	err := p.Publish("orders", msg("a"))
	var pe *adapter.PublishError
	if !errors.As(err, &pe) || pe.Class != adapter.Permanent {
		t.Fatalf("Publish: %v, want a permanent PublishError", err)
	}
	s := spanNamed(t, exp, "send orders")
	if s.Status.Code != codes.Error {
		t.Errorf("status = %v, want error", s.Status)
	}
	if v, ok := attr(s, adapter.AttrErrorClass); !ok || v.AsString() != "permanent" {
		t.Errorf("%s = %q, want permanent", adapter.AttrErrorClass, v.AsString())
	}
}

func TestPublishKeepsATraceparentTheMessageAlreadyHas(t *testing.T) {
	tp, _ := tracing(t)
	cfg := fast()
	cfg.TracerProvider = tp
	p := newPub(t, newScripted(), cfg)
	ctx, span := tp.Tracer("app").Start(context.Background(), "handler")
	defer span.End()
	const theirs = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	m := msg("a")
	m.Metadata.Set("traceparent", theirs)
	m.SetContext(ctx)
	if err := p.Publish("orders", m); err != nil {
		t.Fatal(err)
	}
	if got := m.Metadata.Get("traceparent"); got != theirs {
		t.Errorf("traceparent = %q, want the message's own %q", got, theirs)
	}
}

func TestPublishWithoutASpanOrProviderWritesNoTraceContext(t *testing.T) {
	p := newPub(t, newScripted(), fast()) // the global provider: a no-op
	m := msg("a")
	if err := p.Publish("orders", m); err != nil {
		t.Fatal(err)
	}
	if v := m.Metadata.Get("traceparent"); v != "" {
		t.Errorf("traceparent = %q, want none", v)
	}
}

func extract(md message.Metadata) trace.SpanContext {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(md))
	return trace.SpanContextFromContext(ctx)
}

// Without a tracer provider the decorator creates no span and allocates nothing for
// tracing, but a message whose context carries a span context (a remote parent, say)
// still gets it as its traceparent.
func TestPublishWithoutAProviderCostsNoAllocationAndKeepsTheCallersContext(t *testing.T) {
	p := newPub(t, nopInner{}, fast())
	m := msg("a")
	allocs := testing.AllocsPerRun(200, func() { _ = p.Publish("orders", m) })
	if allocs > 1 { // the variadic slice of the call
		t.Errorf("Publish allocates %v times per call without a provider, want at most 1", allocs)
	}

	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	m2 := msg("b")
	m2.SetContext(trace.ContextWithSpanContext(context.Background(), remote))
	if err := p.Publish("orders", m2); err != nil {
		t.Fatal(err)
	}
	if got := m2.Metadata.Get("traceparent"); got != "00-"+tid.String()+"-"+sid.String()+"-01" {
		t.Errorf("traceparent = %q, want the caller's span context", got)
	}
}

// An application that installs its provider globally (otel.SetTracerProvider) gets
// the decorator's spans without setting Config.TracerProvider.
func TestPublishUsesTheGlobalProviderOnceTheApplicationInstallsOne(t *testing.T) {
	p := newPub(t, nopInner{}, fast()) // created before the provider is installed
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()); _ = tp.Shutdown(context.Background()) })

	m := msg("a")
	if err := p.Publish("orders", m); err != nil {
		t.Fatal(err)
	}
	s := spanNamed(t, exp, "send orders")
	if sc := extract(m.Metadata); sc.SpanID() != s.SpanContext.SpanID() {
		t.Errorf("traceparent %q, want the publish span's", m.Metadata.Get("traceparent"))
	}
}

// nopInner accepts every message.
type nopInner struct{}

func (nopInner) Publish(string, ...*message.Message) error { return nil }
func (nopInner) Close() error                              { return nil }
