package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/millrace/millrace/internal/brokerproxy"
)

// inProcessKafka is a one-broker Kafka cluster inside this process: franz-go's kfake,
// which speaks the Kafka protocol on 127.0.0.1, behind a TCP proxy
// (internal/brokerproxy) that the broker advertises and that can be cut to simulate
// an outage. The demo's consumer and admin client dial the broker directly
// (DirectDialer): the outage is between the router and Kafka, not between Kafka and
// its readers.
type inProcessKafka struct {
	cluster *kfake.Cluster
	proxies *brokerproxy.Proxies
}

// startKafka starts the in-process broker and its proxy.
func startKafka() (*inProcessKafka, error) {
	k := &inProcessKafka{proxies: brokerproxy.New()}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ListenFn(k.proxies.Listen))
	if err != nil {
		k.proxies.Close()
		return nil, fmt.Errorf("in-process Kafka: %w", err)
	}
	k.cluster = cluster
	return k, nil
}

// Addrs returns the bootstrap addresses: the proxy's.
func (k *inProcessKafka) Addrs() []string { return k.cluster.ListenAddrs() }

// DirectDialer returns the kgo option that dials the broker itself instead of the
// proxy, so that a client keeps working while the proxy is cut.
func (k *inProcessKafka) DirectDialer() kgo.Opt { return kgo.Dialer(k.proxies.Dial) }

// Cut drops every connection through the proxy and refuses new ones (connection
// refused), as if the broker had become unreachable, until Restore.
func (k *inProcessKafka) Cut() { k.proxies.Cut() }

// Restore accepts connections again, on the same addresses. Clients reconnect on
// their own.
func (k *inProcessKafka) Restore() error { return k.proxies.Restore() }

// Close stops the broker and the proxy.
func (k *inProcessKafka) Close() {
	k.cluster.Close() // closes the listeners, which stop their proxies
	k.proxies.Close()
}

// adminTimeout bounds each administrative request (topic creation and deletion).
const adminTimeout = 15 * time.Second

// createTopic creates topic, which must not exist yet, with partitions partitions
// and, when maxMessageBytes > 0, the topic config max.message.bytes: the largest
// record batch the broker accepts for it. A cluster may refuse topic configs (a
// create-topic policy): then the topic is created without it and limited is
// false. It returns once the topic's partitions all have a leader.
func createTopic(ctx context.Context, admin *kgo.Client, topic string, partitions int32, maxMessageBytes int) (limited bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	create := func(configs map[string]string) error {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = int32(adminTimeout / time.Millisecond)
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = topic
		rt.NumPartitions = partitions
		rt.ReplicationFactor = -1 // the broker's default.replication.factor
		for name, value := range configs {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			c.Name, c.Value = name, kmsg.StringPtr(value)
			rt.Configs = append(rt.Configs, c)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, admin)
		if err != nil {
			return err
		}
		if len(resp.Topics) != 1 {
			return fmt.Errorf("answer has %d topics, want 1", len(resp.Topics))
		}
		return kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}

	if maxMessageBytes > 0 {
		err = create(map[string]string{"max.message.bytes": strconv.Itoa(maxMessageBytes)})
		limited = err == nil
		if errors.Is(err, kerr.InvalidConfig) || errors.Is(err, kerr.PolicyViolation) {
			err = create(nil)
		}
	} else {
		err = create(nil)
	}
	if err != nil {
		return false, fmt.Errorf("create topic %q: %w", topic, err)
	}
	return limited, waitTopic(ctx, admin, topic)
}

// waitTopic waits until the cluster reports every partition of topic with a
// leader: a real cluster spreads new metadata to its brokers asynchronously.
func waitTopic(ctx context.Context, admin *kgo.Client, topic string) error {
	for {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, admin)
		if err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 && len(resp.Topics[0].Partitions) > 0 {
			ready := true
			for _, p := range resp.Topics[0].Partitions {
				ready = ready && p.Leader >= 0
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %q created but not ready in time: %w", topic, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deleteTopic deletes topic (on a real cluster, at the end of a run).
func deleteTopic(ctx context.Context, admin *kgo.Client, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = int32(adminTimeout / time.Millisecond)
	req.TopicNames = []string{topic} // v0-v5
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(topic) // v6+
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, admin)
	if err == nil && len(resp.Topics) == 1 {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("delete topic %q: %w", topic, err)
	}
	return nil
}
