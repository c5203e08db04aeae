package outbox_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/millrace/millrace/outbox"
)

// FuzzRawRow writes one arbitrary row through SQL between two good events, on
// PostgreSQL and MariaDB, and reads the outbox as the relay does (an event with Err
// is set aside with DeadLetter). Whatever the row holds (any bytes in metadata,
// topic, key and payload; NULL; JSON that is not an object of strings), it must end
// as exactly one event or one dead letter, the good events must be read around it
// in order, and nothing may stay pending. A row the database refuses to store
// cannot stop anything and is skipped. The seeds (f.Add and testdata/fuzz) run in
// `make test`; `make fuzz` explores.
func FuzzRawRow(f *testing.F) {
	f.Add([]byte(`{"_millrace_topic":"orders","n":1}`), "orders", "k", []byte("x"), uint8(0))
	f.Add([]byte(`[1,2,3]`), "", "", []byte(nil), uint8(0))
	f.Add([]byte(`null`), "", "", []byte{0}, uint8(0))
	f.Add([]byte(nil), "orders", "k", []byte("p"), uint8(2))
	f.Add([]byte(`{}`), "a\x00b", "k\x00", []byte("p"), uint8(1))
	f.Add([]byte(`{"a":{"b":[]}}`), string(make([]byte, 300)), "\xff\xfe", []byte("p"), uint8(3))
	f.Add([]byte(`"s"`), "orders", "", []byte("p"), uint8(3))
	var hs []*harness
	for _, d := range dialects {
		hs = append(hs, newHarness(f, d))
	}
	f.Fuzz(func(t *testing.T, metadata []byte, topic, key string, payload []byte, form uint8) {
		var md *string
		switch form % 4 {
		case 0: // the bytes as the column's text
			s := string(metadata)
			md = &s
		case 1: // an object holding topic and key, whatever their bytes
			b, _ := json.Marshal(map[string]string{outbox.TopicMetadata: topic, outbox.KeyMetadata: key})
			s := string(b)
			md = &s
		case 2: // NULL
		case 3: // an object with the topic and the bytes as a value of any JSON type
			b, _ := json.Marshal(topic)
			s := `{"` + outbox.TopicMetadata + `":` + string(b) + `,"x":` + string(metadata) + `}`
			md = &s
		}
		for _, h := range hs {
			checkRawRow(t, h, md, payload)
		}
	})
}

func checkRawRow(t *testing.T, h *harness, md *string, payload []byte) {
	ctx := context.Background()
	r := h.reader(t)
	g1, g2 := newMsg([]byte("g1"), "k", nil), newMsg([]byte("g2"), "k", nil)
	h.publishTx(t, true, "good", g1)
	id := watermill.NewUUID()
	stored := h.tryInsertRow(id, payload, md) == nil
	h.publishTx(t, true, "good", g2)

	var goodSeen []string
	rowHandled := 0
	for range 100 {
		b, err := r.Begin(ctx, 2)
		if err != nil {
			t.Fatalf("%s: Begin: %v", h.cfg.Dialect, err)
		}
		evs := b.Events()
		if len(evs) == 0 {
			_ = b.Rollback()
			break
		}
		for _, ev := range evs {
			switch {
			case ev.UUID == id:
				rowHandled++
				if ev.Err != nil {
					if err := b.DeadLetter(ctx, ev, ev.Err, "malformed", 0); err != nil {
						t.Fatalf("%s: row %q: DeadLetter: %v", h.cfg.Dialect, derefOr(md), err)
					}
				}
			case ev.Err != nil:
				t.Fatalf("%s: good event %s read as malformed: %v", h.cfg.Dialect, ev.UUID, ev.Err)
			default:
				goodSeen = append(goodSeen, ev.UUID)
			}
		}
		if err := b.Commit(ctx, evs[len(evs)-1].Position); err != nil {
			t.Fatalf("%s: Commit: %v", h.cfg.Dialect, err)
		}
	}
	if !equalStrings(goodSeen, msgUUIDs(g1, g2)) {
		t.Fatalf("%s: row %q: good events read %v, want %v", h.cfg.Dialect, derefOr(md), goodSeen, msgUUIDs(g1, g2))
	}
	want := 0
	if stored {
		want = 1
	}
	if rowHandled != want {
		t.Fatalf("%s: row %q (stored: %v) handled %d times", h.cfg.Dialect, derefOr(md), stored, rowHandled)
	}
	if s, err := r.Stats(ctx); err != nil || s.Pending != 0 {
		t.Fatalf("%s: Stats = %+v, %v; want nothing pending", h.cfg.Dialect, s, err)
	}
	if _, err := outbox.List(ctx, h.db, h.cfg, outbox.Filter{}); err != nil {
		t.Fatalf("%s: List after row %q: %v", h.cfg.Dialect, derefOr(md), err)
	}
}

func derefOr(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}
