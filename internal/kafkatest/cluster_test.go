package kafkatest_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/millrace/millrace/internal/kafkatest"
)

// TestAgainstKafkaBrokers runs the real-cluster path of the kit against an in-process
// cluster that it reaches only through KAFKA_BROKERS, as it would reach a real one.
func TestAgainstKafkaBrokers(t *testing.T) {
	backing := kafkatest.New(t, kafkatest.Brokers(3))
	t.Setenv(kafkatest.EnvBrokers, " "+strings.Join(backing.Addrs(), " , ")+" ")

	for _, tc := range []struct {
		name string
		fn   func(tb testing.TB)
	}{
		{"WithProxy skips", func(tb testing.TB) { kafkatest.New(tb, kafkatest.WithProxy()) }},
		{"BrokerConfigs skips", func(tb testing.TB) {
			kafkatest.New(tb, kafkatest.BrokerConfigs(map[string]string{"message.max.bytes": "1"}))
		}},
		{"RequireFake skips", func(tb testing.TB) { kafkatest.New(tb).RequireFake(tb) }},
		{"Fault skips", func(tb testing.TB) { kafkatest.New(tb).Fault(tb, kfake.Fault{}) }},
		{"FailProduce skips", func(tb testing.TB) { kafkatest.New(tb).FailProduce(tb, "t", kerr.NetworkException, 1) }},
		{"FailProduceWhere skips", func(tb testing.TB) {
			kafkatest.New(tb).FailProduceWhere(tb, "t", kerr.NetworkException, 1, func(kafkatest.Record) bool { return true })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := run(t, tc.fn)
			if !out.skipped || out.failed || !strings.Contains(out.msg, kafkatest.EnvBrokers) {
				t.Fatalf("outcome %+v, want a skip naming %s", out, kafkatest.EnvBrokers)
			}
		})
	}

	var topic string
	t.Run("topics are created, written, read and deleted at the end", func(t *testing.T) {
		c := kafkatest.New(t, kafkatest.Brokers(5)) // ignored: the cluster is what it is
		if c.Fake() != nil || c.Proxy() != nil {
			t.Fatal("Fake or Proxy set against KAFKA_BROKERS")
		}
		if got, want := strings.Join(c.Addrs(), ","), strings.Join(backing.Addrs(), ","); got != want {
			t.Fatalf("Addrs() = %s, want %s", got, want)
		}
		topic = c.NewTopic(t, 3)
		c.SetMaxMessageBytes(t, topic, 1024)
		p := syncProducer(t, c.Addrs(), nil)
		if err := send(p, topic, "", strings.Repeat("x", 2000)); !errors.Is(err, sarama.ErrMessageSizeTooLarge) {
			t.Fatalf("oversized send: err = %v, want ErrMessageSizeTooLarge", err)
		}
		mustSend(t, p, topic, "k", "v")
		if recs := kafkatest.Consume(t, c.Addrs(), topic, 1, 5*time.Second); string(recs[0].Value) != "v" {
			t.Fatalf("read %v, want v", values(recs))
		}
	})
	client, err := sarama.NewClient(backing.Addrs(), kafkatest.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Partitions(topic); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		t.Fatalf("topic %s after its test ended: err = %v, want ErrUnknownTopicOrPartition (deleted)", topic, err)
	}
}

func TestFailuresSayWhatWentWrong(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 2)
	p := syncProducer(t, c.Addrs(), nil)
	mustSend(t, p, topic, "a", "1")
	mustSend(t, p, topic, "b", "2")

	for _, tc := range []struct {
		name string
		fn   func(tb testing.TB)
		want string
	}{
		{"Consume short of n says how many it read", func(tb testing.TB) {
			kafkatest.Consume(tb, c.Addrs(), topic, 5, 300*time.Millisecond)
		}, "consumed 2 records"},
		{"creating an existing topic fails", func(tb testing.TB) { c.CreateTopic(tb, topic, 1) }, "TOPIC_ALREADY_EXISTS"},
		{"zero partitions is refused", func(tb testing.TB) { c.NewTopic(tb, 0) }, "at least 1 partition"},
		{"FailProduce with count 0 is refused", func(tb testing.TB) { c.FailProduce(tb, topic, kerr.NetworkException, 0) }, "count must be positive"},
		{"FailProduceWhere on a missing topic fails", func(tb testing.TB) {
			c.FailProduceWhere(tb, "missing", kerr.NetworkException, 1, func(kafkatest.Record) bool { return true })
		}, "UNKNOWN_TOPIC_OR_PARTITION"},
		{"RequireFake passes on the in-process cluster", func(tb testing.TB) { c.RequireFake(tb) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := run(t, tc.fn)
			if tc.want == "" {
				if out.failed || out.skipped {
					t.Fatalf("outcome %+v, want a pass", out)
				}
				return
			}
			if !out.failed || !strings.Contains(out.msg, tc.want) {
				t.Fatalf("outcome %+v, want a failure containing %q", out, tc.want)
			}
		})
	}
}

func TestAddedBrokerIsProxiedToo(t *testing.T) {
	c := kafkatest.New(t, kafkatest.WithProxy())
	node, _, err := c.Fake().AddNode(-1, 0)
	if err != nil {
		t.Fatal(err)
	}
	topic := c.NewTopic(t, 1)
	if err := c.Fake().MoveTopicPartition(topic, 0, node); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Proxy().Addrs()); n != 2 {
		t.Fatalf("proxy has %d addresses, want 2", n)
	}
	p := syncProducer(t, c.Addrs(), nil)
	mustSend(t, p, topic, "", "warm up")
	c.Proxy().SetLatency(20 * time.Millisecond)
	start := time.Now()
	mustSend(t, p, topic, "", "slow")
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("produce to the added broker took %v, want >= 40ms through the proxy", d)
	}
}

func TestAutoCreateTopics(t *testing.T) {
	c := kafkatest.New(t, kafkatest.AutoCreateTopics())
	cfg := kafkatest.SaramaConfig()
	cfg.Metadata.AllowAutoTopicCreation = true
	p := syncProducer(t, c.Addrs(), cfg)
	topic := kafkatest.UniqueTopic(t)
	mustSend(t, p, topic, "", "v")
	if recs := c.Consume(t, topic, 1, 5*time.Second); string(recs[0].Value) != "v" {
		t.Fatalf("read %v, want v", values(recs))
	}
}
