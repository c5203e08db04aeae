package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/kafkatest"
)

// /readyz fails with the reason while no broker can be reached and recovers with
// the brokers, while /healthz (liveness) stays 200 throughout: a Kafka outage must
// not restart the relay.
func TestRelayReadinessFollowsTheBroker(t *testing.T) {
	t.Parallel()
	d := postgresDB(t)
	c := kafkatest.New(t, kafkatest.WithProxy())
	cfg := newOutbox(t, d)
	out := &outputLog{}
	env := relayEnv(d, cfg, c.Addrs())
	mustRun(t, out, env, "migrate")
	p := startRelay(t, out, env)
	addr := p.httpAddr()
	ready := func() (int, string) { return get(t, "http://"+addr+"/readyz") }
	waitFor(t, 15*time.Second, func() bool { code, _ := ready(); return code == 200 },
		func() string { _, b := ready(); return "/readyz: " + b })

	c.Proxy().Cut()
	var body string
	waitFor(t, 20*time.Second, func() bool {
		var code int
		code, body = ready()
		return code == 503
	}, func() string { return "/readyz stayed ready with the brokers cut off: " + body })
	if !strings.Contains(body, `"status":"unavailable"`) || !strings.Contains(body, "broker") {
		t.Errorf("/readyz body %s, want the broker named as the reason", body)
	}
	if code, b := get(t, "http://"+addr+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %s during a broker outage", code, b)
	}

	c.Proxy().Restore()
	waitFor(t, 20*time.Second, func() bool { code, _ := ready(); return code == 200 },
		func() string { _, b := ready(); return "/readyz did not recover: " + b })

	p.signal(syscall.SIGINT)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Errorf("relay exited with %d after SIGINT", code)
	}
}
