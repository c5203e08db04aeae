package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/millrace/millrace/outbox"
)

func TestListenWakesOnCommitOnly(t *testing.T) {
	h := newHarness(t, outbox.Postgres)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake, err := outbox.Listen(ctx, h.db, h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
		t.Fatal("signal before anything was published")
	case <-time.After(50 * time.Millisecond):
	}

	// A commit wakes the listener at once.
	tx, err := h.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := outbox.NewPublisher(tx, h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // several Publish calls in one transaction: one notification
		if err := pub.Publish("t", newMsg([]byte("x"), "", nil)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-wake:
		t.Fatal("signal before commit")
	case <-time.After(50 * time.Millisecond):
	}
	start := time.Now()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
		t.Logf("woken %v after commit", time.Since(start))
	case <-time.After(100 * time.Millisecond):
		t.Fatal("no signal within 100ms of the commit")
	}

	// A rollback does not.
	h.publishTx(t, false, "t", newMsg([]byte("y"), "", nil))
	select {
	case <-wake:
		t.Fatal("signal after a rollback")
	case <-time.After(200 * time.Millisecond):
	}

	// Another outbox's channel does not either.
	other := newHarness(t, outbox.Postgres)
	other.publishTx(t, true, "t", newMsg([]byte("z"), "", nil))
	select {
	case <-wake:
		t.Fatal("signal from another outbox")
	case <-time.After(100 * time.Millisecond):
	}

	// Cancelling the context closes the channel.
	cancel()
	select {
	case _, ok := <-wake:
		if ok {
			// A pending signal may come first; the close must follow.
			if _, ok := <-wake; ok {
				t.Fatal("channel not closed after cancel")
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
}

func TestListenReconnects(t *testing.T) {
	h := newHarness(t, outbox.Postgres)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake, err := outbox.Listen(ctx, h.db, h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Kill the listening backend: the listener reconnects and signals once it is
	// listening again, since notifications may have been missed.
	var killed int
	if err := h.db.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query = $1`, `LISTEN "`+h.cfg.Name+`"` /* NotifyChannel defaults to Name */).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d listening backends, want 1", killed)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no signal after reconnecting")
	}
	h.publishTx(t, true, "t", newMsg([]byte("x"), "", nil))
	select {
	case <-wake:
	case <-time.After(2 * time.Second):
		t.Fatal("no signal for a commit after reconnecting")
	}
}

func TestListenIsNotSupportedOnMySQL(t *testing.T) {
	cfg := outbox.Config{Dialect: outbox.MySQL}
	if _, err := outbox.Listen(context.Background(), nil, cfg); !errors.Is(err, outbox.ErrNotSupported) {
		t.Fatalf("Listen on MySQL = %v, want ErrNotSupported", err)
	}
}
