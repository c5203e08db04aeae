package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/outbox"
)

func TestConfigValidate(t *testing.T) {
	ok := outbox.Config{Dialect: outbox.Postgres}
	cases := []struct {
		name  string
		cfg   outbox.Config
		field string // "" means valid
	}{
		{"defaults are valid", ok, ""},
		{"mysql defaults are valid", outbox.Config{Dialect: outbox.MySQL}, ""},
		{"a missing dialect is rejected", outbox.Config{}, "Dialect"},
		{"an unknown dialect is rejected", outbox.Config{Dialect: 7}, "Dialect"},
		{"a name with a semicolon is rejected", outbox.Config{Dialect: outbox.Postgres, Name: "bad;name"}, "Name"},
		{"a name with a quote is rejected", outbox.Config{Dialect: outbox.MySQL, Name: "x`y"}, "Name"},
		{"an upper-case name is rejected", outbox.Config{Dialect: outbox.Postgres, Name: "Outbox"}, "Name"},
		{"a name starting with a digit is rejected", outbox.Config{Dialect: outbox.Postgres, Name: "1outbox"}, "Name"},
		{"a name longer than 32 characters is rejected", outbox.Config{Dialect: outbox.Postgres, Name: strings.Repeat("a", 33)}, "Name"},
		{"a consumer group with spaces is rejected", outbox.Config{Dialect: outbox.Postgres, ConsumerGroup: "a b"}, "ConsumerGroup"},
		{"a bad notify channel is rejected", outbox.Config{Dialect: outbox.Postgres, NotifyChannel: "x-y"}, "NotifyChannel"},
		{"a negative lock poll interval is rejected", outbox.Config{Dialect: outbox.Postgres, LockPollInterval: -1}, "LockPollInterval"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, outbox.ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Fatalf("Validate = %q, does not name the field %s", err, c.field)
			}
			// Every constructor validates too.
			if _, err := outbox.NewReader(nil, c.cfg); !errors.Is(err, outbox.ErrInvalidConfig) {
				t.Fatalf("NewReader = %v, want ErrInvalidConfig", err)
			}
			if err := outbox.InitializeSchema(context.Background(), nil, c.cfg); !errors.Is(err, outbox.ErrInvalidConfig) {
				t.Fatalf("InitializeSchema = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestPublishAndRead(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		binary := []byte{0x00, 0xff, 0xfe, 0x80, 'x', 0xc3, 0x28, 0x00} // not UTF-8
		m1 := newMsg([]byte(`{"n":1}`), "user-1", map[string]string{"trace": "t1", "ce_type": "created"})
		m2 := newMsg(binary, "user-2", nil)
		m3 := newMsg([]byte("third"), "", map[string]string{"a": "b"})
		before := maps.Clone(m1.Metadata)

		tx, err := h.db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := outbox.NewPublisher(tx, h.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish("orders.v1", m1, m2); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish("payments", m3); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(before, m1.Metadata) {
			t.Errorf("Publish modified the caller's metadata: %v -> %v", before, m1.Metadata)
		}

		// A rolled-back transaction leaves nothing.
		rolled := newMsg([]byte("rolled back"), "user-1", nil)
		h.publishTx(t, false, "orders.v1", rolled)

		r := h.reader(t)
		evs := readN(t, r, 100, 3)
		expectNothing(t, r)
		if got, want := uuids(evs), msgUUIDs(m1, m2, m3); !equalStrings(got, want) {
			t.Fatalf("read %v, want %v", got, want)
		}
		want := []struct {
			topic, key string
			payload    []byte
			md         map[string]string
		}{
			{"orders.v1", "user-1", []byte(`{"n":1}`), map[string]string{"trace": "t1", "ce_type": "created"}},
			{"orders.v1", "user-2", binary, map[string]string{}},
			{"payments", "", []byte("third"), map[string]string{"a": "b"}},
		}
		for i, w := range want {
			e := evs[i]
			if e.Topic != w.topic || e.Key != w.key || !bytes.Equal(e.Payload, w.payload) || !maps.Equal(e.Metadata, w.md) {
				t.Errorf("event %d = topic %q key %q payload %x metadata %v; want %q %q %x %v",
					i, e.Topic, e.Key, e.Payload, e.Metadata, w.topic, w.key, w.payload, w.md)
			}
			if e.CreatedAt.IsZero() {
				t.Errorf("event %d has no CreatedAt", i)
			}
			if i > 0 && evs[i-1].Position.Compare(e.Position) >= 0 {
				t.Errorf("positions not increasing: %v then %v", evs[i-1].Position, e.Position)
			}
			msg := e.Message()
			if msg.UUID != e.UUID || outbox.Key(msg) != w.key || !bytes.Equal(msg.Payload, w.payload) {
				t.Errorf("Message() of event %d = %s key %q", i, msg.UUID, outbox.Key(msg))
			}
		}
		if n := h.countEvents(t); n != 3 {
			t.Errorf("table holds %d rows, want 3 (the rolled-back event must not be there)", n)
		}
	})
}

func TestPublishRejectsInvalidEvents(t *testing.T) {
	eachDialect(t, func(t *testing.T, h *harness) {
		canceled, cancel := context.WithCancel(context.Background())
		cancel()
		cases := []struct {
			name  string
			topic string
			msgs  func() []*message.Message
			cfg   func(outbox.Config) outbox.Config
			want  string
			isErr error
		}{
			{name: "an empty topic is rejected", topic: "", want: "topic is empty", isErr: outbox.ErrInvalidEvent,
				msgs: func() []*message.Message { return []*message.Message{newMsg(nil, "", nil)} }},
			{name: "a topic Kafka would refuse is rejected", topic: "orders/v1", want: `topic "orders/v1"`, isErr: outbox.ErrInvalidEvent,
				msgs: func() []*message.Message { return []*message.Message{newMsg(nil, "", nil)} }},
			{name: "a nil message is rejected", topic: "t", want: "message 1 is nil", isErr: outbox.ErrInvalidEvent,
				msgs: func() []*message.Message { return []*message.Message{newMsg(nil, "", nil), nil} }},
			{name: "an empty UUID is rejected", topic: "t", want: "empty UUID", isErr: outbox.ErrInvalidEvent,
				msgs: func() []*message.Message { return []*message.Message{message.NewMessage("", nil)} }},
			{name: "a UUID longer than the column is rejected", topic: "t", want: "longer than 36", isErr: outbox.ErrInvalidEvent,
				msgs: func() []*message.Message { return []*message.Message{message.NewMessage(strings.Repeat("u", 37), nil)} }},
			{name: "a reserved metadata key is rejected", topic: "t", want: outbox.TopicMetadata, isErr: outbox.ErrInvalidEvent,
				msgs: func() []*message.Message {
					return []*message.Message{newMsg(nil, "", map[string]string{outbox.TopicMetadata: "other"})}
				}},
			{name: "an event above MaxEventBytes is rejected", topic: "t", want: "MaxEventBytes (16)", isErr: outbox.ErrInvalidEvent,
				msgs: func() []*message.Message { return []*message.Message{newMsg(make([]byte, 17), "", nil)} },
				cfg:  func(c outbox.Config) outbox.Config { c.MaxEventBytes = 16; return c }},
			{name: "a message whose context is done is rejected", topic: "t", want: "context canceled", isErr: context.Canceled,
				msgs: func() []*message.Message {
					m := newMsg(nil, "", nil)
					m.SetContext(canceled)
					return []*message.Message{m}
				}},
		}
		for _, c := range cases {
			cfg := h.cfg
			if c.cfg != nil {
				cfg = c.cfg(cfg)
			}
			tx, err := h.db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			pub, err := outbox.NewPublisher(tx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			// Nothing of a rejected call may be written (the nil case has a valid
			// message before the nil one).
			err = pub.Publish(c.topic, c.msgs()...)
			if !errors.Is(err, c.isErr) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: Publish = %v, want %v mentioning %q", c.name, err, c.isErr, c.want)
			}
			if err := tx.Commit(); err != nil {
				t.Fatalf("%s: commit after a rejected Publish: %v", c.name, err)
			}
		}
		if n := h.countEvents(t); n != 0 {
			t.Fatalf("%d rows written by rejected Publish calls", n)
		}

		// No limit when MaxEventBytes is negative; Close stops the publisher.
		tx, err := h.db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		cfg := h.cfg
		cfg.MaxEventBytes = -1
		pub, err := outbox.NewPublisher(tx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish("t", newMsg(make([]byte, 2<<20), "", nil)); err != nil {
			t.Fatalf("Publish of 2 MiB with no limit: %v", err)
		}
		if err := pub.Close(); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish("t", newMsg(nil, "", nil)); !errors.Is(err, outbox.ErrPublisherClosed) {
			t.Fatalf("Publish after Close = %v, want ErrPublisherClosed", err)
		}
	})
}

func TestInitializeSchemaIsIdempotentAndConcurrent(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			db := openDB(t, d)
			cfg := outbox.Config{Dialect: d, Name: dbtest.UniqueName("ob")}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = outbox.DropSchema(ctx, db, cfg)
			})
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for i := range errs {
				wg.Go(func() { errs[i] = outbox.InitializeSchema(ctx, db, cfg) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("goroutine %d: %v", i, err)
				}
			}
			for range 2 {
				if err := outbox.InitializeSchema(ctx, db, cfg); err != nil {
					t.Fatalf("InitializeSchema again: %v", err)
				}
			}
			h := &harness{db: db, cfg: cfg}
			m := newMsg([]byte("x"), "k", nil)
			h.publishTx(t, true, "t", m)
			r, err := outbox.NewReader(db, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := uuids(readN(t, r, 10, 1)); !equalStrings(got, msgUUIDs(m)) {
				t.Fatalf("read %v after initialization", got)
			}
		})
	}
}
