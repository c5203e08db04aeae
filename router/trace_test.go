package router_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/kafkatest"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// traceEnv is an outbox on PostgreSQL, forwarded to the in-process broker by a
// forwarder and decorator that record their spans in memory.
type traceEnv struct {
	*env
	tp  *sdktrace.TracerProvider
	exp *tracetest.InMemoryExporter
}

func newTraceEnv(t *testing.T) *traceEnv {
	t.Helper()
	e := newEnv(t, outbox.Postgres)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &traceEnv{env: e, tp: tp, exp: exp}
}

// writeTraced writes one event per payload in one transaction, each message
// carrying ctx, as an application handler would.
func (e *traceEnv) writeTraced(t *testing.T, ctx context.Context, payloads ...string) []string {
	t.Helper()
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := outbox.NewPublisher(tx, e.ocfg)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var msgs []*message.Message
	for _, p := range payloads {
		m := message.NewMessage(watermill.NewUUID(), []byte(p))
		m.SetContext(ctx)
		msgs = append(msgs, m)
		ids = append(ids, m.UUID)
	}
	if err := pub.Publish(e.topic, msgs...); err != nil {
		_ = tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return ids
}

func (e *traceEnv) forward(t *testing.T, n int) []kafkatest.Record {
	t.Helper()
	pub := e.publisher(t, adapter.Config{TracerProvider: e.tp})
	f := e.forwarder(t, pub, func(c *router.Config) { c.TracerProvider = e.tp })
	start(t, f)
	return e.consumeDistinct(t, n, 20*time.Second)
}

func (e *traceEnv) spans(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range e.exp.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// TestOneTraceFromTheWritersSpanThroughTheOutboxToTheConsumer follows an event from
// the application's span, through the outbox, the forwarder and Kafka, to a consumer
// that extracts the context from the record's headers: the consumer's span is a
// child of the writer's span, in the writer's trace, and the forwarder's batch span
// links to the writer's span.
func TestOneTraceFromTheWritersSpanThroughTheOutboxToTheConsumer(t *testing.T) {
	e := newTraceEnv(t)
	app := e.tp.Tracer("app")
	ctx, writer := app.Start(context.Background(), "POST /orders")
	ids := e.writeTraced(t, ctx, "order-1", "order-2")
	writer.End()
	untraced := e.writeTraced(t, context.Background(), "no-span")

	recs := e.forward(t, 3)
	byUUID := map[string]kafkatest.Record{}
	for _, r := range recs {
		byUUID[r.Headers[kafka.UUIDHeaderKey]] = r
	}

	// The consumer: extract the context from the headers and continue the trace.
	consumer := e.tp.Tracer("consumer")
	for _, id := range ids {
		r, ok := byUUID[id]
		if !ok {
			t.Fatalf("event %s not in Kafka", id)
		}
		for k := range r.Headers {
			if strings.HasPrefix(k, outbox.ReservedPrefix) {
				t.Errorf("record has the outbox's internal header %q", k)
			}
		}
		cctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(r.Headers))
		_, span := consumer.Start(cctx, "process "+id, trace.WithSpanKind(trace.SpanKindConsumer))
		span.End()
	}

	wsc := writer.SpanContext()
	for _, id := range ids {
		got := e.spans("process " + id)
		if len(got) != 1 {
			t.Fatalf("%d consumer spans for %s, want 1", len(got), id)
		}
		c := got[0]
		if c.SpanContext.TraceID() != wsc.TraceID() || c.Parent.SpanID() != wsc.SpanID() {
			t.Errorf("consumer span of %s: trace %s parent %s, want trace %s parent %s (the writer's span)",
				id, c.SpanContext.TraceID(), c.Parent.SpanID(), wsc.TraceID(), wsc.SpanID())
		}
	}

	// The forwarder's batch span links to the writer's span; the decorator's publish
	// spans are its children.
	batches := e.spans("forward " + e.ocfg.Name)
	if len(batches) == 0 {
		t.Fatal("no forwarder batch span")
	}
	linked := false
	batchIDs := map[trace.SpanID]bool{}
	for _, b := range batches {
		batchIDs[b.SpanContext.SpanID()] = true
		if b.Parent.IsValid() {
			t.Errorf("batch span has parent %v, want a root span", b.Parent)
		}
		for _, l := range b.Links {
			if l.SpanContext.SpanID() == wsc.SpanID() && l.SpanContext.TraceID() == wsc.TraceID() {
				linked = true
			}
		}
	}
	if !linked {
		t.Errorf("no batch span links to the writer's span %v", wsc.SpanID())
	}
	sends := e.spans("send " + e.topic)
	if len(sends) == 0 {
		t.Fatal("no publish span of the decorator")
	}
	for _, s := range sends {
		if !batchIDs[s.Parent.SpanID()] {
			t.Errorf("publish span's parent %v is not a batch span", s.Parent.SpanID())
		}
	}

	// An event written without a span carries the relay's publish span instead.
	r := byUUID[untraced[0]]
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(r.Headers)))
	found := false
	for _, s := range sends {
		found = found || s.SpanContext.SpanID() == sc.SpanID()
	}
	if !found {
		t.Errorf("untraced event's traceparent %q is not a publish span of the relay", r.Headers["traceparent"])
	}
}

// TestKcatReadsTheTraceHeaders reads the forwarded records with kcat (librdkafka),
// a client independent of this code base, and finds the writer's traceparent and
// tracestate headers and Watermill's UUID header.
func TestKcatReadsTheTraceHeaders(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("kcat is required in CI (apt-get install kcat): %v", err)
		}
		t.Skipf("kcat not installed (set CI to make this a failure): %v", err)
	}
	e := newTraceEnv(t)
	ts, _ := trace.ParseTraceState("vendor=abc")
	ctx, writer := e.tp.Tracer("app").Start(
		trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceState: ts})),
		"POST /orders")
	ids := e.writeTraced(t, ctx, "order-1")
	writer.End()
	e.forward(t, 1)

	want := outbox.TraceContextOf(ctx)
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, kcat, "-C", "-b", strings.Join(e.kc.Addrs(), ","), "-t", e.topic,
		"-o", "beginning", "-e", "-q", "-f", "%h\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 {
		t.Fatalf("kcat printed %d records, want 1:\n%s", len(lines), out)
	}
	hdrs := map[string]string{}
	for _, kv := range strings.Split(lines[0], ",") {
		k, v, _ := strings.Cut(kv, "=")
		hdrs[k] = v
	}
	if hdrs["traceparent"] != want.TraceParent || hdrs["tracestate"] != "vendor=abc" {
		t.Errorf("kcat headers %q, want traceparent=%s tracestate=vendor=abc", lines[0], want.TraceParent)
	}
	if hdrs[kafka.UUIDHeaderKey] != ids[0] {
		t.Errorf("kcat headers %q, want %s=%s", lines[0], kafka.UUIDHeaderKey, ids[0])
	}
}

// A batch stopped by a failure ends its span with an error status and the class.
func TestAFailedBatchSpanCarriesTheClass(t *testing.T) {
	e := newTraceEnv(t)
	e.kc.RequireFake(t)
	e.kc.FailProduce(t, e.topic, kerr.NetworkException, -1)
	e.writeTraced(t, context.Background(), "stuck")
	pub := e.publisher(t, adapter.Config{TracerProvider: e.tp, MaxRetries: -1})
	f := e.forwarder(t, pub, func(c *router.Config) { c.TracerProvider = e.tp })
	stop := start(t, f)
	waitFor(t, 20*time.Second, "a failed batch span", func() bool {
		for _, s := range e.spans("forward " + e.ocfg.Name) {
			if s.Status.Code == codes.Error {
				return true
			}
		}
		return false
	})
	stop()
	for _, s := range e.spans("forward " + e.ocfg.Name) {
		if s.Status.Code != codes.Error {
			continue
		}
		for _, kv := range s.Attributes {
			if string(kv.Key) == adapter.AttrErrorClass && kv.Value.AsString() != "retriable" {
				t.Errorf("%s = %q, want retriable", adapter.AttrErrorClass, kv.Value.AsString())
			}
			if string(kv.Key) == adapter.AttrErrorClass {
				return
			}
		}
		t.Errorf("failed batch span without %s: %v", adapter.AttrErrorClass, s.Attributes)
		return
	}
}
