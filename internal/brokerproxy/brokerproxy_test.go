package brokerproxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace/internal/brokerproxy"
)

// TestClientsGoThroughTheProxyAndDialBypassesIt: the broker advertises the proxy, so
// a cut stops a normal client, while a client using Dial keeps working; Restore
// brings the normal client back.
func TestClientsGoThroughTheProxyAndDialBypassesIt(t *testing.T) {
	p := brokerproxy.New()
	defer p.Close()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ListenFn(p.Listen))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addrs := c.ListenAddrs()
	if up := p.Upstream(addrs[0]); up == addrs[0] {
		t.Fatalf("the broker advertises %s, which is not a proxy", addrs[0])
	}
	ping := func(opts ...kgo.Opt) error {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...)}, opts...)...)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return cl.Ping(ctx)
	}
	if err := ping(); err != nil {
		t.Fatalf("ping through the proxy: %v", err)
	}
	p.Cut()
	if err := ping(); err == nil {
		t.Fatal("ping through a cut proxy succeeded")
	}
	if err := ping(kgo.Dialer(p.Dial)); err != nil {
		t.Fatalf("ping with Dial while cut: %v", err)
	}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Fatalf("ping after Restore: %v", err)
	}
}
