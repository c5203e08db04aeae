package adapter_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/kafkatest"
)

// benchBatch is the number of messages of one Publish call in the benchmarks.
const benchBatch = 1000

// benchMessages returns benchBatch outbox-like messages: a 256-byte payload and two
// metadata entries.
func benchMessages() []*message.Message {
	payload := []byte(strings.Repeat(`{"order":42,"status":"paid"}`, 10)[:256])
	msgs := make([]*message.Message, benchBatch)
	for i := range msgs {
		m := message.NewMessage(watermill.NewUUID(), payload)
		m.Metadata.Set("event_type", "OrderPaid")
		m.Metadata.Set("aggregate_id", fmt.Sprintf("order-%d", i%50))
		msgs[i] = m
	}
	return msgs
}

// benchPublishers are the publishers compared, each built on the given brokers:
// KafkaPublisher with its defaults ("batching": franz-go, snappy), the same
// uncompressed like watermill-kafka's default, and watermill-kafka's publisher.
//
// watermill-kafka runs with its default sarama configuration
// (DefaultSaramaSyncPublisherConfig: not idempotent, 5 requests in flight, 10 retries)
// except RequiredAcks, set to WaitForAll like KafkaPublisher's default, so that both
// wait for the same acknowledgement.
var benchPublishers = []struct {
	name string
	new  func(b *testing.B, brokers []string) message.Publisher
}{
	{"batching", func(b *testing.B, brokers []string) message.Publisher {
		p, err := adapter.NewKafkaPublisher(adapter.KafkaConfig{Brokers: brokers})
		if err != nil {
			b.Fatal(err)
		}
		return p
	}},
	{"batching-uncompressed", func(b *testing.B, brokers []string) message.Publisher {
		p, err := adapter.NewKafkaPublisher(adapter.KafkaConfig{Brokers: brokers, Compression: adapter.CompressionNone})
		if err != nil {
			b.Fatal(err)
		}
		return p
	}},
	{"watermill-kafka", func(b *testing.B, brokers []string) message.Publisher {
		sc := kafka.DefaultSaramaSyncPublisherConfig()
		sc.Producer.RequiredAcks = sarama.WaitForAll
		p, err := kafka.NewPublisher(kafka.PublisherConfig{
			Brokers:               brokers,
			Marshaler:             kafka.DefaultMarshaler{},
			OverwriteSaramaConfig: sc,
		}, watermill.NopLogger{})
		if err != nil {
			b.Fatal(err)
		}
		return p
	}},
}

// BenchmarkKafkaPublish1000 publishes 1000 messages per call with KafkaPublisher
// ("batching", "batching-uncompressed") and with watermill-kafka's publisher, on the
// same in-process broker (or KAFKA_BROKERS), directly ("latency-0") and through the
// kit's proxy adding 1 ms each way ("latency-1ms"). It reports msgs/s. Allocations are process-wide and so include
// the in-process broker's; BenchmarkKafkaPublishAllocs measures the client alone.
func BenchmarkKafkaPublish1000(b *testing.B) {
	msgs := benchMessages()
	run := func(b *testing.B, latency time.Duration) {
		var opts []kafkatest.Option
		if latency > 0 {
			opts = append(opts, kafkatest.WithProxy())
		}
		c := kafkatest.New(b, opts...)
		if latency > 0 {
			c.Proxy().SetLatency(latency)
		}
		for _, bp := range benchPublishers {
			b.Run(bp.name, func(b *testing.B) {
				topic := c.NewTopic(b, 6)
				p := bp.new(b, c.Addrs())
				defer p.Close()
				benchPublish(b, p, topic, msgs)
			})
		}
	}
	b.Run("latency-0", func(b *testing.B) { run(b, 0) })
	b.Run("latency-1ms", func(b *testing.B) { run(b, time.Millisecond) })
}

// BenchmarkKafkaPublishAllocs is BenchmarkKafkaPublish1000 without latency against a
// broker in a child process (or KAFKA_BROKERS), so that allocs/msg counts the
// client's allocations only: marshaling, the client and the publisher.
func BenchmarkKafkaPublishAllocs(b *testing.B) {
	msgs := benchMessages()
	brokers, topic := benchBrokerProcess(b)
	for _, bp := range benchPublishers {
		b.Run(bp.name, func(b *testing.B) {
			p := bp.new(b, brokers)
			defer p.Close()
			benchPublish(b, p, topic, msgs)
		})
	}
}

func benchPublish(b *testing.B, p message.Publisher, topic string, msgs []*message.Message) {
	// Warm up: connections, metadata, producer ID.
	if err := p.Publish(topic, msgs[:10]...); err != nil {
		b.Fatalf("Publish: %v", err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Publish(topic, msgs...); err != nil {
			b.Fatalf("Publish: %v", err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	n := float64(b.N * len(msgs))
	b.ReportMetric(n/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/msg")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/msg")
}

// benchTopic is the topic the child-process broker is seeded with.
const benchTopic = "millrace-bench"

const benchBrokerEnv = "MILLRACE_BENCH_BROKER"

// benchBrokerProcess returns KAFKA_BROKERS and a new topic there when it is set,
// otherwise starts an in-process fake broker in a child process (this test binary
// running TestKafkaBenchBrokerProcess), stopped when the benchmark ends, and its
// seeded topic.
func benchBrokerProcess(b *testing.B) (brokers []string, topic string) {
	b.Helper()
	if env := os.Getenv(kafkatest.EnvBrokers); env != "" {
		c := kafkatest.New(b)
		return c.Addrs(), c.NewTopic(b, 6)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKafkaBenchBrokerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), benchBrokerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close() // the child exits when its stdin closes
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addrs, ok := strings.CutPrefix(sc.Text(), "BROKERS "); ok {
			go func() { // keep draining the child's output
				for sc.Scan() {
				}
			}()
			return strings.Split(addrs, ","), benchTopic
		}
	}
	b.Fatalf("the broker process did not report its address: %v", sc.Err())
	return nil, ""
}

// TestKafkaBenchBrokerProcess is not a test: it is the broker process of
// BenchmarkKafkaPublishAllocs, and skips unless started by it.
func TestKafkaBenchBrokerProcess(t *testing.T) {
	if os.Getenv(benchBrokerEnv) == "" {
		t.Skip("the broker process of BenchmarkKafkaPublishAllocs; runs only when started by it")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, benchTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Printf("BROKERS %s\n", strings.Join(c.ListenAddrs(), ","))
	_, _ = bufio.NewReader(os.Stdin).ReadByte() // until the parent closes stdin
}

// BenchmarkKafkaPublishKeys publishes one call of 1000 small messages spread over
// 1, 10, 100 or 1000 keys, through the kit's proxy adding 1 ms each way, with
// KafkaPublisher ("millrace") and with watermill-kafka's publisher ("stock", its
// partitioning marshaler on the same key), on the same in-process broker. It reports
// msgs/s and the produce requests the broker saw per call (produce-reqs/op).
func BenchmarkKafkaPublishKeys(b *testing.B) {
	c := kafkatest.New(b, kafkatest.WithProxy())
	c.RequireFake(b)
	c.Proxy().SetLatency(time.Millisecond)
	produces := c.Fault(b, kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Count: -1, Observe: true})
	for _, keys := range []int{1, 10, 100, 1000} {
		msgs := benchMessages()
		for i, m := range msgs {
			m.Metadata.Set("key", fmt.Sprintf("key-%d", i%keys))
		}
		for _, pub := range []struct {
			name string
			new  func() (message.Publisher, error)
		}{
			{"millrace", func() (message.Publisher, error) {
				return adapter.NewKafkaPublisher(adapter.KafkaConfig{Brokers: c.Addrs(), Marshaler: adapter.KeyFromMetadata("key")})
			}},
			{"stock", func() (message.Publisher, error) {
				sc := kafka.DefaultSaramaSyncPublisherConfig()
				sc.Producer.RequiredAcks = sarama.WaitForAll
				return kafka.NewPublisher(kafka.PublisherConfig{
					Brokers:               c.Addrs(),
					Marshaler:             kafka.NewWithPartitioningMarshaler(func(_ string, m *message.Message) (string, error) { return m.Metadata.Get("key"), nil }),
					OverwriteSaramaConfig: sc,
				}, watermill.NopLogger{})
			}},
		} {
			b.Run(fmt.Sprintf("keys-%d/%s", keys, pub.name), func(b *testing.B) {
				topic := c.NewTopic(b, 6)
				p, err := pub.new()
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				if err := p.Publish(topic, msgs[:10]...); err != nil { // connections, metadata
					b.Fatalf("Publish: %v", err)
				}
				before := produces.Hits()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := p.Publish(topic, msgs...); err != nil {
						b.Fatalf("Publish: %v", err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "msgs/s")
				b.ReportMetric(float64(produces.Hits()-before)/float64(b.N), "produce-reqs/op")
			})
		}
	}
}
