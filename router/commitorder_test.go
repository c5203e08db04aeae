package router_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// Commit order per key (docs/commit-order.md): the tests define commit order by
// something they control, a counter row per key that each writer increments under
// its row lock in the transaction that writes the key's event.

// sideTable creates a table of the test's own, for writes unrelated to the outbox
// and for the per-key counters.
func (e *env) sideTable(t *testing.T, suffix, columns string) string {
	t.Helper()
	name := e.ocfg.Name + suffix
	if _, err := e.db.Exec("CREATE TABLE " + name + " (" + columns + ")"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = e.db.Exec("DROP TABLE IF EXISTS " + name) })
	return name
}

// publishIn writes one event of key with the given seq header in tx.
func (e *env) publishIn(t testing.TB, tx *sql.Tx, key string, seq int) string {
	t.Helper()
	pub, err := outbox.NewPublisher(tx, e.ocfg)
	if err != nil {
		t.Fatal(err)
	}
	m := message.NewMessage(watermill.NewUUID(), []byte(key+":"+strconv.Itoa(seq)))
	m.Metadata.Set("seq", strconv.Itoa(seq))
	outbox.SetKey(m, key)
	if err := pub.Publish(e.topic, m); err != nil {
		t.Fatal(err)
	}
	return m.UUID
}

// The interleaving: T1 takes its transaction id first (it writes something
// unrelated), T2 writes "created" for the key and commits, then T1 writes "paid"
// and commits. Kafka must receive created, then paid.
func TestCommitOrderIsNotTransactionIDOrder(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d)
		side := e.sideTable(t, "_side", "id INT")
		start(t, e.forwarder(t, e.publisher(t, adapter.Config{}), nil))
		ctx := context.Background()

		t1, err := e.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = t1.Rollback() }()
		if _, err := t1.Exec("INSERT INTO " + side + " VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		t2, err := e.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		created := e.publishIn(t, t2, "order-42", 1)
		if d == outbox.Postgres {
			var x1, x2 string
			if err := t1.QueryRow("SELECT pg_current_xact_id()::text").Scan(&x1); err != nil {
				t.Fatal(err)
			}
			if err := t2.QueryRow("SELECT pg_current_xact_id()::text").Scan(&x2); err != nil {
				t.Fatal(err)
			}
			if mustUint(t, x1) >= mustUint(t, x2) {
				t.Fatalf("T1's transaction id %s is not below T2's %s: the scenario does not hold", x1, x2)
			}
		}
		if err := t2.Commit(); err != nil {
			t.Fatal(err)
		}
		paid := e.publishIn(t, t1, "order-42", 2)
		if err := t1.Commit(); err != nil {
			t.Fatal(err)
		}
		first, _ := delivered(e.consumeDistinct(t, 2, 30*time.Second))
		var got []string
		for _, r := range first {
			got = append(got, r.Headers[kafka.UUIDHeaderKey])
		}
		if want := []string{created, paid}; !slices.Equal(got, want) {
			t.Fatalf("Kafka received %v, want created then paid %v", got, want)
		}
	})
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Eight writers, 100 keys. Each transaction sometimes takes its transaction id
// early (an unrelated write), waits, then writes one to three keys' events; the
// seq of each event is its key's counter, incremented under the counter's row lock
// in the same transaction, so seq order is commit order. A tenth of the
// transactions roll back (their counter increments with them). Writers go on until
// 10,000 events are committed (2,000 with -short). Every committed event must reach
// Kafka, in seq order per key.
func TestCommitOrderPerKeyWithConcurrentWriters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d)
		side := e.sideTable(t, "_side", "id INT")
		counters := e.sideTable(t, "_counters", "k VARCHAR(16) PRIMARY KEY, n INT NOT NULL")
		const keys, writers = 100, 8
		events := 10000
		if testing.Short() {
			events = 2000
		}
		ph := func(i int) string {
			if d == outbox.Postgres {
				return "$" + strconv.Itoa(i)
			}
			return "?"
		}
		for k := range keys {
			if _, err := e.db.Exec("INSERT INTO "+counters+" VALUES ("+ph(1)+", 0)", keyName(k)); err != nil {
				t.Fatal(err)
			}
		}
		start(t, e.forwarder(t, e.publisher(t, adapter.Config{}), func(c *router.Config) { c.BatchSize = 500 }))

		var (
			mu        sync.Mutex
			committed = map[string]int{} // key -> highest committed seq
			total     int
			wg        sync.WaitGroup
		)
		enough := func() bool {
			mu.Lock()
			defer mu.Unlock()
			return total >= events
		}
		ctx := context.Background()
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 42))
				for !enough() {
					batch := 1 + rng.IntN(3)
					picked := map[int]bool{}
					for len(picked) < batch {
						picked[rng.IntN(keys)] = true
					}
					ks := make([]int, 0, batch)
					for k := range picked {
						ks = append(ks, k)
					}
					slices.Sort(ks) // one lock order: no deadlocks between writers
					tx, err := e.db.BeginTx(ctx, nil)
					if err != nil {
						t.Error(err)
						return
					}
					if rng.IntN(2) == 0 {
						// Take a transaction id now, write the events later.
						if _, err := tx.Exec("INSERT INTO " + side + " VALUES (1)"); err != nil {
							t.Error(err)
							_ = tx.Rollback()
							return
						}
						time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
					}
					seqs := map[string]int{}
					for _, k := range ks {
						key := keyName(k)
						var seq int
						if _, err := tx.Exec("UPDATE "+counters+" SET n = n + 1 WHERE k = "+ph(1), key); err != nil {
							t.Error(err)
							_ = tx.Rollback()
							return
						}
						if err := tx.QueryRow("SELECT n FROM "+counters+" WHERE k = "+ph(1), key).Scan(&seq); err != nil {
							t.Error(err)
							_ = tx.Rollback()
							return
						}
						e.publishIn(t, tx, key, seq)
						seqs[key] = seq
						time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
					}
					if rng.IntN(10) == 0 {
						_ = tx.Rollback()
						continue
					}
					if err := tx.Commit(); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for k, s := range seqs {
						committed[k] = max(committed[k], s)
					}
					total += len(seqs)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		recs := e.consumeDistinct(t, total, 2*time.Minute)
		first, dups := delivered(recs)
		if len(first) != total {
			t.Fatalf("%d distinct events in Kafka, want %d", len(first), total)
		}
		checkOrder(t, first) // strictly increasing seq per key, one partition per key
		last := map[string]int{}
		for _, r := range first {
			last[string(r.Key)]++
		}
		for k, n := range committed {
			if last[k] != n {
				t.Fatalf("key %s: %d events in Kafka, want seqs 1..%d", k, last[k], n)
			}
		}
		t.Logf("%d events committed by %d writers over %d keys; %d duplicates", total, writers, keys, dups)
	})
}

func keyName(k int) string { return fmt.Sprintf("key-%03d", k) }

// A write transaction in another database of the same server stays open while
// events trickle in (20/s): they reach Kafka at once. (Reading only below
// pg_snapshot_xmin, as watermill-sql does, held them all back until it ended.)
// The transaction is held 10 s, 30 s with MILLRACE_FULL.
func TestAnUnrelatedOpenTransactionDoesNotDelayForwarding(t *testing.T) {
	e := newEnv(t, outbox.Postgres)
	start(t, e.forwarder(t, e.publisher(t, adapter.Config{}), nil))
	hold := 10 * time.Second
	if os.Getenv("MILLRACE_FULL") != "" {
		hold = 30 * time.Second
	}

	other := dbtest.PostgresDatabase(t, "postgres")
	ctx := context.Background()
	blocker, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = blocker.Rollback() }()
	var xid string
	if err := blocker.QueryRow("SELECT pg_current_xact_id()::text").Scan(&xid); err != nil {
		t.Fatal(err)
	}

	arrived := make(map[string]time.Time)
	var amu sync.Mutex
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kc.Addrs()...), kgo.ConsumeTopics(e.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for cctx.Err() == nil {
			fs := cl.PollFetches(cctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				for _, h := range r.Headers {
					if h.Key == kafka.UUIDHeaderKey {
						amu.Lock()
						if _, ok := arrived[string(h.Value)]; !ok {
							arrived[string(h.Value)] = now
						}
						amu.Unlock()
					}
				}
			})
		}
	}()

	committedAt := map[string]time.Time{}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	begin := time.Now()
	for i := 1; time.Since(begin) < hold; i++ {
		<-tick.C
		id := e.write(t, e.topic, []ev{{key: "k" + strconv.Itoa(i%10), seq: i}}, true)[0]
		committedAt[id] = time.Now()
	}
	// Still open: the blocker really was there the whole time.
	var still string
	if err := blocker.QueryRow("SELECT pg_current_xact_id()::text").Scan(&still); err != nil || still != xid {
		t.Fatalf("blocking transaction ended early: %q, %v", still, err)
	}
	waitFor(t, 10*time.Second, "every event to arrive", func() bool {
		amu.Lock()
		defer amu.Unlock()
		return len(arrived) >= len(committedAt)
	})
	amu.Lock()
	var lat []time.Duration
	for id, c := range committedAt {
		lat = append(lat, max(arrived[id].Sub(c), 0))
	}
	amu.Unlock()
	slices.Sort(lat)
	p50, p99, worst := lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	t.Logf("%d events while transaction %s stayed open %v in database postgres: commit-to-Kafka p50 %v, p99 %v, max %v",
		len(lat), xid, hold, p50, p99, worst)
	// Alone on this machine p99 is under 10 ms; the bound leaves room for a loaded
	// CI machine (one run under load average 5 measured 100.3 ms), while a reader
	// held back by the transaction shows the whole hold time (10 s).
	if p99 > 250*time.Millisecond || worst > time.Second {
		t.Fatalf("events were held back by an unrelated open transaction: p99 %v, max %v", p99, worst)
	}
}
