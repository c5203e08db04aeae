package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/outbox"
)

// Eight writers commit many small transactions (a tenth rolled back) while a reader
// drains in batches of 100: every committed event arrives exactly once, per key in
// commit order, and no rolled-back event arrives.
func TestConcurrentWritersExactlyOnceInKeyOrder(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		const (
			writers     = 8
			txPerWriter = 40
			keys        = 16
		)
		var (
			keyMu   [keys]sync.Mutex
			nextSeq [keys]int // guarded by keyMu[k]

			mu         sync.Mutex
			committed  = map[string]string{} // uuid -> "key:seq:i"
			rolledBack = map[string]bool{}
		)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 42))
				for range txPerWriter {
					k := rng.IntN(keys)
					commit := rng.IntN(10) != 0
					// Transactions of one key never overlap, so their commit order is
					// well defined: it is the order of nextSeq.
					keyMu[k].Lock()
					seq := nextSeq[k]
					var msgs []*message.Message
					for i := range 1 + rng.IntN(3) {
						tag := fmt.Sprintf("%d:%d:%d", k, seq, i)
						msgs = append(msgs, newMsg([]byte(tag), "key-"+strconv.Itoa(k), map[string]string{"tag": tag}))
					}
					topic := "topic-" + strconv.Itoa(rng.IntN(3))
					err := h.tryPublishTx(commit, topic, msgs...)
					if err == nil && commit {
						nextSeq[k]++
					}
					keyMu[k].Unlock()
					if err != nil {
						t.Errorf("writer %d: %v", w, err)
						return
					}
					mu.Lock()
					for _, m := range msgs {
						if commit {
							committed[m.UUID] = m.Metadata.Get("tag")
						} else {
							rolledBack[m.UUID] = true
						}
					}
					mu.Unlock()
				}
			})
		}
		writersDone := make(chan struct{})
		go func() { wg.Wait(); close(writersDone) }()

		r := h.reader(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var got []outbox.Event
		done := false
		for {
			b, err := r.Begin(ctx, 100)
			if err != nil {
				t.Fatalf("Begin: %v", err)
			}
			evs := b.Events()
			if len(evs) > 100 {
				t.Fatalf("batch of %d events, limit 100", len(evs))
			}
			if len(evs) == 0 {
				if err := b.Rollback(); err != nil {
					t.Fatal(err)
				}
				if done {
					mu.Lock()
					n := len(committed)
					mu.Unlock()
					if len(got) >= n {
						break
					}
				}
				select {
				case <-writersDone:
					done = true
				case <-time.After(5 * time.Millisecond):
				case <-ctx.Done():
					t.Fatalf("timed out with %d events read", len(got))
				}
				continue
			}
			if err := b.Commit(ctx, evs[len(evs)-1].Position); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			got = append(got, evs...)
		}

		expectNothing(t, r)
		seen := map[string]bool{}
		last := map[string][2]int{} // key -> last (seq, i)
		for _, e := range got {
			if seen[e.UUID] {
				t.Errorf("event %s read twice", e.UUID)
			}
			seen[e.UUID] = true
			if rolledBack[e.UUID] {
				t.Errorf("rolled-back event %s was read", e.UUID)
				continue
			}
			tag, ok := committed[e.UUID]
			if !ok {
				t.Errorf("unknown event %s", e.UUID)
				continue
			}
			if string(e.Payload) != tag || e.Metadata["tag"] != tag {
				t.Errorf("event %s: payload %q metadata %v, want %q", e.UUID, e.Payload, e.Metadata, tag)
			}
			var k, seq, i int
			if _, err := fmt.Sscanf(tag, "%d:%d:%d", &k, &seq, &i); err != nil {
				t.Fatal(err)
			}
			if e.Key != "key-"+strconv.Itoa(k) {
				t.Errorf("event %s key %q, want key-%d", e.UUID, e.Key, k)
			}
			if prev, ok := last[e.Key]; ok && (seq < prev[0] || (seq == prev[0] && i <= prev[1])) {
				t.Errorf("key %s: event %d:%d read after %d:%d (commit order broken)", e.Key, seq, i, prev[0], prev[1])
			}
			last[e.Key] = [2]int{seq, i}
		}
		for id, tag := range committed {
			if !seen[id] {
				t.Errorf("committed event %s (%s) never read", id, tag)
			}
		}
		t.Logf("%d events committed, %d rolled back, %d read", len(committed), len(rolledBack), len(got))
	})
}

// A transaction that wrote first (lower offset, and on PostgreSQL lower transaction
// id) stays open while a later one commits: the later event is delivered at once,
// and the held one after it commits, never skipped.
func TestHeldOpenTransactionIsNotSkipped(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		r := h.reader(t)
		e0 := newMsg([]byte("before"), "k", nil)
		h.publishTx(t, true, "t", e0)

		held, err := h.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = held.Rollback() }()
		pub, err := outbox.NewPublisher(held, h.cfg)
		if err != nil {
			t.Fatal(err)
		}
		eHeld := newMsg([]byte("held"), "k", nil)
		if err := pub.Publish("t", eHeld); err != nil {
			t.Fatal(err)
		}
		eLater := newMsg([]byte("later"), "other", nil)
		h.publishTx(t, true, "t", eLater)

		// The later commit is delivered at once; prove it really has the higher
		// offset (and, on PostgreSQL, the higher transaction id), i.e. that an
		// offset cursor would have skipped eHeld and that watermill-sql's rule
		// would have held eLater back.
		if got := uuids(readN(t, r, 10, 2)); !equalStrings(got, msgUUIDs(e0, eLater)) {
			t.Fatalf("while held: read %v, want %v", got, msgUUIDs(e0, eLater))
		}
		var heldOff, laterOff int64
		q := "SELECT `offset` FROM " + h.table("") + " WHERE uuid = ?"
		if h.cfg.Dialect == outbox.Postgres {
			q = `SELECT "offset" FROM ` + h.table("") + ` WHERE uuid = $1`
		}
		if err := h.db.QueryRow(q, eLater.UUID).Scan(&laterOff); err != nil {
			t.Fatal(err)
		}
		if err := held.QueryRow(q, eHeld.UUID).Scan(&heldOff); err != nil {
			t.Fatal(err)
		}
		if heldOff >= laterOff {
			t.Fatalf("held offset %d not below later offset %d: the test does not test anything", heldOff, laterOff)
		}
		if h.cfg.Dialect == outbox.Postgres {
			var heldTx, laterTx string
			q := `SELECT transaction_id::text FROM ` + h.table("") + ` WHERE uuid = $1`
			if err := h.db.QueryRow(q, eLater.UUID).Scan(&laterTx); err != nil {
				t.Fatal(err)
			}
			if err := held.QueryRow(q, eHeld.UUID).Scan(&heldTx); err != nil {
				t.Fatal(err)
			}
			if len(heldTx) > len(laterTx) || (len(heldTx) == len(laterTx) && heldTx >= laterTx) {
				t.Fatalf("held transaction id %s not below later %s", heldTx, laterTx)
			}
		}
		expectNothing(t, r)
		if err := held.Commit(); err != nil {
			t.Fatal(err)
		}

		want := msgUUIDs(eHeld)
		if got := uuids(readN(t, r, 10, len(want))); !equalStrings(got, want) {
			t.Fatalf("after commit: read %v, want %v", got, want)
		}
		expectNothing(t, r)
	})
}

// A batch that is rolled back, or whose connection dies with its context, records
// nothing: the same events are read again.
func TestUncommittedBatchIsReadAgain(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		var msgs []*message.Message
		for i := range 5 {
			msgs = append(msgs, newMsg([]byte{byte(i)}, "k", nil))
		}
		h.publishTx(t, true, "t", msgs...)
		r := h.reader(t)
		ctx := context.Background()
		waitVisible(t, r, 5)

		b, err := r.Begin(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = b.Rollback() }()
		if got := uuids(b.Events()); !equalStrings(got, msgUUIDs(msgs[:3]...)) {
			t.Fatalf("first batch %v", got)
		}
		if err := b.Rollback(); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, b.Events()[0].Position); !errors.Is(err, outbox.ErrBatchDone) {
			t.Fatalf("Commit after Rollback = %v, want ErrBatchDone", err)
		}

		// A forwarder "killed" mid-batch: its context ends, database/sql rolls back and
		// discards the connection.
		crashCtx, crash := context.WithCancel(ctx)
		defer crash()
		b, err = r.Begin(crashCtx, 3)
		if err != nil {
			t.Fatal(err)
		}
		if got := uuids(b.Events()); !equalStrings(got, msgUUIDs(msgs[:3]...)) {
			t.Fatalf("batch after rollback %v", got)
		}
		// Meanwhile a standby (another reader of the group) cannot get in...
		standby := h.reader(t)
		shortCtx, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err = standby.Begin(shortCtx, 10)
		cancelShort()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("standby Begin while the batch is open = %v, want DeadlineExceeded", err)
		}
		crash()
		// ...until the first one dies; then it reads the same events again.
		if got := uuids(readN(t, standby, 10, 5)); !equalStrings(got, msgUUIDs(msgs...)) {
			t.Fatalf("after crash: read %v, want all %v", got, msgUUIDs(msgs...))
		}
		expectNothing(t, standby)
	})
}

// A standby waiting for the group's lock returns promptly when its context ends.
func TestStandbyHonoursContext(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		h.publishTx(t, true, "t", newMsg([]byte("x"), "", nil))
		leader := h.reader(t)
		b, err := leader.Begin(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = b.Rollback() }()

		cfg := h.cfg
		cfg.LockPollInterval = 5 * time.Second // the driver must interrupt the wait itself
		standby, err := outbox.NewReader(h.db, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(150*time.Millisecond, cancel)
		start := time.Now()
		_, err = standby.Begin(ctx, 10)
		elapsed := time.Since(start)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("standby Begin = %v, want context.Canceled", err)
		}
		if elapsed > 2*time.Second {
			t.Fatalf("standby returned %v after cancel, want promptly", elapsed-150*time.Millisecond)
		}
		t.Logf("standby returned %v after its context was cancelled", elapsed-150*time.Millisecond)
	})
}

// Two readers of one group run concurrently with a writer: their committed batches
// together hold every event once, in publish order.
func TestTwoReadersShareOneGroup(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		const total = 300
		var want []string
		writerDone := make(chan struct{})
		var wantMu sync.Mutex
		go func() {
			defer close(writerDone)
			for i := 0; i < total; i += 10 {
				var msgs []*message.Message
				for j := range 10 {
					msgs = append(msgs, newMsg([]byte(strconv.Itoa(i+j)), "k"+strconv.Itoa(j%3), nil))
				}
				if err := h.tryPublishTx(true, "t", msgs...); err != nil {
					t.Error(err)
					return
				}
				wantMu.Lock()
				want = append(want, msgUUIDs(msgs...)...)
				wantMu.Unlock()
			}
		}()

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var (
			logMu   sync.Mutex
			log     []string
			batches [2]int
		)
		var wg sync.WaitGroup
		for i := range 2 {
			r := h.reader(t)
			wg.Go(func() {
				for ctx.Err() == nil {
					logMu.Lock()
					n := len(log)
					logMu.Unlock()
					if n >= total {
						return
					}
					b, err := r.Begin(ctx, 25)
					if err != nil {
						if ctx.Err() == nil {
							t.Errorf("reader %d: Begin: %v", i, err)
						}
						return
					}
					evs := b.Events()
					if len(evs) == 0 {
						_ = b.Rollback()
						time.Sleep(2 * time.Millisecond)
						continue
					}
					time.Sleep(time.Millisecond) // "forwarding"
					// Log while holding the group's lock, so the log is in commit order.
					logMu.Lock()
					log = append(log, uuids(evs)...)
					if err := b.Commit(ctx, evs[len(evs)-1].Position); err != nil {
						log = log[:len(log)-len(evs)]
						logMu.Unlock()
						t.Errorf("reader %d: Commit: %v", i, err)
						return
					}
					batches[i]++
					logMu.Unlock()
				}
			})
		}
		wg.Wait()
		<-writerDone
		if !equalStrings(log, want) {
			t.Fatalf("read %d events, want %d in publish order (first difference at %d)", len(log), len(want), firstDiff(log, want))
		}
		t.Logf("batches per reader: %v", batches)
	})
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestCommitChecksItsPosition(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		m1, m2 := newMsg([]byte("1"), "", nil), newMsg([]byte("2"), "", nil)
		h.publishTx(t, true, "t", m1, m2)
		r := h.reader(t)
		ctx := context.Background()
		waitVisible(t, r, 2)
		b, err := r.Begin(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		b2pos := func() outbox.Position { // a position from another batch
			_ = b.Rollback()
			b2, err := r.Begin(ctx, 2)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = b2.Rollback() }()
			return b2.Events()[1].Position
		}()
		b, err = r.Begin(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = b.Rollback() }()
		if err := b.Commit(ctx, b2pos); !errors.Is(err, outbox.ErrPositionNotInBatch) {
			t.Fatalf("Commit beyond the batch = %v, want ErrPositionNotInBatch", err)
		}
		// Dead-lettering an event and then not acking it is refused.
		if err := b.DeadLetter(ctx, b.Events()[0], errors.New("bad"), "permanent", 1); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, outbox.Position{}); err == nil || !strings.Contains(err.Error(), "dead-lettered") {
			t.Fatalf("Commit before a dead letter = %v, want a refusal", err)
		}
		// The batch is still usable after the refusals.
		if err := b.Commit(ctx, b.Events()[0].Position); err != nil {
			t.Fatal(err)
		}
		if got := uuids(readN(t, r, 10, 1)); !equalStrings(got, msgUUIDs(m2)) {
			t.Fatalf("after commit read %v, want %v", got, msgUUIDs(m2))
		}
		if _, err := r.Begin(ctx, 0); err == nil {
			t.Fatal("Begin with limit 0 succeeded")
		}
	})
}

func TestStats(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		r := h.reader(t)
		s, err := r.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s != (outbox.Stats{}) {
			t.Fatalf("empty outbox stats = %+v", s)
		}
		h.publishTx(t, true, "t", newMsg([]byte("1"), "", nil), newMsg([]byte("2"), "", nil), newMsg([]byte("3"), "", nil))
		h.ageEvents(t, time.Minute)
		s, err = r.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Pending != 3 || s.OldestPending < time.Minute || s.OldestPending > 10*time.Minute || !s.LastForwardedAt.IsZero() {
			t.Fatalf("stats before reading = %+v", s)
		}
		waitVisible(t, r, 2)
		b, err := r.Begin(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = b.Rollback() }()
		if err := b.DeadLetter(ctx, b.Events()[0], errors.New("x"), "permanent", 5); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, b.Events()[1].Position); err != nil {
			t.Fatal(err)
		}
		s, err = r.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Pending != 1 || s.DeadLetters != 1 || s.LastForwardedAt.IsZero() || time.Since(s.LastForwardedAt) > time.Hour {
			t.Fatalf("stats after a batch = %+v", s)
		}
	})
}
