package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Proxy is the in-process TCP proxy (toxiproxy) between the clients and every broker
// of a cluster made WithProxy. The brokers advertise its addresses, so every client
// connection goes through it, including connections to brokers a client learns of
// from metadata and to brokers added later with kfake's AddNode. Its methods are safe
// for concurrent use and apply to every broker at once.
type Proxy struct {
	tb     testing.TB
	server *toxiproxy.ApiServer

	mu      sync.Mutex
	links   []*proxyLink
	latency time.Duration
	cut     bool
}

// proxyLink is the proxy in front of one broker listener.
type proxyLink struct {
	p        *toxiproxy.Proxy
	listen   string // the proxy's address, which the broker advertises
	upstream string // the broker's real address
	closed   bool   // the broker's listener was closed: never start again
}

// Names of the toxics the Proxy installs.
const (
	latencyUp   = "kafkatest_latency_upstream"
	latencyDown = "kafkatest_latency_downstream"
)

func newProxy(tb testing.TB) *Proxy {
	return &Proxy{
		tb:     tb,
		server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()),
	}
}

// listen is the kfake.ListenFn of a proxied cluster: it listens where kfake asked,
// starts a proxy in front of that listener on a random port, and returns the listener
// reporting the proxy's address, which kfake then advertises in metadata.
func (p *Proxy) listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	name := fmt.Sprintf("broker-%d", len(p.links))
	tp := toxiproxy.NewProxy(p.server, name, "127.0.0.1:0", ln.Addr().String())
	tp.Logger = nopLogger()
	if err := tp.Start(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("kafkatest: starting the proxy in front of %s: %w", ln.Addr(), err)
	}
	l := &proxyLink{p: tp, listen: tp.Listen, upstream: ln.Addr().String()}
	addr, err := net.ResolveTCPAddr("tcp", l.listen)
	if err != nil {
		tp.Stop()
		ln.Close()
		return nil, err
	}
	// A broker added while the proxy has latency or is cut gets the same treatment.
	if err := setLatency(tp, p.latency); err != nil {
		tp.Stop()
		ln.Close()
		return nil, err
	}
	if p.cut {
		tp.Stop()
	}
	p.links = append(p.links, l)
	return &proxiedListener{Listener: ln, addr: addr, proxy: p, link: l}, nil
}

func nopLogger() *zerolog.Logger {
	l := zerolog.Nop()
	return &l
}

// proxiedListener is a broker's real listener that reports the proxy's address.
type proxiedListener struct {
	net.Listener
	addr  net.Addr
	proxy *Proxy
	link  *proxyLink
}

// Addr returns the proxy's address: kfake advertises what its listener reports.
func (l *proxiedListener) Addr() net.Addr { return l.addr }

// Close closes the broker's listener and stops its proxy, dropping the connections
// through it, as a broker that goes away would (kfake's RemoveNode and Close).
func (l *proxiedListener) Close() error {
	err := l.Listener.Close()
	l.proxy.mu.Lock()
	l.link.closed = true
	l.proxy.mu.Unlock()
	l.link.p.Stop()
	return err
}

// closeAll stops every proxy; it is idempotent.
func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		l.closed = true
		l.p.Stop()
	}
}

// upstreamOf returns the real broker address behind a proxy address, or host itself
// when it is not one of the proxy's.
func (p *Proxy) upstreamOf(host string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		if l.listen == host {
			return l.upstream
		}
	}
	return host
}

// Addrs returns the proxy's listen addresses, one per broker, in the order the brokers
// were started.
func (p *Proxy) Addrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	addrs := make([]string, 0, len(p.links))
	for _, l := range p.links {
		addrs = append(addrs, l.listen)
	}
	return addrs
}

// SetLatency delays every chunk of data by d in each direction, so a request and its
// response take at least 2*d more; existing connections are affected too. d is
// rounded up to whole milliseconds; 0 removes the latency. The latency outlives Cut
// and Restore.
func (p *Proxy) SetLatency(d time.Duration) {
	p.tb.Helper()
	if d < 0 {
		p.tb.Fatalf("kafkatest: SetLatency(%v): must not be negative", d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
	for _, l := range p.links {
		if l.closed {
			continue
		}
		if err := setLatency(l.p, d); err != nil {
			p.tb.Fatalf("kafkatest: SetLatency(%v): %v", d, err)
		}
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
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, l := range p.links {
		l.p.Stop() // no-op on a stopped proxy
	}
}

// Restore accepts connections again after Cut, on the same addresses. Clients
// reconnect on their own; it fails the test when a proxy cannot listen again.
func (p *Proxy) Restore() {
	p.tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for _, l := range p.links {
		if l.closed {
			continue
		}
		if err := l.p.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
			p.tb.Fatalf("kafkatest: Restore: proxy %s: %v", l.listen, err)
		}
	}
}
