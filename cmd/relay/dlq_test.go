package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"

	"github.com/millrace/millrace/internal/kafkatest"
)

// An event that the topic refuses (too large) becomes a dead letter without
// blocking the events behind it; dlq list shows it without its payload, replay and
// purge refuse to touch several dead letters without --yes, and once the topic's
// limit is raised, dlq replay --id sends it.
func TestRelayDeadLetterReplay(t *testing.T) {
	dialects(t, func(t *testing.T, d testDB) {
		ctx := context.Background()
		c := kafkatest.New(t)
		topic := c.NewTopic(t, 1)
		c.SetMaxMessageBytes(t, topic, 2000)
		cfg := newOutbox(t, d)
		out := &outputLog{}
		env := relayEnv(d, cfg, c.Addrs())
		mustRun(t, out, env, "migrate")

		const marker = "POISON-PAYLOAD-MARKER"
		poison := func() event {
			// Random bytes: the producer compresses (snappy), so the payload must not
			// shrink below the topic's limit.
			noise := make([]byte, 4000)
			_, _ = rand.Read(noise)
			return event{uuid: watermill.NewUUID(), key: "k", payload: []byte(marker + base64.StdEncoding.EncodeToString(noise))}
		}
		small := func(s string) event { return event{uuid: watermill.NewUUID(), key: "k", payload: []byte(s)} }
		a, b, cEv, dEv := small("a"), poison(), small("c"), poison()
		if err := writeTx(ctx, d.db, cfg, topic, []event{a, b, cEv, dEv}); err != nil {
			t.Fatal(err)
		}

		p := startRelay(t, out, env)
		p.httpAddr()
		// The small events pass the poison ones.
		recs := c.Consume(t, topic, 2, 30*time.Second)
		if got := []string{recs[0].Headers[kafka.UUIDHeaderKey], recs[1].Headers[kafka.UUIDHeaderKey]}; got[0] != a.uuid || got[1] != cEv.uuid {
			t.Fatalf("records %v, want %s then %s", got, a.uuid, cEv.uuid)
		}

		var dls []deadLetterJSON
		waitFor(t, 15*time.Second, func() bool {
			s := mustRun(t, out, env, "dlq", "list", "--json")
			dls = nil
			if err := json.Unmarshal([]byte(s), &dls); err != nil {
				t.Fatalf("dlq list --json printed %q: %v", s, err)
			}
			return len(dls) == 2
		}, func() string { return fmt.Sprintf("dead letters: %+v", dls) })
		if dls[0].UUID != b.uuid || dls[1].UUID != dEv.uuid || dls[0].Topic != topic || dls[0].Class != "permanent" ||
			dls[0].Key != "k" || dls[0].PayloadBytes != len(b.payload) || dls[0].Payload != nil {
			t.Fatalf("dead letters = %+v", dls)
		}
		table := mustRun(t, out, env, "dlq", "list")
		if !strings.Contains(table, b.uuid) || !strings.Contains(table, "permanent") || strings.Contains(table, marker) {
			t.Errorf("dlq list table (must show the dead letters, not their payload):\n%s", table)
		}
		if s := mustRun(t, out, env, "dlq", "list", "--show-payload", "--id", fmt.Sprint(dls[0].ID)); !strings.Contains(s, marker) {
			t.Errorf("dlq list --show-payload does not show the payload:\n%s", s)
		}
		if st := statusOf(t, out, env); st.DeadLetters != 2 || st.Pending != 0 {
			t.Errorf("status = %+v, want 2 dead letters and nothing pending", st)
		}

		// Acting on several dead letters needs --yes; acting on none needs a filter.
		if _, stderr, code := runRelay(t, out, env, "dlq", "replay", "--topic", topic); code != exitFailure ||
			!strings.Contains(stderr, "would replay 2 dead letters") || !strings.Contains(stderr, "--yes") {
			t.Errorf("replay of 2 without --yes: exit %d, %s", code, stderr)
		}
		if _, stderr, code := runRelay(t, out, env, "dlq", "purge"); code != exitUsage || !strings.Contains(stderr, "--all") {
			t.Errorf("purge without a filter: exit %d, %s", code, stderr)
		}
		if n := len(listDLQ(t, out, env)); n != 2 {
			t.Fatalf("a refused action touched dead letters: %d left", n)
		}

		// Raise the limit and replay the first one.
		c.SetMaxMessageBytes(t, topic, 1<<20)
		if s := mustRun(t, out, env, "dlq", "replay", "--id", fmt.Sprint(dls[0].ID)); !strings.Contains(s, "replayed 1 dead letter") {
			t.Errorf("replay printed %q", s)
		}
		recs = c.Consume(t, topic, 3, 30*time.Second)
		if id := recs[2].Headers[kafka.UUIDHeaderKey]; id != b.uuid || string(recs[2].Value) != string(b.payload) {
			t.Errorf("third record is %s, want the replayed %s", id, b.uuid)
		}
		// Purge the other one.
		if s := mustRun(t, out, env, "dlq", "purge", "--id", fmt.Sprint(dls[1].ID)); !strings.Contains(s, "purged 1 dead letter") {
			t.Errorf("purge printed %q", s)
		}
		if left := listDLQ(t, out, env); len(left) != 0 {
			t.Errorf("dead letters left: %+v", left)
		}
		p.signal(syscall.SIGTERM)
		if code := p.wait(20 * time.Second); code != 0 {
			t.Errorf("relay exited with %d", code)
		}
	})
}

func listDLQ(t testing.TB, out *outputLog, env []string) []deadLetterJSON {
	t.Helper()
	var dls []deadLetterJSON
	s := mustRun(t, out, env, "dlq", "list", "--json")
	if err := json.Unmarshal([]byte(s), &dls); err != nil {
		t.Fatalf("dlq list --json printed %q: %v", s, err)
	}
	return dls
}
