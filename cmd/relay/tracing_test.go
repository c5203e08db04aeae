package main

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/millrace/millrace/internal/kafkatest"
)

func TestTracingIsOffUnlessTheOTELVariablesAskForIt(t *testing.T) {
	tests := []struct {
		env     map[string]string
		on      bool
		errPart string
	}{
		{env: nil, on: false},
		{env: map[string]string{"OTEL_SERVICE_NAME": "x"}, on: false},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, on: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, on: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, on: false},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, on: false},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, errPart: "OTEL_TRACES_EXPORTER"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, errPart: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, on: true},
	}
	for _, tt := range tests {
		on, err := tracingEnabled(tt.env)
		if tt.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("%v: err = %v, want one naming %s", tt.env, err, tt.errPart)
			}
			continue
		}
		if err != nil || on != tt.on {
			t.Errorf("%v: on = %v, err = %v; want %v", tt.env, on, err, tt.on)
		}
	}
}

// otlpReceiver is an OTLP/HTTP trace endpoint that keeps what it receives.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	svc   map[string]bool // service.name values seen
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				o.svc[a.GetValue().GetStringValue()] = true
			}
		}
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	_, _ = w.Write(b)
}

func (o *otlpReceiver) named(prefix string) []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range o.spans {
		if strings.HasPrefix(s.Name, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// A relay started with OTEL_EXPORTER_OTLP_ENDPOINT exports its batch spans over
// OTLP/HTTP, linked to the span of the event's writer, under its service name.
func TestRelayExportsSpansOverOTLPWhenAnEndpointIsSet(t *testing.T) {
	d := postgresDB(t)
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 1)
	cfg := newOutbox(t, d)
	recv := &otlpReceiver{svc: map[string]bool{}}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)

	out := &outputLog{}
	env := relayEnv(d, cfg, c.Addrs(), "RELAY_MIGRATE=true",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+srv.URL, "OTEL_BSP_SCHEDULE_DELAY=50")
	p := startRelay(t, out, env)
	p.httpAddr()

	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true}))
	if err := writeTx(ctx, d.db, cfg, topic, []event{{uuid: watermill.NewUUID(), payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	rec := c.Consume(t, topic, 1, 20*time.Second)[0]
	if got := rec.Headers["traceparent"]; got != "00-"+tid.String()+"-"+sid.String()+"-01" {
		t.Errorf("record's traceparent = %q, want the writer's", got)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("relay exited with %d", code)
	}

	batches := recv.named("forward " + cfg.Name)
	if len(batches) == 0 {
		t.Fatalf("no batch span received over OTLP (received %d spans)", len(recv.named("")))
	}
	linked := false
	for _, b := range batches {
		for _, l := range b.Links {
			linked = linked || (hex.EncodeToString(l.TraceId) == tid.String() && hex.EncodeToString(l.SpanId) == sid.String())
		}
	}
	if !linked {
		t.Error("no batch span links to the writer's span")
	}
	if len(recv.named("send "+topic)) == 0 {
		t.Error("no publish span received")
	}
	if !recv.svc[defaultServiceName] {
		t.Errorf("service names %v, want %s", recv.svc, defaultServiceName)
	}
}

// Without OTEL_* variables the relay exports nothing, even with a collector
// listening on the default port's stand-in.
func TestRelayExportsNoSpansByDefault(t *testing.T) {
	tp, shutdown, err := setupTracing(context.Background(), map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	_, span := tp.Tracer("x").Start(context.Background(), "s")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Error("the default tracer provider records spans; tracing must be off by default")
	}
	span.End()
}
