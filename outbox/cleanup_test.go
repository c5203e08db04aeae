package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/outbox"
)

func TestCleanupDeletesOnlyOldForwardedEvents(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		var msgs []*message.Message
		for i := range 5 {
			m := newMsg([]byte{byte(i)}, "k", nil)
			msgs = append(msgs, m)
			h.publishTx(t, true, "t", m)
		}
		h.ageEvents(t, 48*time.Hour)

		// No consumer group has read anything: nothing is forwarded.
		if n, err := outbox.Cleanup(ctx, h.db, h.cfg, time.Hour, 2); err != nil || n != 0 {
			t.Fatalf("Cleanup before any reader = %d, %v; want 0", n, err)
		}
		r := h.reader(t)
		openAndRollback(t, r) // records the group at position zero
		if n, err := outbox.Cleanup(ctx, h.db, h.cfg, time.Hour, 2); err != nil || n != 0 {
			t.Fatalf("Cleanup with a reader at position zero = %d, %v; want 0", n, err)
		}

		// Forward the first three; a new event arrives.
		if got := uuids(readN(t, r, 3, 3)); !equalStrings(got, msgUUIDs(msgs[:3]...)) {
			t.Fatalf("read %v", got)
		}
		fresh := newMsg([]byte("fresh"), "k", nil)
		h.publishTx(t, true, "t", fresh)

		// Only the three old forwarded events go, two rows per statement.
		if n, err := outbox.Cleanup(ctx, h.db, h.cfg, time.Hour, 2); err != nil || n != 3 {
			t.Fatalf("Cleanup = %d, %v; want 3", n, err)
		}
		if n := h.countEvents(t); n != 3 {
			t.Fatalf("%d rows left, want 3", n)
		}
		want := msgUUIDs(msgs[3], msgs[4], fresh)
		if got := uuids(readN(t, r, 10, 3)); !equalStrings(got, want) {
			t.Fatalf("pending events after Cleanup: read %v, want %v", got, want)
		}

		// Everything is forwarded now, but the fresh event is younger than the age.
		if n, err := outbox.Cleanup(ctx, h.db, h.cfg, 0, 0); err != nil || n != 2 {
			t.Fatalf("Cleanup with defaults = %d, %v; want 2", n, err)
		}
		if n := h.countEvents(t); n != 1 {
			t.Fatalf("%d rows left, want 1", n)
		}

		// A second consumer group that has read nothing protects every event.
		h.publishTx(t, true, "t", newMsg([]byte("x"), "k", nil))
		h.ageEvents(t, 48*time.Hour)
		other := h.cfg
		other.ConsumerGroup = "audit"
		ro, err := outbox.NewReader(h.db, other)
		if err != nil {
			t.Fatal(err)
		}
		openAndRollback(t, ro)
		if n, err := outbox.Cleanup(ctx, h.db, h.cfg, time.Hour, 0); err != nil || n != 0 {
			t.Fatalf("Cleanup with a lagging group = %d, %v; want 0", n, err)
		}

		if _, err := outbox.Cleanup(ctx, h.db, h.cfg, -time.Second, 0); err == nil {
			t.Fatal("Cleanup with a negative age succeeded")
		}
		if _, err := outbox.Cleanup(ctx, h.db, h.cfg, 0, -1); err == nil {
			t.Fatal("Cleanup with a negative batch size succeeded")
		}
	})
}

func openAndRollback(t *testing.T, r *outbox.Reader) {
	t.Helper()
	b, err := r.Begin(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Rollback(); err != nil {
		t.Fatal(err)
	}
}
