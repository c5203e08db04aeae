// Package brokerproxy puts an in-process TCP proxy (toxiproxy) in front of every
// listener of an in-process Kafka broker (franz-go's kfake), so that a demo or a
// benchmark can add latency or cut the network between clients and the broker.
//
// The trick is in Listen, given to kfake as its kfake.ListenFn: kfake advertises in
// its metadata whatever address its listener reports, so the listener reports the
// proxy's address. Every client that bootstraps from the cluster's addresses then
// reaches the broker through the proxy, also on the connections it opens after
// reading the metadata. Dial reaches a broker directly, for clients (a checker, an
// admin client) that must keep working while the proxy is cut.
//
// internal/kafkatest does the same for tests, with test-failure semantics.
package brokerproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Proxies are the proxies in front of the listeners of one in-process cluster. The
// zero value is not usable: create them with New. Safe for concurrent use.
type Proxies struct {
	server *toxiproxy.ApiServer

	mu     sync.Mutex
	links  []*link
	cut    bool
	closed bool
	setup  func(*toxiproxy.Proxy) error // applied to every proxy, new ones included
}

type link struct {
	proxy    *toxiproxy.Proxy
	listen   string // the proxy's address, advertised by the broker
	upstream string // the broker's real address
	closed   bool   // the broker closed its listener: never start again
}

// New returns proxies for one cluster.
func New() *Proxies {
	return &Proxies{server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())}
}

// Listen is a kfake.ListenFn: it listens where kfake asked, starts a proxy in front
// of that listener on a random port of 127.0.0.1, and returns the listener reporting
// the proxy's address. Closing the listener stops its proxy.
func (p *Proxies) Listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	tp := toxiproxy.NewProxy(p.server, fmt.Sprintf("broker-%d", len(p.links)), "127.0.0.1:0", ln.Addr().String())
	nop := zerolog.Nop()
	tp.Logger = &nop
	if err := tp.Start(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("brokerproxy: proxy in front of %s: %w", ln.Addr(), err)
	}
	addr, err := net.ResolveTCPAddr("tcp", tp.Listen)
	if err == nil && p.setup != nil {
		err = p.setup(tp)
	}
	if err != nil {
		tp.Stop()
		ln.Close()
		return nil, fmt.Errorf("brokerproxy: proxy in front of %s: %w", ln.Addr(), err)
	}
	if p.cut {
		tp.Stop() // a broker added during an outage is cut too
	}
	l := &link{proxy: tp, listen: tp.Listen, upstream: ln.Addr().String()}
	p.links = append(p.links, l)
	return &advertisingListener{Listener: ln, addr: addr, p: p, link: l}, nil
}

// advertisingListener is the broker's real listener reporting the proxy's address.
type advertisingListener struct {
	net.Listener
	addr net.Addr
	p    *Proxies
	link *link
}

// Addr returns the proxy's address: kfake advertises what its listener reports.
func (l *advertisingListener) Addr() net.Addr { return l.addr }

// Close closes the broker's listener and stops its proxy for good, dropping the
// connections through it, as a broker that goes away would (kfake's RemoveNode).
func (l *advertisingListener) Close() error {
	err := l.Listener.Close()
	l.p.mu.Lock()
	l.link.closed = true
	l.p.mu.Unlock()
	l.link.proxy.Stop()
	return err
}

// Addrs returns the proxies' addresses, one per broker listener, in the order the
// brokers started.
func (p *Proxies) Addrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	addrs := make([]string, 0, len(p.links))
	for _, l := range p.links {
		addrs = append(addrs, l.listen)
	}
	return addrs
}

// Upstream returns the broker address behind the proxy address addr, or addr when
// it is not one of the proxies.
func (p *Proxies) Upstream(addr string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		if l.listen == addr {
			return l.upstream
		}
	}
	return addr
}

// Dial connects to the broker behind the proxy address host, bypassing the proxy
// (for example as a franz-go kgo.Dialer).
func (p *Proxies) Dial(ctx context.Context, network, host string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, p.Upstream(host))
}

// Setup applies fn to every proxy, now and to those started later (toxics such as
// latency); the last fn given wins for new proxies.
func (p *Proxies) Setup(fn func(*toxiproxy.Proxy) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setup = fn
	for _, l := range p.links {
		if l.closed {
			continue
		}
		if err := fn(l.proxy); err != nil {
			return fmt.Errorf("brokerproxy: %s: %w", l.listen, err)
		}
	}
	return nil
}

// Cut drops every connection through the proxies and refuses new ones (connection
// refused), as if the brokers had become unreachable, until Restore.
func (p *Proxies) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, l := range p.links {
		l.proxy.Stop() // a no-op on a stopped proxy
	}
}

// Restore accepts connections again after Cut, on the same addresses. Clients
// reconnect on their own.
func (p *Proxies) Restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cut || p.closed {
		return nil
	}
	p.cut = false
	for _, l := range p.links {
		if l.closed {
			continue
		}
		if err := l.proxy.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
			return fmt.Errorf("brokerproxy: restoring %s: %w", l.listen, err)
		}
	}
	return nil
}

// Close stops every proxy for good.
func (p *Proxies) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, l := range p.links {
		l.closed = true
		l.proxy.Stop()
	}
}
