package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/kafkatest"
	"github.com/millrace/millrace/router"
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

// After a broker outage with events waiting, /readyz answers 200 within a few
// seconds of "forwarding recovered", although most publish attempts of the last
// minute failed: the error rate counts only attempts since the last clean one.
// The only error logged is readiness turning bad, once (a retried failure is a
// warning), and the final counters say "given up" and "attempt failures", never
// "failed", while every event was forwarded.
func TestRelayReadyAtOnceAfterAnOutage(t *testing.T) {
	t.Parallel()
	d := postgresDB(t)
	c := kafkatest.New(t, kafkatest.WithProxy())
	cfg := newOutbox(t, d)
	out := &outputLog{}
	env := relayEnv(d, cfg, c.Addrs(), "RELAY_RETRY_INITIAL=20ms", "RELAY_RETRY_MAX_INTERVAL=100ms",
		"RELAY_RETRY_MAX_ELAPSED=1s", "RELAY_BATCH_RETRY_MAX=200ms", "RELAY_READY_TIMEOUT=2s")
	mustRun(t, out, env, "migrate")
	p := startRelay(t, out, env)
	addr := p.httpAddr()
	ready := func() (int, string) { return get(t, "http://"+addr+"/readyz") }
	metrics := func() string { _, m := get(t, "http://"+addr+"/metrics"); return m }
	forwarded := func() float64 { v, _ := metricValue(metrics(), router.MetricEventsForwarded); return v }
	ctx := context.Background()
	topic := c.NewTopic(t, 1)
	write := func(n int) {
		evs := make([]event, n)
		for i := range evs {
			evs[i] = event{uuid: watermill.NewUUID(), key: fmt.Sprint("k", i), payload: []byte("x")}
		}
		if err := writeTx(ctx, d.db, cfg, topic, evs); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	waitFor(t, 20*time.Second, func() bool { return forwarded() == 1 }, func() string { return tail(p.stderr.String(), 3000) })

	c.Proxy().Cut()
	write(5)
	waitFor(t, 30*time.Second, func() bool { code, _ := ready(); return code == 503 },
		func() string { return "/readyz stayed 200 during the outage" })
	// Far more failed attempts than the 10 the error rate needs.
	waitFor(t, 60*time.Second, func() bool {
		v, _ := metricValue(metrics(), adapter.MetricRetries)
		return v >= 30
	}, func() string { return "too few retries during the outage:\n" + tail(p.stderr.String(), 3000) })
	c.Proxy().Restore()

	waitFor(t, 60*time.Second, func() bool { return strings.Contains(p.stderr.String(), `"forwarding recovered"`) },
		func() string { return "no recovery logged:\n" + tail(p.stderr.String(), 3000) })
	recovered := time.Now()
	var body string
	waitFor(t, 30*time.Second, func() bool {
		var code int
		code, body = ready()
		return code == 200
	}, func() string { return "/readyz did not recover: " + body })
	if took := time.Since(recovered); took > 5*time.Second {
		t.Errorf("/readyz answered 200 %v after forwarding recovered, want within 5s; it said %s", took, body)
	}
	waitFor(t, 20*time.Second, func() bool { return forwarded() == 6 },
		func() string { return fmt.Sprintf("forwarded %v of 6", forwarded()) })

	p.signal(syscall.SIGTERM)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Errorf("relay exited with %d", code)
	}
	var warnings, unhealthy, healthy int
	for _, ev := range logEvents(p.stderr.String()) {
		switch {
		case ev["level"] == "error" && ev["message"] == "forwarder unhealthy":
			unhealthy++
		case ev["level"] == "error", ev["level"] == "fatal", ev["level"] == "panic":
			t.Errorf("logged at %s although nothing was lost: %v", ev["level"], ev)
		case ev["level"] == "warn":
			warnings++
		case ev["message"] == "forwarder healthy again":
			healthy++
		}
		if ev["message"] == "relay stopped" {
			for k := range ev {
				if strings.Contains(k, "failed") {
					t.Errorf("final line has %q although nothing was lost: %v", k, ev)
				}
			}
			if ev["attempt_failures"] == nil || ev["attempt_failures"].(float64) < 30 || ev["messages_given_up"] == nil ||
				ev["events_forwarded"].(float64) != 6 || ev["dead_letters"].(float64) != 0 {
				t.Errorf("final counters %v, want attempt_failures >= 30, messages_given_up, 6 forwarded, no dead letter", ev)
			}
		}
	}
	if warnings == 0 {
		t.Error("the retried failures were not logged at warn")
	}
	if unhealthy != 1 || healthy != 1 {
		t.Errorf("readiness turned bad %d times and good %d times in the logs, want once each", unhealthy, healthy)
	}
}
