package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/millrace/millrace/internal/kafkatest"
)

// A stop that cannot finish (the batch in flight waits for unreachable brokers)
// ends with exit code 1 at RELAY_SHUTDOWN_TIMEOUT, or at once on a second signal;
// the events are forwarded by the next start.
func TestRelayStopThatCannotFinish(t *testing.T) {
	t.Parallel()
	d := postgresDB(t)
	c := kafkatest.New(t, kafkatest.WithProxy())
	topic := c.NewTopic(t, 1)
	cfg := newOutbox(t, d)
	out := &outputLog{}
	env := relayEnv(d, cfg, c.Addrs(), "RELAY_SHUTDOWN_TIMEOUT=3s")
	mustRun(t, out, env, "migrate")

	// stuck starts a relay, cuts the brokers off and writes an event, and returns
	// once the relay is publishing it in vain.
	stuck := func() *proc {
		t.Helper()
		p := startRelay(t, out, env)
		addr := p.httpAddr()
		waitFor(t, 15*time.Second, func() bool { code, _ := get(t, "http://"+addr+"/readyz"); return code == 200 },
			func() string { return "never ready" })
		c.Proxy().Cut()
		if err := writeTx(context.Background(), d.db, cfg, topic, []event{{uuid: watermill.NewUUID(), payload: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 15*time.Second, func() bool {
			_, m := get(t, "http://"+addr+"/metrics")
			return strings.Contains(m, `state="forwarding"} 1`)
		}, func() string { return "the relay never started forwarding" })
		return p
	}

	p := stuck()
	start := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != exitFailure {
		t.Errorf("exit code %d after the shutdown timeout, want 1", code)
	}
	if took := time.Since(start); took < 2*time.Second || took > 5*time.Second {
		t.Errorf("stopped after %v, want about RELAY_SHUTDOWN_TIMEOUT (3s)", took)
	}
	if !strings.Contains(p.stderr.String(), "shutdown timed out") {
		t.Errorf("no timeout logged:\n%s", tail(p.stderr.String(), 2000))
	}
	c.Proxy().Restore()

	p = stuck()
	p.signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	if p.exited() {
		t.Fatalf("relay exited before the batch in flight could finish")
	}
	start = time.Now()
	p.signal(syscall.SIGINT)
	if code := p.wait(10 * time.Second); code != exitFailure {
		t.Errorf("exit code %d after a second signal, want 1", code)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("second signal took %v to exit", took)
	}
	if !strings.Contains(p.stderr.String(), "second signal") {
		t.Errorf("no second signal logged:\n%s", tail(p.stderr.String(), 2000))
	}
	c.Proxy().Restore()

	// Nothing was lost.
	p = startRelay(t, out, env)
	p.httpAddr()
	recs := c.Consume(t, topic, 2, 30*time.Second)
	if len(recs) < 2 {
		t.Errorf("%d records, want the 2 events", len(recs))
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
