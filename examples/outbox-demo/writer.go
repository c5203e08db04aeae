package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/outbox"
)

// OrderPlaced is the event the order service publishes with every order. It is
// the Kafka record's value, as JSON.
type OrderPlaced struct {
	OrderID     string    `json:"order_id"`
	Customer    string    `json:"customer"` // also the partition key
	Seq         int64     `json:"seq"`      // 1, 2, 3... per customer, in commit order
	AmountCents int64     `json:"amount_cents"`
	PlacedAt    time.Time `json:"placed_at"`
}

// eventTypeHeader is user metadata of every event; it reaches Kafka as a header.
const eventTypeHeader = "event_type"

// orderService is the demo's application: it writes an order row and its
// OrderPlaced event in one database transaction, so the event exists if and only
// if the order does. Some transactions are rolled back on purpose, after the event
// was written: their events must never reach Kafka.
type orderService struct {
	db          *database
	outbox      outbox.Config
	ordersTable string
	topic       string
	rollback    float64 // share of transactions rolled back on purpose
	ledger      *ledger
}

// placeOrder writes one order of customer and its event, the seq-th of the
// customer, in one transaction; it rolls the transaction back when rollback is set.
// It returns whether the transaction committed.
func (s *orderService) placeOrder(ctx context.Context, customer string, seq int64, rollback bool) (committed bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()

	// 1. The business data.
	ev := OrderPlaced{
		OrderID:     watermill.NewUUID(),
		Customer:    customer,
		Seq:         seq,
		AmountCents: 100 + mathrand.Int64N(100_000),
		PlacedAt:    time.Now().UTC(),
	}
	insert := `INSERT INTO ` + s.ordersTable + ` (id, customer, amount_cents) VALUES ($1, $2, $3)`
	if s.db.dialect == outbox.MySQL {
		insert = `INSERT INTO ` + s.ordersTable + ` (id, customer, amount_cents) VALUES (?, ?, ?)`
	}
	if _, err := tx.ExecContext(ctx, insert, ev.OrderID, ev.Customer, ev.AmountCents); err != nil {
		return false, fmt.Errorf("insert order: %w", err)
	}

	// 2. Its event, in the same transaction: outbox.NewPublisher writes into tx.
	payload, err := json.Marshal(ev)
	if err != nil {
		return false, err
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.SetContext(ctx)
	msg.Metadata.Set(eventTypeHeader, "OrderPlaced")
	outbox.SetKey(msg, customer) // same customer, same partition, in commit order
	if err := s.publish(tx, msg); err != nil {
		return false, err
	}

	// 3. Commit both, or neither.
	if rollback {
		return false, tx.Rollback()
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	s.ledger.committed(msg.UUID, customer, seq, time.Now())
	return true, nil
}

// placePoison writes an event of n random bytes (random, so that compression
// cannot shrink it) with the key "poison": bigger than the topic's
// max.message.bytes, the broker refuses it for good, and the router sets it aside
// as a dead letter while the events behind it keep flowing. It returns the event's
// UUID.
func (s *orderService) placePoison(ctx context.Context, n int) (string, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	payload := make([]byte, n)
	_, _ = rand.Read(payload)
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.SetContext(ctx)
	msg.Metadata.Set(eventTypeHeader, "OrderDocumentAttached")
	outbox.SetKey(msg, "poison")
	if err := s.publish(tx, msg); err != nil {
		_ = tx.Rollback()
		return "", err
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("commit: %w", err)
	}
	s.ledger.committed(msg.UUID, "", 0, time.Now())
	return msg.UUID, nil
}

func (s *orderService) publish(tx *sql.Tx, msg *message.Message) error {
	pub, err := outbox.NewPublisher(tx, s.outbox)
	if err != nil {
		return err
	}
	if err := pub.Publish(s.topic, msg); err != nil {
		return fmt.Errorf("publish to the outbox: %w", err)
	}
	return pub.Close() // closes the publisher only: the transaction is ours
}

// runWriters runs writers goroutines placing orders until stop is closed, together at
// about rate transactions per second (rate <= 0: as fast as they can). Customer i
// belongs to writer i%writers, which writes its orders one transaction after the
// other: the outbox keeps the commit order of transactions that do not overlap, so
// each customer's events must reach Kafka in seq order. txCtx is the context of
// the transactions: it outlives stop, so that a transaction in progress finishes.
// It returns the first error that stopped a writer.
func (s *orderService) runWriters(txCtx context.Context, stop <-chan struct{}, writers, customers, rate int) error {
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for w := range writers {
		var owned []string
		for c := w; c < customers; c += writers {
			owned = append(owned, fmt.Sprintf("customer-%03d", c))
		}
		wg.Go(func() {
			if err := s.writer(txCtx, stop, owned, pace(writers, rate)); err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		return *err
	}
	return nil
}

// pace returns the interval between two transactions of one writer; 0 means no
// pause.
func pace(writers, rate int) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(writers) * time.Second / time.Duration(rate)
}

// writer places orders of its customers, one transaction at a time, every interval.
func (s *orderService) writer(txCtx context.Context, stop <-chan struct{}, customers []string, interval time.Duration) error {
	if len(customers) == 0 {
		return nil
	}
	next := make(map[string]int64, len(customers)) // the seq of each customer's next event
	for _, c := range customers {
		next[c] = 1
	}
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	failures := 0
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if tick != nil {
			select {
			case <-stop:
				return nil
			case <-tick:
			}
		}
		customer := customers[mathrand.IntN(len(customers))]
		rollback := mathrand.Float64() < s.rollback
		committed, err := s.placeOrder(txCtx, customer, next[customer], rollback)
		switch {
		case err != nil:
			// A failed transaction wrote nothing; the next one reuses the seq. A
			// database that keeps failing stops the writer.
			if failures++; failures >= 10 {
				return fmt.Errorf("order service: %w", err)
			}
			s.ledger.failed.Add(1)
		case committed:
			failures = 0
			next[customer]++
		default:
			s.ledger.rolledBack.Add(1)
		}
	}
}

// ledger is the order service's record of what it committed, kept in memory: the
// demo's ground truth, against which the consumer's reading is checked.
type ledger struct {
	mu      sync.Mutex
	commits map[string]commit // by event UUID

	count      atomic.Int64 // committed events
	rolledBack atomic.Int64 // transactions rolled back on purpose
	failed     atomic.Int64 // transactions that failed
}

// commit is what the ledger knows of one committed event.
type commit struct {
	customer string // "" for the poison event
	seq      int64
	at       time.Time // when Commit returned
}

func newLedger() *ledger { return &ledger{commits: make(map[string]commit)} }

func (l *ledger) committed(uuid, customer string, seq int64, at time.Time) {
	l.mu.Lock()
	l.commits[uuid] = commit{customer: customer, seq: seq, at: at}
	l.mu.Unlock()
	l.count.Add(1)
}

// snapshot returns a copy of the commits.
func (l *ledger) snapshot() map[string]commit {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]commit, len(l.commits))
	for k, v := range l.commits {
		m[k] = v
	}
	return m
}
