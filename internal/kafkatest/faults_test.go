package kafkatest_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/millrace/millrace/internal/kafkatest"
)

func TestFailProduce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     *kerr.Error
		want    error // nil: sarama retries it inside and the send succeeds
		written []string
	}{
		{"NETWORK_EXCEPTION reaches the caller, unwritten", kerr.NetworkException, sarama.ErrNetworkException, []string{"second"}},
		{"BROKER_NOT_AVAILABLE reaches the caller, unwritten", kerr.BrokerNotAvailable, sarama.ErrBrokerNotAvailable, []string{"second"}},
		{"REPLICA_NOT_AVAILABLE reaches the caller, unwritten", kerr.ReplicaNotAvailable, sarama.ErrReplicaNotAvailable, []string{"second"}},
		{"NOT_LEADER_OR_FOLLOWER once is retried inside sarama", kerr.NotLeaderForPartition, nil, []string{"first", "second"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := kafkatest.New(t)
			topic := c.NewTopic(t, 1)
			other := c.NewTopic(t, 1)
			p := syncProducer(t, c.Addrs(), nil)
			mustSend(t, p, other, "", "warm up the connection and metadata")

			h := c.FailProduce(t, topic, tc.err, 1)
			mustSend(t, p, other, "", "another topic is not affected")
			err := send(p, topic, "", "first")
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("SendMessage: err = %v, want %v", err, tc.want)
			}
			if h.Hits() != 1 {
				t.Fatalf("fault answered %d requests, want 1", h.Hits())
			}
			mustSend(t, p, topic, "", "second") // the fault is used up
			if got := values(c.ConsumeAll(t, topic, 200*time.Millisecond)); strings.Join(got, ",") != strings.Join(tc.written, ",") {
				t.Fatalf("topic holds %v, want %v", got, tc.written)
			}
		})
	}
}

func TestFailProduceNegativeCountFailsUntilRemoved(t *testing.T) {
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 1)
	p := syncProducer(t, c.Addrs(), nil)
	h := c.FailProduce(t, topic, kerr.NetworkException, -1)
	for i := range 3 {
		if err := send(p, topic, "", "x"); !errors.Is(err, sarama.ErrNetworkException) {
			t.Fatalf("send %d: err = %v, want ErrNetworkException", i, err)
		}
	}
	h.Remove()
	mustSend(t, p, topic, "", "y")
}

func TestFailProduceWhere(t *testing.T) {
	t.Run("only the batch holding a matching record fails, other partitions of the request are written", func(t *testing.T) {
		c := kafkatest.New(t)
		topic := c.NewTopic(t, 2)
		cfg := kafkatest.SaramaConfig()
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
		cfg.Producer.Flush.Frequency = 50 * time.Millisecond // both messages in one produce request
		p := syncProducer(t, c.Addrs(), cfg)

		h := c.FailProduceWhere(t, topic, kerr.NetworkException, 1, func(r kafkatest.Record) bool {
			return string(r.Key) == "poison" && r.Headers["kind"] == "bad" && r.Partition == 1 && r.Topic == topic
		})
		// Observe the produce requests to show both partitions went in one. When runs
		// on the broker's goroutine, once per entity a request carries.
		var mu sync.Mutex
		partitions := map[*kmsg.ProduceRequest]int{}
		obs := c.Fault(t, kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Count: -1, Observe: true, When: func(r kmsg.Request) bool {
			req := r.(*kmsg.ProduceRequest)
			mu.Lock()
			defer mu.Unlock()
			for _, rt := range req.Topics {
				partitions[req] = len(rt.Partitions)
			}
			return true
		}})
		err := p.SendMessages([]*sarama.ProducerMessage{
			{Topic: topic, Partition: 0, Key: sarama.StringEncoder("fine"), Value: sarama.StringEncoder("a")},
			{Topic: topic, Partition: 1, Key: sarama.StringEncoder("poison"), Value: sarama.StringEncoder("b"),
				Headers: []sarama.RecordHeader{{Key: []byte("kind"), Value: []byte("bad")}}},
		})
		var perrs sarama.ProducerErrors
		if !errors.As(err, &perrs) || len(perrs) != 1 {
			t.Fatalf("SendMessages: err = %v, want one failed message", err)
		}
		if k, _ := perrs[0].Msg.Key.Encode(); string(k) != "poison" || !errors.Is(perrs[0].Err, sarama.ErrNetworkException) {
			t.Fatalf("failed message %s with %v, want poison with ErrNetworkException", k, perrs[0].Err)
		}
		obs.Remove()
		mu.Lock()
		if len(partitions) != 1 {
			t.Errorf("the two messages went in %d produce requests, want 1: the case under test was not exercised", len(partitions))
		}
		mu.Unlock()
		if h.Hits() != 1 {
			t.Fatalf("fault answered %d batches, want 1", h.Hits())
		}
		mustSend(t, p, topic, "poison", "again") // count 1 is used up (manual partitioner: partition 0)
		if got := values(c.ConsumeAll(t, topic, 200*time.Millisecond)); strings.Join(got, ",") != "a,again" {
			t.Fatalf("topic holds %v, want a,again", got)
		}
	})

	t.Run("with a negative count every matching record fails and others pass", func(t *testing.T) {
		c := kafkatest.New(t)
		topic := c.NewTopic(t, 3)
		p := syncProducer(t, c.Addrs(), nil)
		c.FailProduceWhere(t, topic, kerr.BrokerNotAvailable, -1, func(r kafkatest.Record) bool {
			return strings.HasPrefix(string(r.Value), "bad")
		})
		for i := range 3 {
			if err := send(p, topic, "", "bad"+string(rune('0'+i))); !errors.Is(err, sarama.ErrBrokerNotAvailable) {
				t.Fatalf("bad send %d: err = %v, want ErrBrokerNotAvailable", i, err)
			}
			mustSend(t, p, topic, "", "good")
		}
		if n := len(c.ConsumeAll(t, topic, 200*time.Millisecond)); n != 3 {
			t.Fatalf("topic holds %d records, want the 3 good ones", n)
		}
	})
}

func TestMaxMessageBytesIsEnforced(t *testing.T) {
	big := strings.Repeat("x", 2000)

	t.Run("per topic, and raising it lets the message through", func(t *testing.T) {
		c := kafkatest.New(t)
		topic := c.NewTopic(t, 1)
		p := syncProducer(t, c.Addrs(), nil)
		c.SetMaxMessageBytes(t, topic, 1024)
		if err := send(p, topic, "", big); !errors.Is(err, sarama.ErrMessageSizeTooLarge) {
			t.Fatalf("2000 bytes into max.message.bytes=1024: err = %v, want ErrMessageSizeTooLarge", err)
		}
		mustSend(t, p, topic, "", "small")
		c.SetMaxMessageBytes(t, topic, 4096)
		mustSend(t, p, topic, "", big)
	})

	t.Run("broker-wide with BrokerConfigs", func(t *testing.T) {
		c := kafkatest.New(t, kafkatest.BrokerConfigs(map[string]string{"message.max.bytes": "1024"}))
		topic := c.NewTopic(t, 1)
		p := syncProducer(t, c.Addrs(), nil)
		if err := send(p, topic, "", big); !errors.Is(err, sarama.ErrMessageSizeTooLarge) {
			t.Fatalf("2000 bytes into message.max.bytes=1024: err = %v, want ErrMessageSizeTooLarge", err)
		}
		mustSend(t, p, topic, "", "small")
	})
}
