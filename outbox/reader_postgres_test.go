package outbox_test

import (
	"context"
	"os"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/outbox"
)

// Corner cases of the PostgreSQL snapshot-delta reader (docs/commit-order.md).

func pgHarness(t *testing.T) *harness {
	t.Helper()
	t.Parallel()
	return newHarness(t, outbox.Postgres)
}

// Rows written inside savepoints carry the top-level transaction's id: those of a
// released savepoint are read with the transaction, those of a savepoint rolled
// back never are, and publish order is kept.
func TestPostgresSubtransactions(t *testing.T) {
	h := pgHarness(t)
	ctx := context.Background()
	r := h.reader(t)
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	pub, err := outbox.NewPublisher(tx, h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	kept1, lost, kept2, top := newMsg([]byte("1"), "k", nil), newMsg([]byte("x"), "k", nil), newMsg([]byte("2"), "k", nil), newMsg([]byte("3"), "k", nil)
	step := func(q string) {
		t.Helper()
		if _, err := tx.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	step("SAVEPOINT a")
	if err := pub.Publish("t", kept1); err != nil {
		t.Fatal(err)
	}
	step("SAVEPOINT b")
	if err := pub.Publish("t", lost); err != nil {
		t.Fatal(err)
	}
	step("ROLLBACK TO SAVEPOINT b")
	if err := pub.Publish("t", kept2); err != nil {
		t.Fatal(err)
	}
	step("RELEASE SAVEPOINT a")
	if err := pub.Publish("t", top); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, r)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, want := uuids(readN(t, r, 10, 3)), msgUUIDs(kept1, kept2, top); !equalStrings(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	expectNothing(t, r)
}

// A prepared (two-phase) transaction is in progress until COMMIT PREPARED, even
// after its session is gone: later commits flow past it, and its event is read
// once it commits.
func TestPostgresPreparedTransaction(t *testing.T) {
	h := pgHarness(t)
	ctx := context.Background()
	var maxPrepared int
	if err := h.db.QueryRow(`SELECT current_setting('max_prepared_transactions')::int`).Scan(&maxPrepared); err != nil {
		t.Fatal(err)
	}
	if maxPrepared == 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("max_prepared_transactions is 0: .ci/run must raise it")
		}
		t.Skip("max_prepared_transactions is 0 on this server")
	}
	r := h.reader(t)
	gid := "millrace-" + watermill.NewShortUUID()
	conn, err := h.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	prepared := newMsg([]byte("prepared"), "k", nil)
	for _, q := range []string{"BEGIN", ""} {
		if q == "" {
			if _, err := conn.ExecContext(ctx, `INSERT INTO `+h.table("")+` (uuid, payload, metadata, transaction_id)
VALUES ($1, 'p', '{"_millrace_topic":"t","_millrace_key":"k"}', pg_current_xact_id())`, prepared.UUID); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.ExecContext(ctx, `PREPARE TRANSACTION '`+gid+`'`); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = h.db.Exec(`ROLLBACK PREPARED '` + gid + `'`) }()
	later := newMsg([]byte("later"), "other", nil)
	h.publishTx(t, true, "t", later)
	if got := uuids(readN(t, r, 10, 1)); !equalStrings(got, msgUUIDs(later)) {
		t.Fatalf("while prepared: read %v, want %v", got, msgUUIDs(later))
	}
	expectNothing(t, r)
	if _, err := h.db.Exec(`COMMIT PREPARED '` + gid + `'`); err != nil {
		t.Fatal(err)
	}
	if got := uuids(readN(t, r, 10, 1)); !equalStrings(got, msgUUIDs(prepared)) {
		t.Fatalf("after COMMIT PREPARED: read %v, want %v", got, msgUUIDs(prepared))
	}
	expectNothing(t, r)
}

// A row written by another program with a made-up transaction_id (0, an old id, an
// id far in the future, or none) is read once its transaction commits, like any
// other: the trigger stores the writer's real transaction id.
func TestPostgresForeignRowWithBogusTransactionID(t *testing.T) {
	h := pgHarness(t)
	r := h.reader(t)
	first := newMsg([]byte("first"), "k", nil)
	h.publishTx(t, true, "t", first)
	if got := uuids(readN(t, r, 10, 1)); !equalStrings(got, msgUUIDs(first)) {
		t.Fatalf("read %v", got)
	}
	var ids []string
	for _, claimed := range []string{"3", "4", "1000000000000"} {
		id := watermill.NewUUID()
		ids = append(ids, id)
		h.exec(t, `INSERT INTO `+h.table("")+` (uuid, payload, metadata, transaction_id)
VALUES ($1, 'x', '{"_millrace_topic":"t"}', $2::text::xid8)`, id, claimed)
	}
	// An INSERT that does not name transaction_id at all.
	id := watermill.NewUUID()
	ids = append(ids, id)
	h.exec(t, `INSERT INTO `+h.table("")+` (uuid, payload, metadata) VALUES ($1, 'x', '{"_millrace_topic":"t"}')`, id)
	if got := uuids(readN(t, r, 10, 4)); !equalStrings(got, ids) {
		t.Fatalf("read %v, want %v", got, ids)
	}
	expectNothing(t, r)
}

// A delta larger than a batch is read page by page; a batch rolled back, or a new
// reader taking over (a standby after a crash), resumes inside the delta at the
// last committed event; a delta that ends exactly at a page boundary is closed.
func TestPostgresDeltaAcrossBatches(t *testing.T) {
	h := pgHarness(t)
	ctx := context.Background()
	r := h.reader(t)
	var msgs []*message.Message
	for i := range 8 {
		msgs = append(msgs, newMsg([]byte{byte(i)}, "k", nil))
	}
	h.publishTx(t, true, "t", msgs[:4]...)
	h.publishTx(t, true, "t", msgs[4:]...)
	waitVisible(t, r, 8)

	if got := uuids(readN(t, r, 3, 3)); !equalStrings(got, msgUUIDs(msgs[:3]...)) {
		t.Fatalf("first page %v", got)
	}
	// A batch that is rolled back records nothing.
	b, err := r.Begin(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := uuids(b.Events()); !equalStrings(got, msgUUIDs(msgs[3:6]...)) {
		t.Fatalf("second page %v", got)
	}
	_ = b.Rollback()
	// Events published now are in a later delta: read after the whole current one.
	late := newMsg([]byte("late"), "k", nil)
	h.publishTx(t, true, "t", late)

	standby := h.reader(t)
	if got := uuids(readN(t, standby, 5, 5)); !equalStrings(got, msgUUIDs(msgs[3:]...)) {
		t.Fatalf("standby read %v, want %v", got, msgUUIDs(msgs[3:]...))
	}
	if got := uuids(readN(t, standby, 1, 1)); !equalStrings(got, msgUUIDs(late)) {
		t.Fatalf("then %v, want %v", got, msgUUIDs(late))
	}
	expectNothing(t, r)
	if s, err := r.Stats(ctx); err != nil || s.Pending != 0 {
		t.Fatalf("Stats = %+v, %v; want nothing pending", s, err)
	}
}

// A consumer group whose progress was stored by an earlier version (watermill-sql's
// transaction id and offset) goes on from there: events of earlier transactions are
// not read again.
func TestPostgresUpgradeFromTransactionIDPosition(t *testing.T) {
	h := pgHarness(t)
	ctx := context.Background()
	old, newer := newMsg([]byte("old"), "k", nil), newMsg([]byte("new"), "k", nil)
	h.publishTx(t, true, "t", old)
	h.publishTx(t, true, "t", newer)
	var (
		oldTx  string
		oldOff int64
	)
	if err := h.db.QueryRow(`SELECT transaction_id::text, "offset" FROM `+h.table("")+` WHERE uuid = $1`, old.UUID).Scan(&oldTx, &oldOff); err != nil {
		t.Fatal(err)
	}
	// The offsets table as watermill-sql and earlier versions created it, with the
	// group past the old event.
	h.exec(t, `DROP TABLE `+h.table("_offsets"))
	h.exec(t, `CREATE TABLE `+h.table("_offsets")+` (
	consumer_group VARCHAR(255) NOT NULL,
	offset_acked BIGINT,
	last_processed_transaction_id xid8 NOT NULL,
	updated_at TIMESTAMPTZ DEFAULT NULL,
	PRIMARY KEY (consumer_group))`)
	h.exec(t, `INSERT INTO `+h.table("_offsets")+` VALUES ($1, $2, $3::text::xid8, now())`, outbox.DefaultConsumerGroup, oldOff, oldTx)
	if err := outbox.InitializeSchema(ctx, h.db, h.cfg); err != nil {
		t.Fatal(err)
	}
	r := h.reader(t)
	got := uuids(readN(t, r, 10, 1))
	if !equalStrings(got, msgUUIDs(newer)) {
		t.Fatalf("after upgrade read %v, want %v", got, msgUUIDs(newer))
	}
	expectNothing(t, r)
}
