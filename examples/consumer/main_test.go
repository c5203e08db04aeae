package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"

	"github.com/millrace/millrace/internal/kafkatest"
	"github.com/millrace/millrace/internal/syncbuf"
)

func TestRunHandlesTheDuplicatedMessageOnce(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var out syncbuf.Buffer
	if err := run(ctx, &out, c.Addrs(), topic, kafkatest.UniqueTopic(t)); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}

	// The copy really went through Kafka: three records, two with the same UUID.
	c.Consume(t, topic, 3, 10*time.Second)
	recs := c.ConsumeAll(t, topic, 500*time.Millisecond)
	if len(recs) != 3 {
		t.Fatalf("topic holds %d records, want 3", len(recs))
	}
	if a, b := recs[0].Headers[kafka.UUIDHeaderKey], recs[2].Headers[kafka.UUIDHeaderKey]; a == "" || a != b {
		t.Fatalf("records 0 and 2 have UUIDs %q and %q, want the same", a, b)
	}

	for _, tt := range []struct {
		prefix string
		want   int
	}{
		{"handled payment-1 (", 1},
		{"dropped duplicate payment-1 (", 1},
		{"failed payment-2 (", 1},
		{"handled payment-2 (", 1}, // the redelivery of the failure was not dropped
		{"handled 2 messages, dropped 1 duplicate(s)", 1},
	} {
		got := 0
		for line := range strings.Lines(out.String()) {
			if strings.HasPrefix(line, tt.prefix) {
				got++
			}
		}
		if got != tt.want {
			t.Errorf("%d lines start with %q, want %d", got, tt.prefix, tt.want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}

// What `go run` does without KAFKA_BROKERS: the in-process broker of kafkaBrokers, with
// the example's own topic names.
func TestRunOnTheInProcessBrokerOfMain(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "")
	brokers, stop, err := kafkaBrokers(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out syncbuf.Buffer
	if err := run(ctx, &out, brokers, topic, "millrace-example-consumer"); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "handled 2 messages, dropped 1 duplicate(s)") {
		t.Fatalf("output lacks %q:\n%s", "handled 2 messages, dropped 1 duplicate(s)", out.String())
	}
}
