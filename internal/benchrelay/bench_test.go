package benchrelay

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/dbtest"
)

// TestBenchRelayQuick runs the benchmark with tiny numbers (500 events, no added
// latency, a one-second trickle, no memory test) and checks what the benchmark
// exists to show besides speed: with both paths, every committed event reaches
// Kafka and the events of a key keep their commit order.
func TestBenchRelayQuick(t *testing.T) {
	dsn := dbtest.PostgresDSN()
	if db, err := sql.Open("pgx", dsn); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
		if err != nil {
			dbtest.Unavailable(t, "postgres", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	res, err := Run(ctx, Config{
		DSN:             dsn,
		Latencies:       []time.Duration{0},
		Events:          500,
		TrickleRate:     100,
		TrickleDuration: time.Second,
		MemoryEvents:    []int{-1},
		PhaseTimeout:    time.Minute,
		Progress:        &progress,
	})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	res.Markdown(&report)
	t.Log("\n" + report.String())

	want := map[string]bool{}
	for _, test := range []string{testDrain, testTrickle} {
		for _, p := range []string{pathStock, pathOurs} {
			want[test+"/"+p] = true
		}
	}
	for _, r := range res.Rows {
		name := r.Test + "/" + r.Path
		delete(want, name)
		if r.Err != "" {
			t.Errorf("%s: %s", name, r.Err)
		}
		if r.Lost != 0 || r.Unknown != 0 {
			t.Errorf("%s: %d of %d events lost, %d unknown records", name, r.Lost, r.Events, r.Unknown)
		}
		if r.OrderViolations != 0 || r.WrongKey != 0 || r.SplitKeys != 0 {
			t.Errorf("%s: per-key order broken: %d events out of order, %d with the wrong key, %d keys over several partitions",
				name, r.OrderViolations, r.WrongKey, r.SplitKeys)
		}
		if r.Rate <= 0 {
			t.Errorf("%s: rate %v, want positive", name, r.Rate)
		}
		if r.Test == testTrickle && (r.P50 <= 0 || r.P99 < r.P50) {
			t.Errorf("%s: latency p50 %v p99 %v, want 0 < p50 <= p99", name, r.P50, r.P99)
		}
	}
	for name := range want {
		t.Errorf("%s: no result", name)
	}
}

// TestVerifyCountsProblems pins the verification the benchmark reports: a lost
// event, a duplicate, an event of a key read after a later one, and a key split over
// two partitions are each counted.
func TestVerifyCountsProblems(t *testing.T) {
	l := newLedger(4)
	now := time.Now()
	l.committed([]event{
		{uuid: "a1", key: "a", seq: 0}, {uuid: "a2", key: "a", seq: 1}, {uuid: "a3", key: "a", seq: 2},
		{uuid: "b1", key: "b", seq: 0}, {uuid: "c1", key: "c", seq: 0}, {uuid: "c2", key: "c", seq: 1},
	}, now)
	recs := []record{
		{uuid: "a2", key: "a", partition: 0, offset: 0, seen: now},
		{uuid: "a1", key: "a", partition: 0, offset: 1, seen: now}, // after a later event of a
		{uuid: "a2", key: "a", partition: 0, offset: 2, seen: now}, // duplicate
		{uuid: "a3", key: "a", partition: 0, offset: 3, seen: now},
		{uuid: "c1", key: "c", partition: 1, offset: 0, seen: now},
		{uuid: "c2", key: "c", partition: 2, offset: 0, seen: now}, // c split over partitions 1 and 2
		{uuid: "zz", key: "z", partition: 1, offset: 1, seen: now}, // never committed
		// b1 lost
	}
	v := verify(l, recs)
	if v.lost != 1 || v.duplicates != 1 || v.orderViolations != 1 || v.splitKeys != 1 || v.unknown != 1 || v.distinct != 5 {
		t.Fatalf("verify = lost %d, dup %d, order %d, split %d, unknown %d, distinct %d; want 1, 1, 1, 1, 1, 5",
			v.lost, v.duplicates, v.orderViolations, v.splitKeys, v.unknown, v.distinct)
	}
}
