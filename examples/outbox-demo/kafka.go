package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// inProcessKafka is a one-broker Kafka cluster inside this process: franz-go's kfake,
// which speaks the Kafka protocol on 127.0.0.1, behind a TCP proxy (toxiproxy) that
// can be cut to simulate an outage.
//
// The trick is in listen: kfake advertises in its metadata whatever address its
// listener reports, so the broker's listener reports the proxy's address. Every
// client that bootstraps from Addrs then reaches the broker through the proxy, also
// for the connections it opens after reading the metadata. The demo's consumer and
// admin client instead dial the broker directly (DirectDialer): the outage is
// between the router and Kafka, not between Kafka and its readers.
//
// internal/kafkatest does the same with more options; it needs a testing.TB, so
// the demo has this small copy.
type inProcessKafka struct {
	cluster *kfake.Cluster
	server  *toxiproxy.ApiServer

	mu     sync.Mutex
	links  []proxyLink
	cut    bool
	closed bool
}

// proxyLink is the proxy in front of one broker listener.
type proxyLink struct {
	proxy    *toxiproxy.Proxy
	listen   string // the proxy's address, advertised by the broker
	upstream string // the broker's real address
}

// startKafka starts the in-process broker and its proxy.
func startKafka() (*inProcessKafka, error) {
	k := &inProcessKafka{server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ListenFn(k.listen))
	if err != nil {
		k.stopProxies()
		return nil, fmt.Errorf("in-process Kafka: %w", err)
	}
	k.cluster = cluster
	return k, nil
}

// listen is the kfake.ListenFn: it listens where kfake asked, starts a proxy in
// front of that listener on a random port, and returns the listener reporting the
// proxy's address.
func (k *inProcessKafka) listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	tp := toxiproxy.NewProxy(k.server, fmt.Sprintf("broker-%d", len(k.links)), "127.0.0.1:0", ln.Addr().String())
	nop := zerolog.Nop()
	tp.Logger = &nop
	if err := tp.Start(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("proxy in front of %s: %w", ln.Addr(), err)
	}
	addr, err := net.ResolveTCPAddr("tcp", tp.Listen)
	if err != nil {
		tp.Stop()
		ln.Close()
		return nil, err
	}
	k.links = append(k.links, proxyLink{proxy: tp, listen: tp.Listen, upstream: ln.Addr().String()})
	return &advertisingListener{Listener: ln, addr: addr, stop: tp.Stop}, nil
}

// advertisingListener is the broker's real listener reporting the proxy's address.
type advertisingListener struct {
	net.Listener
	addr net.Addr
	stop func() // stops the proxy when the broker closes its listener
}

func (l *advertisingListener) Addr() net.Addr { return l.addr }

func (l *advertisingListener) Close() error {
	err := l.Listener.Close()
	l.stop()
	return err
}

// Addrs returns the bootstrap addresses: the proxy's.
func (k *inProcessKafka) Addrs() []string { return k.cluster.ListenAddrs() }

// DirectDialer returns the kgo option that dials the broker itself instead of the
// proxy, so that a client keeps working while the proxy is cut.
func (k *inProcessKafka) DirectDialer() kgo.Opt {
	return kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		k.mu.Lock()
		for _, l := range k.links {
			if l.listen == host {
				host = l.upstream
			}
		}
		k.mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, host)
	})
}

// Cut drops every connection through the proxy and refuses new ones (connection
// refused), as if the broker had become unreachable, until Restore.
func (k *inProcessKafka) Cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cut = true
	for _, l := range k.links {
		l.proxy.Stop()
	}
}

// Restore accepts connections again, on the same addresses. Clients reconnect on
// their own.
func (k *inProcessKafka) Restore() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.cut || k.closed {
		return nil
	}
	k.cut = false
	for _, l := range k.links {
		if err := l.proxy.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
			return fmt.Errorf("restoring the proxy %s: %w", l.listen, err)
		}
	}
	return nil
}

// Close stops the broker and the proxy.
func (k *inProcessKafka) Close() {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.cluster.Close() // closes the listeners, which stop their proxies
	k.stopProxies()
}

func (k *inProcessKafka) stopProxies() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, l := range k.links {
		l.proxy.Stop() // a no-op on a stopped proxy
	}
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
