package router_test

import (
	"context"
	"hash/fnv"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/kafkatest"
	"github.com/millrace/millrace/outbox"
)

// partitionOf is the partition sarama's default hash partitioner (and so
// watermill-kafka and adapter.KafkaPublisher) picks for key among n.
func partitionOf(key string, n int32) int32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	p := int32(h.Sum32()) % n
	if p < 0 {
		p = -p
	}
	return p
}

// keysOnDistinctPartitions returns count keys with prefix, each on its own partition
// of a 6-partition topic.
func keysOnDistinctPartitions(t *testing.T, prefix string, count int) []string {
	t.Helper()
	used := map[int32]bool{}
	var keys []string
	for i := 0; len(keys) < count && i < 10000; i++ {
		k := prefix + strconv.Itoa(i)
		if p := partitionOf(k, 6); !used[p] {
			used[p] = true
			keys = append(keys, k)
		}
	}
	if len(keys) < count {
		t.Fatalf("no %d keys on distinct partitions", count)
	}
	return keys
}

// An event in the middle of a call fails retriably once, while the events after it
// (on other partitions) are written: progress must stop before it, so that the next
// batch sends it again. Committing past it would lose it for good.
func TestAnEventFailingRetriablyInTheMiddleOfACallIsSentAgain(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d)
		keys := keysOnDistinctPartitions(t, "mid", 3)
		evs := []ev{{key: keys[0], seq: 1}, {key: keys[1], seq: 1}, {key: keys[2], seq: 1}}
		middle := keys[1] + ":1" // its payload
		// UNKNOWN_SERVER_ERROR: franz-go gives it back at once; the decorator makes no
		// retry of its own, so the forwarder sees the failure.
		fault := e.kc.FailProduceWhere(t, e.topic, kerr.UnknownServerError, 1, func(r kafkatest.Record) bool {
			return string(r.Value) == middle
		})
		uuids := e.write(t, e.topic, evs, true)
		f := e.forwarder(t, e.publisher(t, adapter.Config{MaxRetries: -1}), nil)
		start(t, f)

		recs := e.consumeDistinct(t, 3, 20*time.Second)
		first, dups := delivered(recs)
		got := map[string]bool{}
		for _, r := range first {
			got[r.Headers[kafka.UUIDHeaderKey]] = true
		}
		for i, id := range uuids {
			if !got[id] {
				t.Fatalf("event %d (%s) never arrived", i, id)
			}
		}
		if fault.Hits() != 1 {
			t.Fatalf("the fault answered %d times, want 1", fault.Hits())
		}
		waitFor(t, 5*time.Second, "the failed batch in the stats", func() bool { return f.Stats().BatchFailures >= 1 })
		if dl, _ := outbox.List(context.Background(), e.db, e.ocfg, outbox.Filter{}); len(dl) != 0 {
			t.Fatalf("%d dead letters, want none", len(dl))
		}
		t.Logf("%s: %d duplicates (the event after the failed one, sent again)", d, dups)
	})
}

// A bad event of a key is rejected by the broker together with the key's later
// events, and isolating it is cut short by a retriable failure: the key's events
// behind that failure must be held back, not written ahead of the ones that failed,
// and not dead-lettered with the bad one. Only the bad event becomes a dead letter;
// the others arrive once each in order.
func TestAKeysLaterEventsAreHeldBackBehindItsFailedOnes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d)
		evs := make([]ev, 8)
		for i := range evs {
			evs[i] = ev{key: "k", seq: i + 1}
		}
		evs[1].payload = []byte("bad")
		// Every batch holding "bad" is rejected (INVALID_RECORD). The publisher then
		// resends in halves, in order: [1..4] rejected, [1,bad] rejected, [1] written,
		// [bad] rejected alone; then [3,4] meets UNKNOWN_SERVER_ERROR (given back by
		// franz-go at once), which stops the isolation: 5..8 were never resent.
		invalid := e.kc.FailProduceWhere(t, e.topic, kerr.InvalidRecord, -1, func(r kafkatest.Record) bool { return string(r.Value) == "bad" })
		e.kc.FailProduceWhere(t, e.topic, kerr.UnknownServerError, 1, func(r kafkatest.Record) bool {
			return string(r.Value) == "k:3" && invalid.Hits() >= 4
		})
		uuids := e.write(t, e.topic, evs, true)
		f := e.forwarder(t, e.publisher(t, adapter.Config{MaxRetries: -1}), nil)
		start(t, f)

		recs := e.consumeDistinct(t, 7, 20*time.Second)
		first, _ := delivered(recs)
		checkOrder(t, first)
		var dl []outbox.DeadLetter
		waitFor(t, 5*time.Second, "the dead letter", func() bool {
			dl, _ = outbox.List(context.Background(), e.db, e.ocfg, outbox.Filter{})
			return len(dl) > 0
		})
		time.Sleep(300 * time.Millisecond)
		dl, _ = outbox.List(context.Background(), e.db, e.ocfg, outbox.Filter{})
		if len(dl) != 1 || dl[0].UUID != uuids[1] {
			t.Fatalf("dead letters %+v, want only the bad event %s", dl, uuids[1])
		}
		if len(first) != 7 {
			t.Fatalf("%d distinct events arrived, want the 7 good ones", len(first))
		}
		if f.Stats().BatchFailures == 0 {
			t.Fatal("no batch failed: the retriable failure that cuts the isolation short did not happen")
		}
	})
}
