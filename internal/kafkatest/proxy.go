package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"

	"github.com/millrace/millrace/internal/brokerproxy"
)

// Proxy is the in-process TCP proxy (toxiproxy) between the clients and every broker
// of a cluster made WithProxy. The brokers advertise its addresses, so every client
// connection goes through it, including connections to brokers a client learns of
// from metadata and to brokers added later with kfake's AddNode. Its methods are safe
// for concurrent use and apply to every broker at once. It is internal/brokerproxy
// with test-failure semantics.
type Proxy struct {
	tb testing.TB
	*brokerproxy.Proxies
}

// Names of the toxics the Proxy installs.
const (
	latencyUp   = "kafkatest_latency_upstream"
	latencyDown = "kafkatest_latency_downstream"
)

func newProxy(tb testing.TB) *Proxy {
	return &Proxy{tb: tb, Proxies: brokerproxy.New()}
}

// SetLatency delays every chunk of data by d in each direction, so a request and its
// response take at least 2*d more; existing connections are affected too, and so are
// brokers added later. d is rounded up to whole milliseconds; 0 removes the latency.
// The latency outlives Cut and Restore.
func (p *Proxy) SetLatency(d time.Duration) {
	p.tb.Helper()
	if d < 0 {
		p.tb.Fatalf("kafkatest: SetLatency(%v): must not be negative", d)
	}
	if err := p.Setup(func(tp *toxiproxy.Proxy) error { return setLatency(tp, d) }); err != nil {
		p.tb.Fatalf("kafkatest: SetLatency(%v): %v", d, err)
	}
}

func setLatency(tp *toxiproxy.Proxy, d time.Duration) error {
	for _, name := range []string{latencyUp, latencyDown} {
		err := tp.Toxics.RemoveToxic(context.Background(), name)
		if err != nil && !errors.Is(err, toxiproxy.ErrToxicNotFound) {
			return err
		}
	}
	if d <= 0 {
		return nil
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	for _, t := range []struct{ name, stream string }{{latencyUp, "upstream"}, {latencyDown, "downstream"}} {
		js := fmt.Sprintf(`{"name":%q,"type":"latency","stream":%q,"toxicity":1,"attributes":{"latency":%d}}`, t.name, t.stream, ms)
		if _, err := tp.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			return err
		}
	}
	return nil
}

// Cut drops every connection through the proxy and refuses new ones (connection
// refused), as if the brokers were unreachable, until Restore. The kit's own admin
// requests and Cluster.Consume go around the proxy and keep working.
//
// A sarama producer notices within its retries (about 75 ms with SaramaConfig: io.EOF
// for the request in flight, then sarama.ErrOutOfBrokers; about 12 s with
// watermill-kafka's default config). After three failed sends in a row its
// per-topic circuit breaker answers "circuit breaker is open" for 10 s, Restore or
// not: a test that wants to send again at once fails at most two sends, or uses a
// new producer.
func (p *Proxy) Cut() { p.Proxies.Cut() }

// Restore accepts connections again after Cut, on the same addresses. Clients
// reconnect on their own; it fails the test when a proxy cannot listen again.
func (p *Proxy) Restore() {
	p.tb.Helper()
	if err := p.Proxies.Restore(); err != nil {
		p.tb.Fatalf("kafkatest: Restore: %v", err)
	}
}
