package main

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/kafkatest"
	"github.com/millrace/millrace/internal/syncbuf"
)

var spanLine = regexp.MustCompile(`span trace=(\w+) id=(\w+) parent=(\S+) name="([^"]+)"`)

// The handler's span is in the request's trace, a child of the decorator's publish
// span, itself a child of the request span: one trace across Kafka.
func TestTheHandlerContinuesThePublishersTrace(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out syncbuf.Buffer
	if err := run(ctx, &out, c.Addrs(), topic, kafkatest.UniqueTopic(t)); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	type span struct{ trace, id, parent string }
	spans := map[string]span{}
	for _, m := range spanLine.FindAllStringSubmatch(out.String(), -1) {
		spans[m[4]] = span{m[1], m[2], m[3]}
	}
	req, send, process := spans["POST /orders"], spans["send "+topic], spans["process "+topic]
	if req.id == "" || send.id == "" || process.id == "" {
		t.Fatalf("missing spans, got %v\noutput:\n%s", spans, out.String())
	}
	if send.parent != req.id || process.parent != send.id {
		t.Errorf("parents: send's %s (want %s), process's %s (want %s)", send.parent, req.id, process.parent, send.id)
	}
	if send.trace != req.trace || process.trace != req.trace {
		t.Errorf("traces %s, %s, %s: want one", req.trace, send.trace, process.trace)
	}
	if !regexp.MustCompile(`handled \S+ in trace ` + req.trace).MatchString(out.String()) {
		t.Errorf("the handler's context is not in the request's trace:\n%s", out.String())
	}
}
