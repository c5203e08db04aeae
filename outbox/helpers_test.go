package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/outbox"
)

var dialects = []outbox.Dialect{outbox.Postgres, outbox.MySQL}

// harness is one fresh outbox (unique name, tables dropped at cleanup) on one dialect.
type harness struct {
	db  *sql.DB
	cfg outbox.Config
}

// eachDialect runs fn as parallel subtests, one per dialect, each on a fresh outbox.
func eachDialect(t *testing.T, fn func(t *testing.T, h *harness)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			fn(t, newHarness(t, d))
		})
	}
}

func openDB(t testing.TB, d outbox.Dialect) *sql.DB {
	t.Helper()
	if d == outbox.MySQL {
		return dbtest.MySQL(t)
	}
	return dbtest.Postgres(t)
}

func newHarness(t testing.TB, d outbox.Dialect) *harness {
	t.Helper()
	db := openDB(t, d)
	cfg := outbox.Config{Dialect: d, Name: dbtest.UniqueName("ob"), LockPollInterval: 50 * time.Millisecond}
	ctx := context.Background()
	if err := outbox.InitializeSchema(ctx, db, cfg); err != nil {
		t.Fatalf("InitializeSchema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := outbox.DropSchema(ctx, db, cfg); err != nil {
			t.Errorf("DropSchema: %v", err)
		}
	})
	return &harness{db: db, cfg: cfg}
}

func (h *harness) reader(t testing.TB) *outbox.Reader {
	t.Helper()
	r, err := outbox.NewReader(h.db, h.cfg)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	return r
}

// newMsg builds a message with a fresh UUID, the key and metadata given.
func newMsg(payload []byte, key string, md map[string]string) *message.Message {
	m := message.NewMessage(watermill.NewUUID(), payload)
	for k, v := range md {
		m.Metadata.Set(k, v)
	}
	outbox.SetKey(m, key)
	return m
}

// publishTx publishes msgs to topic in one transaction, committed or rolled back.
func (h *harness) publishTx(t testing.TB, commit bool, topic string, msgs ...*message.Message) {
	t.Helper()
	if err := h.tryPublishTx(commit, topic, msgs...); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) tryPublishTx(commit bool, topic string, msgs ...*message.Message) error {
	tx, err := h.db.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	pub, err := outbox.NewPublisher(tx, h.cfg)
	if err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("NewPublisher: %w", err)
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("Publish: %w", err)
	}
	if !commit {
		return tx.Rollback()
	}
	return tx.Commit()
}

// readN reads and commits batches until it has n events. Waiting is needed on
// PostgreSQL: any transaction open anywhere in the cluster (other test processes
// included) holds back events committed after it started.
func readN(t testing.TB, r *outbox.Reader, limit, n int) []outbox.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []outbox.Event
	for len(out) < n {
		b, err := r.Begin(ctx, limit)
		if err != nil {
			t.Fatalf("Begin after %d of %d events: %v", len(out), n, err)
		}
		evs := b.Events()
		if len(evs) == 0 {
			_ = b.Rollback()
			if err := sleep(ctx, 5*time.Millisecond); err != nil {
				t.Fatalf("read %d of %d events: %v", len(out), n, err)
			}
			continue
		}
		if err := b.Commit(ctx, evs[len(evs)-1].Position); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		out = append(out, evs...)
	}
	return out
}

// expectNothing checks that a batch comes back empty.
func expectNothing(t testing.TB, r *outbox.Reader) {
	t.Helper()
	b, err := r.Begin(context.Background(), 100)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	defer func() { _ = b.Rollback() }()
	if evs := b.Events(); len(evs) != 0 {
		t.Fatalf("unexpected events %v", uuids(evs))
	}
}

// waitVisible waits until a batch of limit n holds n events, and rolls it back.
func waitVisible(t testing.TB, r *outbox.Reader, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		b, err := r.Begin(ctx, n)
		if err != nil {
			t.Fatalf("Begin: %v", err)
		}
		got := len(b.Events())
		_ = b.Rollback()
		if got == n {
			return
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			t.Fatalf("only %d of %d events visible: %v", got, n, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func uuids(evs []outbox.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.UUID
	}
	return out
}

func msgUUIDs(msgs ...*message.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.UUID
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// exec runs a statement on the test database (test-only SQL).
func (h *harness) exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if _, err := h.db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// table quotes a table name of the outbox for test-only SQL.
func (h *harness) table(suffix string) string {
	if h.cfg.Dialect == outbox.MySQL {
		return "`" + h.cfg.Name + suffix + "`"
	}
	return `"` + h.cfg.Name + suffix + `"`
}

// ageEvents moves the created_at of every event back by d.
func (h *harness) ageEvents(t testing.TB, d time.Duration) {
	t.Helper()
	if h.cfg.Dialect == outbox.MySQL {
		h.exec(t, "UPDATE "+h.table("")+" SET created_at = created_at - INTERVAL ? SECOND", int64(d.Seconds()))
	} else {
		h.exec(t, "UPDATE "+h.table("")+" SET created_at = created_at - $1 * interval '1 second'", int64(d.Seconds()))
	}
}

func (h *harness) countEvents(t testing.TB) int {
	t.Helper()
	var n int
	if err := h.db.QueryRow("SELECT COUNT(*) FROM " + h.table("")).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
