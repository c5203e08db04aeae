package benchrelay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/millrace/millrace/internal/brokerproxy"
)

// adminTimeout bounds each administrative request (topic creation and deletion).
const adminTimeout = 15 * time.Second

// latencyToxic is toxiproxy's latency toxic with sub-millisecond latencies: the
// stock toxic counts whole milliseconds, so it cannot add 2.5 ms. Like the stock
// one it delays each chunk relative to its arrival, so data in flight is pipelined
// (a propagation delay), and chunks never overtake each other.
//
// Go timers on this kind of VM fire on a millisecond grain (a 2.5 ms sleep took 3.2 ms
// on average when measured), so a fractional latency is dithered: each chunk is
// delayed by the whole milliseconds below the latency or one more, at random, with
// the fraction as the probability of one more (2.5 ms: 2 or 3 ms, half each). The mean
// is then right, like a network with ±0.5 ms of jitter; measureRTT reports what the
// proxy actually adds.
type latencyToxic struct {
	Micros int64 `json:"latency_us"`
}

// latencyToxicType is the toxiproxy type name of latencyToxic.
const latencyToxicType = "benchrelay_latency_us"

func init() { toxics.Register(latencyToxicType, new(latencyToxic)) }

func (t *latencyToxic) GetBufferSize() int { return 1024 }

// delay returns the delay of the next chunk.
func (t *latencyToxic) delay() time.Duration {
	d := time.Duration(t.Micros) * time.Microsecond
	whole := d.Truncate(time.Millisecond)
	if frac := d - whole; frac > 0 && rand.Int64N(int64(time.Millisecond)) < int64(frac) {
		whole += time.Millisecond
	}
	return whole
}

func (t *latencyToxic) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if wait := t.delay() - time.Since(c.Timestamp); wait > 0 {
				timer := time.NewTimer(wait)
				select {
				case <-timer.C:
				case <-stub.Interrupt:
					timer.Stop()
					stub.Output <- c // never drop data
					return
				}
			}
			stub.Output <- c
		}
	}
}

// kafkaEnv is the Kafka of a run: an in-process kfake broker behind an in-process
// toxiproxy (whose addresses the broker advertises, so producers cannot bypass it),
// or the real cluster of KAFKA_BROKERS (no proxy, no latency injection). The
// benchmark's own consumer and admin client always reach the broker directly, so
// the injected latency is on the relay's produce path only.
type kafkaEnv struct {
	fake    *kfake.Cluster       // nil for a real cluster
	proxies *brokerproxy.Proxies // nil for a real cluster

	addrs []string // bootstrap addresses for producers
	admin *kgo.Client
}

// startKafka starts the in-process broker behind its proxy, or connects to brokers
// when given.
func startKafka(ctx context.Context, brokers []string) (*kafkaEnv, error) {
	k := &kafkaEnv{}
	if len(brokers) > 0 {
		k.addrs = brokers
	} else {
		k.proxies = brokerproxy.New()
		fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ListenFn(k.proxies.Listen))
		if err != nil {
			k.proxies.Close()
			return nil, fmt.Errorf("start in-process kafka: %w", err)
		}
		k.fake = fake
		k.addrs = fake.ListenAddrs() // the proxy's addresses
	}
	admin, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(k.addrs...),
		kgo.ClientID("bench-relay-admin"),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	}, k.directDialer()...)...)
	if err != nil {
		k.close()
		return nil, fmt.Errorf("kafka admin client: %w", err)
	}
	k.admin = admin
	pctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	if err := admin.Ping(pctx); err != nil {
		k.close()
		return nil, fmt.Errorf("kafka at %s unreachable: %w", strings.Join(k.addrs, ","), err)
	}
	return k, nil
}

// setLatency delays every chunk through the proxy by d in each direction.
func (k *kafkaEnv) setLatency(d time.Duration) error {
	if k.fake == nil {
		if d > 0 {
			return errors.New("latency injection needs the in-process broker (KAFKA_BROKERS is set)")
		}
		return nil
	}
	return k.proxies.Setup(func(tp *toxiproxy.Proxy) error { return setProxyLatency(tp, d) })
}

func setProxyLatency(tp *toxiproxy.Proxy, d time.Duration) error {
	names := []struct{ name, stream string }{{"bench_up", "upstream"}, {"bench_down", "downstream"}}
	for _, n := range names {
		if err := tp.Toxics.RemoveToxic(context.Background(), n.name); err != nil && !errors.Is(err, toxiproxy.ErrToxicNotFound) {
			return err
		}
	}
	if d <= 0 {
		return nil
	}
	for _, n := range names {
		js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":{"latency_us":%d}}`,
			n.name, latencyToxicType, n.stream, d.Microseconds())
		if _, err := tp.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			return err
		}
	}
	return nil
}

// directDialer makes a franz-go client reach the broker itself rather than its
// proxy (the broker advertises the proxy's address, so the mapping is at dial time).
func (k *kafkaEnv) directDialer() []kgo.Opt {
	if k.fake == nil {
		return nil
	}
	return []kgo.Opt{kgo.Dialer(k.proxies.Dial)}
}

// measureRTT returns the median and mean round trip of a tiny request (ApiVersions v0) on a
// connection through the proxy to the first broker, as the relays' producers see it.
func (k *kafkaEnv) measureRTT(ctx context.Context, n int) (median, mean time.Duration, err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", k.addrs[0])
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	// Size, then header v1: api key 18 (ApiVersions), version 0, correlation id, client id.
	clientID := "bench-relay-rtt"
	req := binary.BigEndian.AppendUint32(nil, uint32(10+len(clientID)))
	req = binary.BigEndian.AppendUint16(req, 18)
	req = binary.BigEndian.AppendUint16(req, 0)
	req = binary.BigEndian.AppendUint32(req, 1)
	req = binary.BigEndian.AppendUint16(req, uint16(len(clientID)))
	req = append(req, clientID...)
	rtts := make([]time.Duration, 0, n)
	var size [4]byte
	buf := make([]byte, 64<<10)
	for range n {
		t0 := time.Now()
		if _, err := conn.Write(req); err != nil {
			return 0, 0, err
		}
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			return 0, 0, err
		}
		body := int(binary.BigEndian.Uint32(size[:]))
		if body > len(buf) {
			return 0, 0, fmt.Errorf("ApiVersions answer of %d bytes", body)
		}
		if _, err := io.ReadFull(conn, buf[:body]); err != nil {
			return 0, 0, err
		}
		rtts = append(rtts, time.Since(t0))
		time.Sleep(time.Duration(rand.Int64N(int64(2 * time.Millisecond)))) // spread over timer phases
	}
	var sum time.Duration
	for _, r := range rtts {
		sum += r
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2], sum / time.Duration(len(rtts)), nil
}

// createTopic creates topic and waits until the broker reports every partition with
// a leader, so a sarama producer created afterwards sees it at once.
func (k *kafkaEnv) createTopic(ctx context.Context, topic string, partitions int32) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(adminTimeout / time.Millisecond)
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = partitions
	rt.ReplicationFactor = -1
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, k.admin)
	if err == nil && len(resp.Topics) != 1 {
		err = fmt.Errorf("answer has %d topics", len(resp.Topics))
	}
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("create topic %q: %w", topic, err)
	}
	for {
		mreq := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(topic)
		mreq.Topics = append(mreq.Topics, mt)
		mresp, err := mreq.RequestWith(ctx, k.admin)
		if err == nil && len(mresp.Topics) == 1 && mresp.Topics[0].ErrorCode == 0 &&
			int32(len(mresp.Topics[0].Partitions)) == partitions {
			ready := true
			for _, p := range mresp.Topics[0].Partitions {
				ready = ready && p.Leader >= 0
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %q not ready: %w", topic, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deleteTopic deletes topic; a topic that does not exist is not an error.
func (k *kafkaEnv) deleteTopic(ctx context.Context, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = int32(adminTimeout / time.Millisecond)
	req.TopicNames = []string{topic}
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, k.admin)
	if err == nil && len(resp.Topics) == 1 {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("delete topic %q: %w", topic, err)
	}
	return nil
}

func (k *kafkaEnv) close() {
	if k.admin != nil {
		k.admin.Close()
	}
	if k.fake != nil {
		k.fake.Close()
		k.proxies.Close()
	}
}
