package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"

	"github.com/millrace/millrace/internal/kafkatest"
	"github.com/millrace/millrace/router"
)

// Killing the relay with SIGKILL mid-stream, three times, while writers keep
// committing events, loses nothing: after the last restart every committed event is
// in Kafka, each key's events are in commit order once duplicates (by UUID, first
// occurrence kept) are dropped, and duplicates stay within one batch per kill.
func TestRelaySurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("slow scenario")
	}
	dialects(t, func(t *testing.T, d testDB) {
		ctx := context.Background()
		c := kafkatest.New(t)
		topic := c.NewTopic(t, 4)
		cfg := newOutbox(t, d)
		out := &outputLog{}
		const batch = 100
		env := relayEnv(d, cfg, c.Addrs(), "RELAY_BATCH_SIZE="+strconv.Itoa(batch))
		mustRun(t, out, env, "migrate")

		// Writers: each owns its keys and commits transactions of 1-5 events, so the
		// commit order of a key is the writer's order. seq is the event's rank within
		// its key.
		const writers, keysPerWriter = 4, 5
		var (
			mu        sync.Mutex
			committed = map[string]string{} // uuid -> key
			wrote     atomic.Int64
			stop      = make(chan struct{})
			wg        sync.WaitGroup
		)
		for w := 0; w < writers; w++ {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				seq := map[string]int{}
				for {
					select {
					case <-stop:
						return
					default:
					}
					n := 1 + rng.IntN(5)
					evs := make([]event, n)
					for i := range evs {
						key := fmt.Sprintf("w%d-k%d", w, rng.IntN(keysPerWriter))
						seq[key]++
						evs[i] = event{uuid: watermill.NewUUID(), key: key, payload: []byte(strconv.Itoa(seq[key]))}
					}
					if err := writeTx(ctx, d.db, cfg, topic, evs); err != nil {
						t.Errorf("writer %d: %v", w, err)
						return
					}
					mu.Lock()
					for _, e := range evs {
						committed[e.uuid] = e.key
					}
					mu.Unlock()
					wrote.Add(int64(n))
					time.Sleep(time.Millisecond) // leave the database to the relay too
				}
			})
		}
		stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
		defer stopWriters()

		const kills = 3
		for i := 0; i < kills; i++ {
			p := startRelay(t, out, env)
			addr := p.httpAddr()
			// Let it forward for a while, then kill it at a random moment.
			before := forwarded(t, addr)
			waitFor(t, 20*time.Second, func() bool { return forwarded(t, addr) > before+200 },
				func() string { return "the relay forwards nothing" })
			time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
			p.signal(syscall.SIGKILL)
			if code := p.wait(10 * time.Second); code != -int(syscall.SIGKILL) {
				t.Fatalf("relay exited with %d, want killed", code)
			}
		}
		stopWriters()

		// The last relay drains the outbox and stops gracefully.
		p := startRelay(t, out, env)
		p.httpAddr()
		waitFor(t, 60*time.Second, func() bool { return statusOf(t, out, env).Pending == 0 },
			func() string { return fmt.Sprintf("still pending: %+v", statusOf(t, out, env)) })
		p.signal(syscall.SIGTERM)
		if code := p.wait(20 * time.Second); code != 0 {
			t.Fatalf("relay exited with %d after SIGTERM", code)
		}

		recs := c.ConsumeAll(t, topic, time.Second)
		first := map[string]bool{}
		dups := 0
		lastSeq := map[string]int{}
		for _, r := range recs { // sorted by partition and offset: a key's order
			id := r.Headers[kafka.UUIDHeaderKey]
			if first[id] {
				dups++
				continue
			}
			first[id] = true
			key := string(r.Key)
			if want, ok := committed[id]; !ok {
				t.Errorf("record %s was never committed", id)
			} else if want != key {
				t.Errorf("record %s has key %q, want %q", id, key, want)
			}
			seq, _ := strconv.Atoi(string(r.Value))
			if seq <= lastSeq[key] {
				t.Errorf("key %s: event #%d arrived after #%d", key, seq, lastSeq[key])
			}
			lastSeq[key] = seq
		}
		missing := 0
		for id := range committed {
			if !first[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%d of %d committed events are missing from Kafka", missing, len(committed))
		}
		// A kill re-sends at most the batch in flight.
		if dups > kills*batch {
			t.Errorf("%d duplicates, want at most %d (one batch per kill)", dups, kills*batch)
		}
		t.Logf("%s: %d events committed, %d records in Kafka, %d kills, %d duplicates",
			d.name, len(committed), len(recs), kills, dups)
		if strings.Contains(out.String(), "panic:") {
			t.Errorf("a relay panicked:\n%s", out.String())
		}
	})
}

// forwarded reads millrace_router_events_forwarded_total from addr.
func forwarded(t testing.TB, addr string) float64 {
	t.Helper()
	_, m := get(t, "http://"+addr+"/metrics")
	v, _ := metricValue(m, router.MetricEventsForwarded)
	return v
}
