package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/millrace/millrace/outbox"
)

// insertRow writes an events row with SQL, as a program other than NewPublisher
// would; metadata nil writes NULL.
func (h *harness) insertRow(t testing.TB, uuid string, payload []byte, metadata *string) {
	t.Helper()
	if err := h.tryInsertRow(uuid, payload, metadata); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) tryInsertRow(uuid string, payload []byte, metadata *string) error {
	var md any
	if metadata != nil {
		md = *metadata
	}
	q := "INSERT INTO " + h.table("") + " (uuid, payload, metadata) VALUES (?, ?, ?)"
	if h.cfg.Dialect == outbox.Postgres {
		q = "INSERT INTO " + h.table("") + " (uuid, payload, metadata, transaction_id) VALUES ($1, $2, $3, '0')"
	}
	_, err := h.db.Exec(q, uuid, payload, md)
	return err
}

func ptr(s string) *string { return &s }

// Rows that NewPublisher would never write are still read: each becomes an event
// with Err set (naming the row and the problem) and the metadata as stored, the
// rows around it are read as usual, and each can be stored as a dead letter, in a
// safe form when the database refuses it as is, from which List restores the
// original topic, key and metadata.
func TestMalformedRowsBecomeEventsWithErrAndDeadLetters(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		r := h.reader(t)
		longTopic := strings.Repeat("t", 300)
		cases := []struct {
			name     string
			metadata *string
			want     string // in Err; "" for a well-formed row
			topic    string // topic recovered
			key      string
		}{
			{"null metadata", nil, "metadata is NULL", "", ""},
			{"array", ptr(`[1, 2]`), "JSON array, not an object", "", ""},
			{"string", ptr(`"orders"`), "JSON string, not an object", "", ""},
			{"number value", ptr(`{"_millrace_topic":"orders","n":1}`), `key "n" holds a JSON number`, "orders", ""},
			{"nested value", ptr(`{"_millrace_topic":"orders","_millrace_key":"k","o":{"a":"b"}}`), `key "o" holds a JSON object`, "orders", "k"},
			{"no topic", ptr(`{"h":"v"}`), "no topic", "", ""},
			{"long topic", ptr(`{"_millrace_topic":"` + longTopic + `"}`), "not a valid Kafka topic name", longTopic, ""},
			{"NUL in topic", ptr(`{"_millrace_topic":"a\u0000b","_millrace_key":"k"}`), "not a valid Kafka topic name", "a\x00b", "k"},
			{"space in topic", ptr(`{"_millrace_topic":"my topic"}`), "not a valid Kafka topic name", "my topic", ""},
			{"NUL in key", ptr(`{"_millrace_topic":"orders","_millrace_key":"k\u0000\u00ff"}`), "", "orders", "k\x00\u00ff"},
		}
		before := newMsg([]byte("before"), "k", nil)
		h.publishTx(t, true, "orders", before)
		ids := map[string]int{}
		for i, c := range cases {
			id := watermill.NewUUID()
			ids[id] = i
			h.insertRow(t, id, []byte("payload "+strconv.Itoa(i)), c.metadata)
		}
		after := newMsg([]byte("after"), "k", nil)
		h.publishTx(t, true, "orders", after)

		waitVisible(t, r, len(cases)+2)
		b, err := r.Begin(ctx, 100)
		if err != nil {
			t.Fatalf("Begin: %v", err)
		}
		defer func() { _ = b.Rollback() }()
		evs := b.Events()
		if len(evs) != len(cases)+2 || evs[0].UUID != before.UUID || evs[len(evs)-1].UUID != after.UUID {
			t.Fatalf("read %v, want before, %d rows, after", uuids(evs), len(cases))
		}
		for _, ev := range evs[1 : len(evs)-1] {
			c := cases[ids[ev.UUID]]
			if ev.Topic != c.topic || ev.Key != c.key {
				t.Errorf("%s: topic %q key %q, want %q %q", c.name, ev.Topic, ev.Key, c.topic, c.key)
			}
			if c.want == "" {
				if ev.Err != nil {
					t.Errorf("%s: Err = %v, want a well-formed event", c.name, ev.Err)
				}
			} else {
				if !errors.Is(ev.Err, outbox.ErrMalformedEvent) || !strings.Contains(ev.Err.Error(), c.want) ||
					!strings.Contains(ev.Err.Error(), ev.UUID) || !strings.Contains(ev.Err.Error(), "offset "+strconv.FormatInt(ev.Position.Offset(), 10)) {
					t.Errorf("%s: Err = %v; want ErrMalformedEvent naming uuid, offset and %q", c.name, ev.Err, c.want)
				}
				if (c.metadata == nil) != (ev.RawMetadata == nil) || (c.metadata != nil && string(ev.RawMetadata) != *c.metadata) {
					t.Errorf("%s: RawMetadata %q, want the column as stored", c.name, ev.RawMetadata)
				}
			}
			// Every one of them is set aside (the well-formed one as if Kafka had
			// refused it).
			if err := b.DeadLetter(ctx, ev, errors.New("set aside: "+c.name), "malformed", 0); err != nil {
				t.Fatalf("%s: DeadLetter: %v", c.name, err)
			}
		}
		if err := b.Commit(ctx, evs[len(evs)-1].Position); err != nil {
			t.Fatal(err)
		}

		dls, err := outbox.List(ctx, h.db, h.cfg, outbox.Filter{})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(dls) != len(cases) {
			t.Fatalf("%d dead letters, want %d", len(dls), len(cases))
		}
		for _, d := range dls {
			i, ok := ids[d.UUID]
			if !ok {
				t.Fatalf("dead letter of unknown uuid %q", d.UUID)
			}
			c := cases[i]
			if d.Topic != c.topic || d.Key != c.key {
				t.Errorf("%s: dead letter topic %q key %q, want the originals %q %q", c.name, d.Topic, d.Key, c.topic, c.key)
			}
			if !bytes.Equal(d.Payload, []byte("payload "+strconv.Itoa(i))) {
				t.Errorf("%s: payload %q", c.name, d.Payload)
			}
			if c.want != "" && c.metadata != nil && len(d.Metadata) == 0 && string(d.RawMetadata) != *c.metadata {
				t.Errorf("%s: raw metadata %q, want %q", c.name, d.RawMetadata, *c.metadata)
			}
			if !strings.Contains(d.Reason, "set aside: "+c.name) {
				t.Errorf("%s: reason %q", c.name, d.Reason)
			}
			t.Logf("%s: stored topic/key recovered; reason %q", c.name, d.Reason)
		}
		// Replay leaves the malformed rows' dead letters alone, and replays the
		// well-formed one.
		n, err := outbox.Replay(ctx, h.db, h.cfg, outbox.Filter{All: true})
		if err != nil || n != 1 {
			t.Fatalf("Replay = %d, %v; want 1 (only the well-formed event)", n, err)
		}
		expectNothingPendingBut(t, r, 1)
	})
}

// expectNothingPendingBut checks that exactly n events are pending.
func expectNothingPendingBut(t *testing.T, r *outbox.Reader, n int64) {
	t.Helper()
	s, err := r.Stats(context.Background())
	if err != nil || s.Pending != n {
		t.Fatalf("Stats = %+v, %v; want %d pending", s, err, n)
	}
}
