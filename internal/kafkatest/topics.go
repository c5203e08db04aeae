package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateTopic creates topic with the given number of partitions and the broker's
// default replication factor, and returns once every broker reports all its
// partitions with a leader, so that a client created afterwards (sarama included)
// sees the topic on its first metadata request. On a real cluster the topic is
// deleted when the test ends. It fails the test when the topic exists already or
// cannot be created.
func (c *Cluster) CreateTopic(tb testing.TB, topic string, partitions int32) {
	tb.Helper()
	if partitions < 1 {
		tb.Fatalf("kafkatest: CreateTopic(%q, %d): need at least 1 partition", topic, partitions)
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()

	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(adminTimeout / time.Millisecond)
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = partitions
	rt.ReplicationFactor = -1 // the broker's default.replication.factor
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, c.admin)
	if err == nil && len(resp.Topics) != 1 {
		err = fmt.Errorf("answer has %d topics, want 1", len(resp.Topics))
	}
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		tb.Fatalf("kafkatest: CreateTopic(%q, %d): %v", topic, partitions, err)
	}
	if c.fake == nil {
		tb.Cleanup(func() { c.deleteTopic(tb, topic) })
	}
	if err := c.waitTopic(ctx, topic, partitions); err != nil {
		tb.Fatalf("kafkatest: CreateTopic(%q, %d): created, but %v", topic, partitions, err)
	}
}

// NewTopic creates a topic with a unique name derived from the test's name, as
// CreateTopic does, and returns the name.
func (c *Cluster) NewTopic(tb testing.TB, partitions int32) string {
	tb.Helper()
	topic := UniqueTopic(tb)
	c.CreateTopic(tb, topic, partitions)
	return topic
}

var topicUnsafe = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// UniqueTopic returns a topic name unique to this call, derived from the test's name,
// without creating it.
func UniqueTopic(tb testing.TB) string {
	name := topicUnsafe.ReplaceAllString(tb.Name(), "-")
	if len(name) > 150 {
		name = name[:150]
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "kafkatest-" + name + "-" + hex.EncodeToString(b[:])
}

// waitTopic waits until every broker of the cluster reports topic with its
// partitions all led, because a real cluster propagates metadata to its brokers
// asynchronously and sarama asks any of them.
func (c *Cluster) waitTopic(ctx context.Context, topic string, partitions int32) error {
	var last error
	for {
		last = c.topicReady(ctx, topic, partitions)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not visible in time: %w", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) topicReady(ctx context.Context, topic string, partitions int32) error {
	meta, err := c.metadata(ctx, nil)
	if err != nil {
		return err
	}
	for _, b := range meta.Brokers {
		resp, err := c.metadata(ctx, c.admin.Broker(int(b.NodeID)), topic)
		if err != nil {
			return fmt.Errorf("broker %d: %w", b.NodeID, err)
		}
		if len(resp.Topics) != 1 {
			return fmt.Errorf("broker %d answered %d topics", b.NodeID, len(resp.Topics))
		}
		t := resp.Topics[0]
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return fmt.Errorf("broker %d: %w", b.NodeID, err)
		}
		if int32(len(t.Partitions)) != partitions {
			return fmt.Errorf("broker %d reports %d partitions, want %d", b.NodeID, len(t.Partitions), partitions)
		}
		for _, p := range t.Partitions {
			if p.Leader < 0 {
				return fmt.Errorf("broker %d reports partition %d without a leader", b.NodeID, p.Partition)
			}
		}
	}
	return nil
}

// deleteTopic deletes topic at the end of a test against a real cluster. A failure
// is only logged: the topic has a unique name and harms no other test.
func (c *Cluster) deleteTopic(tb testing.TB, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = int32(adminTimeout / time.Millisecond)
	req.TopicNames = []string{topic} // v0-v5
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(topic) // v6+
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, c.admin)
	if err == nil && len(resp.Topics) == 1 {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		tb.Logf("kafkatest: deleting topic %q: %v", topic, err)
	}
}

// SetMaxMessageBytes sets the topic's max.message.bytes, the largest record batch
// (after compression, with its batch header of about 70 bytes) a producer may write
// to it; the broker answers a larger produce with MESSAGE_TOO_LARGE. The in-process
// broker enforces it like Kafka. Note that sarama's own Producer.MaxMessageBytes
// (default 1 MiB) rejects larger messages before they reach the broker.
func (c *Cluster) SetMaxMessageBytes(tb testing.TB, topic string, n int) {
	tb.Helper()
	c.SetTopicConfig(tb, topic, "max.message.bytes", strconv.Itoa(n))
}

// SetTopicConfig sets one dynamic config of topic (such as "max.message.bytes" or
// "retention.ms") with IncrementalAlterConfigs, on the in-process cluster and on a
// real one alike; on a real cluster the topic should be the test's own.
func (c *Cluster) SetTopicConfig(tb testing.TB, topic, name, value string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeTopic
	res.ResourceName = topic
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name = name
	cfg.Op = kmsg.IncrementalAlterConfigOpSet
	cfg.Value = kmsg.StringPtr(value)
	res.Configs = append(res.Configs, cfg)
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, c.admin)
	if err == nil && len(resp.Resources) != 1 {
		err = fmt.Errorf("answer has %d resources, want 1", len(resp.Resources))
	}
	if err == nil {
		err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
		if err != nil && resp.Resources[0].ErrorMessage != nil {
			err = fmt.Errorf("%w: %s", err, *resp.Resources[0].ErrorMessage)
		}
	}
	if err != nil {
		tb.Fatalf("kafkatest: setting %s=%s on topic %q: %v", name, value, topic, err)
	}
}
