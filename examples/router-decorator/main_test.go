package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/kafkatest"
	"github.com/millrace/millrace/internal/syncbuf"
)

func TestRunConfirmsEveryOrderThroughTheDecorator(t *testing.T) {
	c := kafkatest.New(t)
	in, confirmed := c.NewTopic(t, 1), c.NewTopic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var out syncbuf.Buffer
	if err := run(ctx, &out, c.Addrs(), in, confirmed); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}

	// The output topic holds one confirmation per order, in order, each naming its
	// order's UUID.
	c.Consume(t, confirmed, len(orders), 10*time.Second)
	recs := c.ConsumeAll(t, confirmed, 500*time.Millisecond)
	if len(recs) != len(orders) {
		t.Fatalf("%s holds %d records, want %d", confirmed, len(recs), len(orders))
	}
	inputs := c.ConsumeAll(t, in, 500*time.Millisecond)
	if len(inputs) != len(orders) {
		t.Fatalf("%s holds %d records, want %d", in, len(inputs), len(orders))
	}
	for i, r := range recs {
		if want := "confirmed " + orders[i]; string(r.Value) != want {
			t.Errorf("confirmation %d = %q, want %q", i, r.Value, want)
		}
		if got, want := r.Headers["order_uuid"], inputs[i].Headers["_watermill_message_uuid"]; got == "" || got != want {
			t.Errorf("confirmation %d names order %q, want %q", i, got, want)
		}
	}

	// The decorator published the confirmations, and only them.
	for _, line := range []string{
		fmt.Sprintf(`received "confirmed order-3" on %s`, confirmed),
		fmt.Sprintf(`millrace_publisher_messages_published_total{topic=%q} %d`, confirmed, len(orders)),
		"publisher closed",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q", line)
		}
	}
	if strings.Contains(out.String(), fmt.Sprintf("topic=%q", in)) {
		t.Errorf("the decorator reports metrics for the input topic %s, which it never published to", in)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}

// What `go run` does without KAFKA_BROKERS: the in-process broker of kafkaBrokers, with
// the example's own topic names.
func TestRunOnTheInProcessBrokerOfMain(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "")
	brokers, stop, err := kafkaBrokers(ordersTopic, confirmedTopic)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out syncbuf.Buffer
	if err := run(ctx, &out, brokers, ordersTopic, confirmedTopic); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), `received "confirmed order-3"`) {
		t.Fatalf("output lacks %q:\n%s", `received "confirmed order-3"`, out.String())
	}
}
