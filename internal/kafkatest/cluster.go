package kafkatest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// EnvBrokers names the environment variable that points the tests at a real Kafka
// cluster: a comma-separated list of bootstrap host:port addresses, plaintext, no
// authentication. When it is unset or empty, New starts an in-process fake cluster.
const EnvBrokers = "KAFKA_BROKERS"

// Skip reasons, shared so that every test skipped for one cause says it the same way.
const (
	skipFake    = "needs fault injection of the in-process broker; not possible against " + EnvBrokers
	skipProxy   = "needs the in-process proxy in front of the in-process broker (WithProxy); not possible against " + EnvBrokers
	skipConfigs = "needs broker configs of the in-process broker (BrokerConfigs); not changed on a shared cluster from " + EnvBrokers
)

// adminTimeout bounds every administrative request of the kit (topic creation,
// config changes, metadata checks).
const adminTimeout = 15 * time.Second

// Cluster is a Kafka cluster for one test: either an in-process fake broker or the
// real cluster named by KAFKA_BROKERS. Its methods are safe for concurrent use.
type Cluster struct {
	fake  *kfake.Cluster // nil against a real cluster
	proxy *Proxy         // nil without WithProxy
	addrs []string       // what clients bootstrap from
	admin *kgo.Client    // reaches the brokers directly, never through the proxy
}

// Option configures New.
type Option func(*options)

type options struct {
	brokers      int
	proxy        bool
	brokerConfig map[string]string
	kfakeOpts    []kfake.Opt
	autoCreate   bool
}

// Brokers sets how many brokers the in-process cluster runs. Defaults to 1. Ignored
// against KAFKA_BROKERS, whose size is what it is.
func Brokers(n int) Option { return func(o *options) { o.brokers = n } }

// WithProxy puts an in-process TCP proxy in front of every broker of the in-process
// cluster, and makes the brokers advertise the proxy addresses in their metadata so
// that no client connection bypasses it; Cluster.Proxy controls it. It overrides any
// kfake.ListenFn passed with KfakeOptions. Defaults to off. Tests that ask for it are
// skipped against KAFKA_BROKERS.
func WithProxy() Option { return func(o *options) { o.proxy = true } }

// BrokerConfigs sets initial broker-level configs of the in-process cluster, such as
// "message.max.bytes" (see kfake.BrokerConfigs for the accepted names). Calls add
// up. Defaults to none. Tests that ask for it are skipped against KAFKA_BROKERS,
// because they would change a shared cluster.
func BrokerConfigs(configs map[string]string) Option {
	return func(o *options) {
		if o.brokerConfig == nil {
			o.brokerConfig = make(map[string]string)
		}
		for k, v := range configs {
			o.brokerConfig[k] = v
		}
	}
}

// AutoCreateTopics lets the in-process cluster create a topic that a client asks
// metadata for, with kfake's default of 10 partitions, as a real Kafka does with
// auto.create.topics.enable. Defaults to off, so that a test that forgot to create its
// topic fails. Ignored against KAFKA_BROKERS, whose setting is what it is.
func AutoCreateTopics() Option { return func(o *options) { o.autoCreate = true } }

// KfakeOptions passes options to kfake.NewCluster as they are, after the ones the kit
// derives from the other options. Ignored against KAFKA_BROKERS.
func KfakeOptions(opts ...kfake.Opt) Option {
	return func(o *options) { o.kfakeOpts = append(o.kfakeOpts, opts...) }
}

// New returns the cluster for the test: the real cluster of KAFKA_BROKERS when that
// is set, otherwise an in-process fake broker that is closed when the test ends. It
// fails the test when the cluster cannot be started or reached, and skips it when an
// option needs the in-process broker but KAFKA_BROKERS is set.
func New(tb testing.TB, opts ...Option) *Cluster {
	tb.Helper()
	o := options{brokers: 1}
	for _, opt := range opts {
		opt(&o)
	}
	if seeds := realBrokers(); len(seeds) > 0 {
		return newReal(tb, o, seeds)
	}
	return newFake(tb, o)
}

func realBrokers() []string {
	var seeds []string
	for _, s := range strings.Split(os.Getenv(EnvBrokers), ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	return seeds
}

func newReal(tb testing.TB, o options, seeds []string) *Cluster {
	tb.Helper()
	if o.proxy {
		tb.Skip(skipProxy)
	}
	if len(o.brokerConfig) > 0 {
		tb.Skip(skipConfigs)
	}
	c := &Cluster{addrs: seeds}
	c.admin = newAdmin(tb, seeds)
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if _, err := c.metadata(ctx, nil); err != nil {
		tb.Fatalf("kafkatest: %s=%s is set but the cluster cannot be reached: %v", EnvBrokers, strings.Join(seeds, ","), err)
	}
	return c
}

func newFake(tb testing.TB, o options) *Cluster {
	tb.Helper()
	if o.brokers < 1 {
		tb.Fatalf("kafkatest: Brokers(%d): need at least 1", o.brokers)
	}
	kopts := []kfake.Opt{kfake.NumBrokers(o.brokers)}
	if len(o.brokerConfig) > 0 {
		kopts = append(kopts, kfake.BrokerConfigs(o.brokerConfig))
	}
	if o.autoCreate {
		kopts = append(kopts, kfake.AllowAutoTopicCreation())
	}
	kopts = append(kopts, o.kfakeOpts...)

	c := &Cluster{}
	if o.proxy {
		c.proxy = newProxy(tb)
		kopts = append(kopts, kfake.ListenFn(c.proxy.Listen))
	}
	fake, err := kfake.NewCluster(kopts...)
	if err != nil {
		if c.proxy != nil {
			c.proxy.Close()
		}
		tb.Fatalf("kafkatest: starting the in-process cluster: %v", err)
	}
	c.fake = fake
	tb.Cleanup(func() {
		fake.Close()
		if c.proxy != nil {
			c.proxy.Close() // kfake closed every listener; this is for safety
		}
	})
	c.addrs = fake.ListenAddrs() // the proxy's addresses with WithProxy
	c.admin = newAdmin(tb, c.addrs, c.directDialer()...)
	return c
}

// newAdmin returns the kit's own client for administrative requests, closed when the
// test ends. It must be created after the cluster's own cleanup was registered, so
// that it closes first.
func newAdmin(tb testing.TB, seeds []string, extra ...kgo.Opt) *kgo.Client {
	tb.Helper()
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("kafkatest-admin"),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		tb.Fatalf("kafkatest: admin client: %v", err)
	}
	tb.Cleanup(cl.Close)
	return cl
}

// directDialer returns the kgo option that makes a client reach the brokers directly
// rather than through the proxy, or nothing without a proxy. The brokers advertise
// the proxy's addresses, so the mapping has to happen at dial time.
func (c *Cluster) directDialer() []kgo.Opt {
	if c.proxy == nil {
		return nil
	}
	return []kgo.Opt{kgo.Dialer(c.proxy.Dial)}
}

// Addrs returns the bootstrap addresses clients of the test should use: the proxy's
// with WithProxy, the in-process brokers' otherwise, or KAFKA_BROKERS.
func (c *Cluster) Addrs() []string { return append([]string(nil), c.addrs...) }

// Fake returns the in-process cluster for direct control (leader moves, node removal,
// control functions), or nil against KAFKA_BROKERS; see RequireFake.
func (c *Cluster) Fake() *kfake.Cluster { return c.fake }

// RequireFake skips the test when it runs against KAFKA_BROKERS, because it needs
// fault injection of the in-process broker.
func (c *Cluster) RequireFake(tb testing.TB) {
	tb.Helper()
	if c.fake == nil {
		tb.Skip(skipFake)
	}
}

// Proxy returns the proxy in front of the brokers, or nil when the cluster was made
// without WithProxy.
func (c *Cluster) Proxy() *Proxy { return c.proxy }

// metadata asks one broker (any when broker is nil) for the metadata of topics; with
// no topics it asks for none, which still returns the brokers.
func (c *Cluster) metadata(ctx context.Context, broker *kgo.Broker, topics ...string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // nil would mean all topics
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	req.AllowAutoTopicCreation = false
	if broker != nil {
		return req.RequestWith(ctx, broker)
	}
	return req.RequestWith(ctx, c.admin)
}
