package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"

	"github.com/millrace/millrace/internal/kafkatest"
	"github.com/millrace/millrace/internal/syncbuf"
)

func TestRunPublishesEveryMessageOnce(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var out syncbuf.Buffer
	if err := run(ctx, &out, c.Addrs(), topic); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}

	// Every message is in the topic exactly once, with its Watermill UUID header.
	want := map[string]bool{"order-1": true, "order-2": true, "order-3": true}
	for i := 1; i <= batchSize; i++ {
		want[fmt.Sprintf("batch-%03d", i)] = true
	}
	c.Consume(t, topic, len(want), 10*time.Second) // waits until they are all there
	recs := c.ConsumeAll(t, topic, 500*time.Millisecond)
	if len(recs) != len(want) {
		t.Fatalf("topic holds %d records, want %d", len(recs), len(want))
	}
	uuids := map[string]bool{}
	for _, r := range recs {
		if !want[string(r.Value)] {
			t.Fatalf("unexpected or repeated record %q", r.Value)
		}
		delete(want, string(r.Value))
		id := r.Headers[kafka.UUIDHeaderKey]
		if id == "" || uuids[id] {
			t.Fatalf("record %q has UUID header %q: missing or repeated", r.Value, id)
		}
		uuids[id] = true
	}

	for _, line := range []string{
		"metrics of decorated watermill-kafka: published=3 given_up=0",
		fmt.Sprintf("metrics of batching NewKafka: published=%d given_up=0 retries=0 calls=1", batchSize),
		"health of decorated watermill-kafka: healthy",
		"health of batching NewKafka: healthy",
		"GET /readyz: 200",
		"GET /livez: 200",
		fmt.Sprintf(`millrace_publisher_messages_published_total{topic=%q} %d`, topic, 3+batchSize),
		"publisher closed",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q", line)
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
	if err := run(ctx, &out, brokers, topic); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "metrics of decorated watermill-kafka: published=3 given_up=0") {
		t.Fatalf("output lacks %q:\n%s", "metrics of decorated watermill-kafka: published=3 given_up=0", out.String())
	}
}
