package main

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"

	"github.com/millrace/millrace/internal/kafkatest"
)

// SIGTERM in the middle of a large backlog stops the relay with exit code 0 within
// the shutdown timeout, and a restarted relay forwards the rest: nothing is lost.
func TestRelaySIGTERMDuringBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("slow scenario")
	}
	d := postgresDB(t)
	ctx := context.Background()
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 4)
	cfg := newOutbox(t, d)
	out := &outputLog{}
	const shutdownTimeout = 10 * time.Second
	env := relayEnv(d, cfg, c.Addrs(), "RELAY_SHUTDOWN_TIMEOUT="+shutdownTimeout.String())
	mustRun(t, out, env, "migrate")

	const total, perTx = 20000, 1000
	want := make(map[string]bool, total)
	for i := 0; i < total/perTx; i++ {
		evs := make([]event, perTx)
		for j := range evs {
			evs[j] = event{uuid: watermill.NewUUID(), key: fmt.Sprintf("k%d", j%50), payload: []byte(fmt.Sprintf("%d-%d", i, j))}
			want[evs[j].uuid] = true
		}
		if err := writeTx(ctx, d.db, cfg, topic, evs); err != nil {
			t.Fatal(err)
		}
	}

	p := startRelay(t, out, env)
	addr := p.httpAddr()
	waitFor(t, 30*time.Second, func() bool { return forwarded(t, addr) > 0 },
		func() string { return "the relay forwards nothing" })
	start := time.Now()
	p.signal(syscall.SIGTERM)
	code := p.wait(shutdownTimeout + 5*time.Second)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("relay exited with %d after SIGTERM", code)
	}
	if took > shutdownTimeout {
		t.Errorf("relay took %v to stop, more than RELAY_SHUTDOWN_TIMEOUT %v", took, shutdownTimeout)
	}
	pending := statusOf(t, out, env).Pending
	t.Logf("stopped in %v with %d of %d events still pending", took.Round(time.Millisecond), pending, total)

	// The restarted relay forwards the rest.
	p = startRelay(t, out, env)
	p.httpAddr()
	waitFor(t, 60*time.Second, func() bool { return statusOf(t, out, env).Pending == 0 },
		func() string { return fmt.Sprintf("still pending: %+v", statusOf(t, out, env)) })
	p.signal(syscall.SIGTERM)
	if code := p.wait(shutdownTimeout + 5*time.Second); code != 0 {
		t.Fatalf("restarted relay exited with %d after SIGTERM", code)
	}
	recs := c.ConsumeAll(t, topic, time.Second)
	seen := make(map[string]bool, total)
	for _, r := range recs {
		seen[r.Headers[kafka.UUIDHeaderKey]] = true
	}
	missing := 0
	for id := range want {
		if !seen[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d events are missing from Kafka", missing, total)
	}
	t.Logf("%d records for %d events (%d duplicates)", len(recs), total, len(recs)-len(seen))
}
