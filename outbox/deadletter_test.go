package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/outbox"
)

// deadLetterAll reads n events in one batch, dead-letters those for which pick
// returns a class, and commits the whole batch.
func deadLetterAll(t *testing.T, r *outbox.Reader, n int, pick func(outbox.Event) string) {
	t.Helper()
	waitVisible(t, r, n)
	ctx := context.Background()
	b, err := r.Begin(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Rollback() }()
	evs := b.Events()
	for _, e := range evs {
		if class := pick(e); class != "" {
			if err := b.DeadLetter(ctx, e, errors.New("broker said no: "+e.Topic), class, 3); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Commit(ctx, evs[len(evs)-1].Position); err != nil {
		t.Fatal(err)
	}
}

func TestDeadLettersListReplayPurge(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		r := h.reader(t)
		binary := []byte{0xff, 0x00, 0xfe, 'z'}
		e1 := newMsg([]byte("one"), "k1", map[string]string{"h": "1"})
		e2 := newMsg(binary, "k2", map[string]string{"h": "2", "trace": "abc"})
		e3 := newMsg([]byte("three"), "k1", nil)
		h.publishTx(t, true, "orders", e1)
		h.publishTx(t, true, "payments", e2)
		h.publishTx(t, true, "orders", e3)

		deadLetterAll(t, r, 3, func(e outbox.Event) string {
			if e.UUID == e2.UUID {
				return "permanent"
			}
			return ""
		})
		dls, err := outbox.List(ctx, h.db, h.cfg, outbox.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) != 1 {
			t.Fatalf("List = %d dead letters, want 1", len(dls))
		}
		d := dls[0]
		if d.UUID != e2.UUID || d.Topic != "payments" || d.Key != "k2" || !bytes.Equal(d.Payload, binary) ||
			!maps.Equal(d.Metadata, map[string]string{"h": "2", "trace": "abc"}) || d.Reason != "broker said no: payments" ||
			d.Class != "permanent" || d.Attempts != 3 || d.CreatedAt.IsZero() || d.FailedAt.IsZero() || d.ID == 0 {
			t.Fatalf("dead letter = %+v", d)
		}
		if time.Since(d.FailedAt) > time.Hour || time.Until(d.FailedAt) > time.Hour {
			t.Errorf("FailedAt %v is not now", d.FailedAt)
		}

		// The dead-lettered event was acked with its batch: nothing left to read.
		expectNothing(t, r)

		// Replay puts it back after what is pending, with the same UUID.
		pending := newMsg([]byte("pending"), "k3", nil)
		h.publishTx(t, true, "orders", pending)
		n, err := outbox.Replay(ctx, h.db, h.cfg, outbox.Filter{IDs: []int64{d.ID}})
		if err != nil || n != 1 {
			t.Fatalf("Replay = %d, %v; want 1", n, err)
		}
		if left, err := outbox.List(ctx, h.db, h.cfg, outbox.Filter{}); err != nil || len(left) != 0 {
			t.Fatalf("List after Replay = %v, %v; want none", left, err)
		}
		evs := readN(t, r, 10, 2)
		if got := uuids(evs); !equalStrings(got, msgUUIDs(pending, e2)) {
			t.Fatalf("after Replay read %v, want %v", got, msgUUIDs(pending, e2))
		}
		re := evs[1]
		if re.Topic != "payments" || re.Key != "k2" || !bytes.Equal(re.Payload, binary) || !maps.Equal(re.Metadata, d.Metadata) {
			t.Fatalf("replayed event = %+v", re)
		}

		// Filters, Purge.
		var msgs []*message.Message
		for i, topic := range []string{"a", "b", "b", "c"} {
			m := newMsg([]byte{byte(i)}, "", nil)
			msgs = append(msgs, m)
			h.publishTx(t, true, topic, m)
		}
		deadLetterAll(t, r, 4, func(e outbox.Event) string {
			if e.Topic == "c" {
				return "fatal"
			}
			return "permanent"
		})
		count := func(f outbox.Filter) int {
			t.Helper()
			dls, err := outbox.List(ctx, h.db, h.cfg, f)
			if err != nil {
				t.Fatal(err)
			}
			return len(dls)
		}
		all, err := outbox.List(ctx, h.db, h.cfg, outbox.Filter{})
		if err != nil || len(all) != 4 {
			t.Fatalf("List = %d, %v", len(all), err)
		}
		for _, c := range []struct {
			name string
			f    outbox.Filter
			want int
		}{
			{"by topic", outbox.Filter{Topic: "b"}, 2},
			{"by class", outbox.Filter{Class: "fatal"}, 1},
			{"by ids", outbox.Filter{IDs: []int64{all[0].ID, all[3].ID}}, 2},
			{"by empty ids", outbox.Filter{IDs: []int64{}}, 0},
			{"failed before the past", outbox.Filter{Before: time.Now().Add(-time.Hour)}, 0},
			{"failed before the future", outbox.Filter{Before: time.Now().Add(time.Hour)}, 4},
			{"limited", outbox.Filter{Limit: 3}, 3},
			{"combined", outbox.Filter{Topic: "b", Class: "fatal"}, 0},
		} {
			if got := count(c.f); got != c.want {
				t.Errorf("List %s = %d, want %d", c.name, got, c.want)
			}
		}
		if _, err := outbox.List(ctx, h.db, h.cfg, outbox.Filter{Limit: -1}); !errors.Is(err, outbox.ErrInvalidFilter) {
			t.Errorf("List with a negative limit = %v, want ErrInvalidFilter", err)
		}
		if _, err := outbox.Purge(ctx, h.db, h.cfg, outbox.Filter{}); !errors.Is(err, outbox.ErrInvalidFilter) {
			t.Errorf("Purge with an empty filter = %v, want ErrInvalidFilter", err)
		}
		if _, err := outbox.Replay(ctx, h.db, h.cfg, outbox.Filter{Limit: 5}); !errors.Is(err, outbox.ErrInvalidFilter) {
			t.Errorf("Replay with no criterion = %v, want ErrInvalidFilter", err)
		}
		if n, err := outbox.Purge(ctx, h.db, h.cfg, outbox.Filter{Topic: "b"}); err != nil || n != 2 {
			t.Fatalf("Purge topic b = %d, %v; want 2", n, err)
		}
		if got := count(outbox.Filter{}); got != 2 {
			t.Fatalf("after Purge %d dead letters, want 2", got)
		}
		if n, err := outbox.Purge(ctx, h.db, h.cfg, outbox.Filter{All: true, Limit: 1}); err != nil || n != 1 {
			t.Fatalf("Purge all limit 1 = %d, %v; want 1", n, err)
		}
		if n, err := outbox.Replay(ctx, h.db, h.cfg, outbox.Filter{All: true}); err != nil || n != 1 {
			t.Fatalf("Replay all = %d, %v; want 1", n, err)
		}
		if got := count(outbox.Filter{}); got != 0 {
			t.Fatalf("%d dead letters left, want 0", got)
		}
		if got := readN(t, r, 10, 1); got[0].Topic != "c" {
			t.Fatalf("replayed %+v, want the topic c event", got[0])
		}
	})
}
