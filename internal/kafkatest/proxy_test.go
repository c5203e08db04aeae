package kafkatest_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/millrace/millrace/internal/kafkatest"
)

// roundTrip returns the fastest of a few SendMessage calls to partition.
func roundTrip(t *testing.T, p sarama.SyncProducer, topic string, partition int32) time.Duration {
	t.Helper()
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: partition, Value: sarama.StringEncoder("x")})
		if err != nil {
			t.Fatalf("SendMessage to partition %d: %v", partition, err)
		}
		best = min(best, time.Since(start))
	}
	return best
}

func TestProxyLatencyAppliesToEveryBroker(t *testing.T) {
	c := kafkatest.New(t, kafkatest.Brokers(3), kafkatest.WithProxy())
	topic := c.NewTopic(t, 3)
	// One partition per broker, so that each broker is reached through the address
	// it advertises in metadata, not only the bootstrap one.
	for part := int32(0); part < 3; part++ {
		if err := c.Fake().MoveTopicPartition(topic, part, part); err != nil {
			t.Fatal(err)
		}
	}
	cfg := kafkatest.SaramaConfig()
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p := syncProducer(t, c.Addrs(), cfg)

	const latency = 20 * time.Millisecond
	for part := int32(0); part < 3; part++ {
		if d := roundTrip(t, p, topic, part); d >= 2*latency {
			t.Fatalf("partition %d: round trip %v before SetLatency, want < %v", part, d, 2*latency)
		}
	}
	c.Proxy().SetLatency(latency)
	for part := int32(0); part < 3; part++ {
		d := roundTrip(t, p, topic, part)
		t.Logf("partition %d (broker %d): round trip %v with %v latency each way", part, c.Fake().LeaderFor(topic, part), d, latency)
		if d < 2*latency {
			t.Errorf("partition %d: round trip %v with SetLatency(%v), want >= %v: the connection bypasses the proxy", part, d, latency, 2*latency)
		}
	}
	c.Proxy().SetLatency(0)
	for part := int32(0); part < 3; part++ {
		if d := roundTrip(t, p, topic, part); d >= 2*latency {
			t.Errorf("partition %d: round trip %v after SetLatency(0), want < %v", part, d, 2*latency)
		}
	}
}

func TestProxyCutFailsProducesUntilRestore(t *testing.T) {
	c := kafkatest.New(t, kafkatest.WithProxy())
	topic := c.NewTopic(t, 1)
	p := syncProducer(t, c.Addrs(), nil)
	mustSend(t, p, topic, "", "before")

	c.Proxy().Cut()
	start := time.Now()
	err := send(p, topic, "", "during")
	t.Logf("SendMessage during Cut failed after %v with %v", time.Since(start), err)
	var netErr net.Error
	switch {
	case err == nil:
		t.Fatal("SendMessage succeeded through a cut proxy")
	case errors.Is(err, sarama.ErrOutOfBrokers), errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	default:
		t.Fatalf("SendMessage during Cut: %v (%T), want a network or out-of-brokers error", err, err)
	}
	// The kit's own admin requests and readers go around the proxy.
	c.NewTopic(t, 1)
	if recs := c.ConsumeAll(t, topic, 200*time.Millisecond); len(recs) != 1 {
		t.Fatalf("direct ConsumeAll during Cut read %d records, want 1", len(recs))
	}

	c.Proxy().Restore()
	start = time.Now()
	if err := send(p, topic, "", "after"); err != nil {
		t.Fatalf("SendMessage after Restore: %v", err)
	}
	t.Logf("SendMessage after Restore took %v", time.Since(start))
	recs := kafkatest.Consume(t, c.Addrs(), topic, 2, 5*time.Second)
	if len(recs) != 2 || string(recs[0].Value) != "before" || string(recs[1].Value) != "after" {
		t.Fatalf("read %v, want before and after", values(recs))
	}
}

func values(recs []kafkatest.Record) []string {
	vs := make([]string, 0, len(recs))
	for _, r := range recs {
		vs = append(vs, string(r.Value))
	}
	return vs
}
