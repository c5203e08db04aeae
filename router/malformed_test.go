package router_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
)

// insertRow writes an events row with SQL, as a program other than
// outbox.NewPublisher would; metadata "" writes NULL.
func (e *env) insertRow(t *testing.T, uuid, metadata string) {
	t.Helper()
	var md any
	if metadata != "" {
		md = metadata
	}
	q := "INSERT INTO `" + e.ocfg.Name + "` (uuid, payload, metadata) VALUES (?, ?, ?)"
	if e.ocfg.Dialect == outbox.Postgres {
		q = `INSERT INTO "` + e.ocfg.Name + `" (uuid, payload, metadata, transaction_id) VALUES ($1, $2, $3, '0')`
	}
	if _, err := e.db.Exec(q, uuid, []byte("raw"), md); err != nil {
		t.Fatal(err)
	}
}

// Rows that outbox.NewPublisher would never write (the metadata with a
// number, a topic too long for the dead letters table, a NUL in the topic, NULL
// metadata) become dead letters; the events around them reach Kafka once each, in
// order.
func TestMalformedRowsBecomeDeadLettersAndTheRestFlows(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d)
		start(t, e.forwarder(t, e.publisher(t, adapter.Config{}), nil))
		e.write(t, e.topic, []ev{{key: "a", seq: 1}, {key: "a", seq: 2}}, true)
		bad := map[string]string{
			watermill.NewUUID(): `{"_millrace_topic":"` + e.topic + `","n":1}`,
			watermill.NewUUID(): `{"_millrace_topic":"` + strings.Repeat("x", 300) + `"}`,
			watermill.NewUUID(): `{"_millrace_topic":"a\u0000b","_millrace_key":"a"}`,
			watermill.NewUUID(): ``,
		}
		for id, md := range bad {
			e.insertRow(t, id, md)
		}
		e.write(t, e.topic, []ev{{key: "a", seq: 3}, {key: "b", seq: 1}}, true)

		recs := e.consumeDistinct(t, 4, 30*time.Second)
		first, dups := delivered(recs)
		if len(first) != 4 || dups != 0 {
			t.Fatalf("%d events in Kafka (%d duplicates), want the 4 good ones once", len(first), dups)
		}
		checkOrder(t, first)
		var dls []outbox.DeadLetter
		waitFor(t, 10*time.Second, "the dead letters", func() bool {
			var err error
			dls, err = outbox.List(context.Background(), e.db, e.ocfg, outbox.Filter{})
			return err == nil && len(dls) == len(bad)
		})
		for _, dl := range dls {
			if _, ok := bad[dl.UUID]; !ok || dl.Class != "malformed" || !strings.Contains(dl.Reason, dl.UUID) {
				t.Errorf("dead letter %s class %q reason %q", dl.UUID, dl.Class, dl.Reason)
			}
		}
		if recs := e.kc.ConsumeAll(t, e.topic, 500*time.Millisecond); len(recs) != 4 {
			t.Fatalf("%d records in Kafka, want 4: good events were sent again", len(recs))
		}
	})
}

// A dead letter that the database refuses even in safe form (here a trigger of the
// test's own) stops the stream at that event only: the events before it, which
// Kafka acknowledged, are recorded as progress and never sent again while the
// forwarder retries, and nothing after it is sent. Once it can be stored, the rest
// flows.
func TestProgressBeforeAnUnstorableDeadLetterIsKept(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d)
		refused := watermill.NewUUID()
		dl := e.ocfg.Name + "_dead_letters"
		var create, drop []string
		if d == outbox.Postgres {
			create = []string{
				`CREATE FUNCTION ` + e.ocfg.Name + `_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.uuid = '` + refused + `' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$`,
				`CREATE TRIGGER refuse BEFORE INSERT ON "` + dl + `" FOR EACH ROW EXECUTE FUNCTION ` + e.ocfg.Name + `_refuse()`,
			}
			drop = []string{`DROP TRIGGER refuse ON "` + dl + `"`, `DROP FUNCTION ` + e.ocfg.Name + `_refuse()`}
		} else {
			create = []string{"CREATE TRIGGER " + e.ocfg.Name + "_refuse BEFORE INSERT ON `" + dl + "` FOR EACH ROW BEGIN " +
				"IF NEW.uuid = '" + refused + "' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF; END"}
			drop = []string{"DROP TRIGGER " + e.ocfg.Name + "_refuse"}
		}
		for _, q := range create {
			if _, err := e.db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		var before []ev
		for i := range 5 {
			before = append(before, ev{key: "a", seq: i + 1})
		}
		e.write(t, e.topic, before, true)
		e.insertRow(t, refused, `{"_millrace_topic":"`+e.topic+`","n":1}`)
		e.write(t, e.topic, []ev{{key: "a", seq: 6}}, true)
		f := e.forwarder(t, e.publisher(t, adapter.Config{}), nil)
		start(t, f)

		e.consumeDistinct(t, 5, 30*time.Second)
		waitFor(t, 10*time.Second, "several failed batches", func() bool { return f.Stats().BatchFailures >= 3 })
		if recs := e.kc.ConsumeAll(t, e.topic, 300*time.Millisecond); len(recs) != 5 {
			t.Fatalf("%d records in Kafka while the dead letter is refused, want the 5 before it once each", len(recs))
		}
		for _, q := range drop {
			if _, err := e.db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		first, dups := delivered(e.consumeDistinct(t, 6, 30*time.Second))
		if len(first) != 6 || dups != 0 {
			t.Fatalf("%d events (%d duplicates), want 6 once each", len(first), dups)
		}
		checkOrder(t, first)
	})
}
