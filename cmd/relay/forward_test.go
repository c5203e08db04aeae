package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"

	"github.com/millrace/millrace/internal/kafkatest"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// A relay migrated, started and stopped like in production forwards every committed
// event with its UUID, key, payload and headers, and status, /metrics, /healthz and
// /readyz tell the truth before and after.
func TestRelayForwardsCommittedEvents(t *testing.T) {
	dialects(t, func(t *testing.T, d testDB) {
		ctx := context.Background()
		c := kafkatest.New(t)
		topic := c.NewTopic(t, 3)
		cfg := newOutbox(t, d)
		out := &outputLog{}
		env := relayEnv(d, cfg, c.Addrs())

		if s := mustRun(t, out, env, "migrate"); !strings.Contains(s, "is ready") {
			t.Fatalf("migrate printed %q", s)
		}
		// Idempotent: a second migrate succeeds too.
		mustRun(t, out, env, "migrate")

		const txs, perTx = 10, 5
		var want []event
		for i := 0; i < txs; i++ {
			var evs []event
			for j := 0; j < perTx; j++ {
				evs = append(evs, event{
					uuid:     watermill.NewUUID(),
					key:      fmt.Sprintf("key-%d", j),
					payload:  []byte(fmt.Sprintf(`{"tx":%d,"n":%d}`, i, j)),
					metadata: map[string]string{"trace_id": fmt.Sprintf("t%d", i)},
				})
			}
			if err := writeTx(ctx, d.db, cfg, topic, evs); err != nil {
				t.Fatal(err)
			}
			want = append(want, evs...)
		}
		// A rolled-back transaction leaves nothing to forward.
		tx, err := d.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := outbox.NewPublisher(tx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(topic, newMsg("rolled-back")); err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback()

		st := statusOf(t, out, env)
		if st.Pending != int64(len(want)) || st.DeadLetters != 0 || st.LastForwardedAt != nil ||
			st.Outbox != cfg.Name || st.Dialect != d.name || st.ConsumerGroup != "relay" {
			t.Fatalf("status before run = %+v, want %d pending, no dead letter, never forwarded", st, len(want))
		}

		p := startRelay(t, out, env)
		addr := p.httpAddr()
		recs := c.Consume(t, topic, len(want), 30*time.Second)

		byUUID := map[string]kafkatest.Record{}
		lastN := map[string]int{} // per key: the tx of the last record seen
		for _, r := range recs {
			id := r.Headers[kafka.UUIDHeaderKey]
			if _, dup := byUUID[id]; dup {
				t.Errorf("event %s arrived twice in a clean run", id)
			}
			byUUID[id] = r
			for h := range r.Headers {
				if strings.HasPrefix(h, outbox.ReservedPrefix) {
					t.Errorf("record %s carries the internal header %q", id, h)
				}
			}
			var tx, n int
			if _, err := fmt.Sscanf(string(r.Value), `{"tx":%d,"n":%d}`, &tx, &n); err != nil {
				t.Fatalf("payload %q: %v", r.Value, err)
			}
			if prev, ok := lastN[string(r.Key)]; ok && tx <= prev {
				t.Errorf("key %s: tx %d arrived after tx %d", r.Key, tx, prev)
			}
			lastN[string(r.Key)] = tx
		}
		for _, e := range want {
			r, ok := byUUID[e.uuid]
			switch {
			case !ok:
				t.Errorf("event %s is missing from Kafka", e.uuid)
			case string(r.Key) != e.key:
				t.Errorf("event %s: key %q, want %q", e.uuid, r.Key, e.key)
			case string(r.Value) != string(e.payload):
				t.Errorf("event %s: payload %q, want %q", e.uuid, r.Value, e.payload)
			case r.Headers["trace_id"] != e.metadata["trace_id"]:
				t.Errorf("event %s: headers %v, want trace_id=%s", e.uuid, r.Headers, e.metadata["trace_id"])
			}
		}

		// /metrics catches up with the forwarded events and the empty backlog.
		var metrics string
		waitFor(t, 15*time.Second, func() bool {
			_, metrics = get(t, "http://"+addr+"/metrics")
			fwd, _ := metricValue(metrics, router.MetricEventsForwarded)
			pending, ok := metricValue(metrics, router.MetricPending)
			return fwd == float64(len(want)) && ok && pending == 0
		}, func() string { return "metrics:\n" + grepLines(metrics, "millrace_") })
		for _, name := range []string{
			"millrace_publisher_messages_published_total", router.MetricBatches, router.MetricLag,
			"go_goroutines", "process_resident_memory_bytes", "millrace_relay_build_info",
		} {
			if _, ok := metricValue(metrics, name); !ok {
				t.Errorf("/metrics has no %s", name)
			}
		}
		if code, _ := get(t, "http://"+addr+"/debug/pprof/"); code != 404 {
			t.Errorf("/debug/pprof/ answers %d without RELAY_PPROF", code)
		}
		if code, body := get(t, "http://"+addr+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
			t.Errorf("/healthz = %d %s", code, body)
		}
		waitFor(t, 10*time.Second, func() bool {
			code, _ := get(t, "http://"+addr+"/readyz")
			return code == 200
		}, func() string { _, body := get(t, "http://"+addr+"/readyz"); return "/readyz: " + body })

		st = statusOf(t, out, env)
		if st.Pending != 0 || st.OldestPendingSeconds != 0 || st.LastForwardedAt == nil {
			t.Errorf("status after run = %+v, want nothing pending and a last forwarded time", st)
		}
		table := mustRun(t, out, env, "status")
		if !strings.Contains(table, "Pending events  0") || !strings.Contains(table, "Dead letters    0") {
			t.Errorf("status table:\n%s", table)
		}

		p.signal(syscall.SIGTERM)
		if code := p.wait(20 * time.Second); code != 0 {
			t.Fatalf("relay exited with %d after SIGTERM\n%s", code, tail(p.stderr.String(), 4000))
		}
		if !strings.Contains(p.stderr.String(), `"relay stopped"`) {
			t.Errorf("no final metrics logged:\n%s", tail(p.stderr.String(), 2000))
		}
		// Nothing more than the committed events was written.
		if all := c.ConsumeAll(t, topic, 500*time.Millisecond); len(all) != len(want) {
			t.Errorf("topic holds %d records, want %d", len(all), len(want))
		}
	})
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
