package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// checker is the demo's downstream service: it reads the topic with a plain Kafka
// client (franz-go), independently of the library, and checks every record.
//
//   - It de-duplicates by the Watermill message UUID, which the router sends in the
//     "_watermill_message_uuid" header: delivery is at-least-once, so a record can
//     arrive twice (after an interrupted batch or a lost broker answer).
//   - It checks that each customer's events arrive in seq order: the first copy of
//     every event must have a higher seq than every earlier event of its customer.
//   - It records when it first read each UUID, for the commit-to-consume latency.
type checker struct {
	client *kgo.Client

	mu       sync.Mutex
	seen     map[string]time.Time // UUID -> when its first copy was read
	lastSeq  map[string]int64     // customer -> highest seq read
	examples []string             // the first order violations, described

	records    atomic.Int64 // every record read, copies included
	distinct   atomic.Int64 // distinct UUIDs read
	duplicates atomic.Int64 // copies of a UUID already read
	violations atomic.Int64 // events read after a later event of their customer
	foreign    atomic.Int64 // records without a UUID header or with an unreadable value
}

// newChecker returns a checker reading topic from its first offset, on every
// partition, without a consumer group (it keeps no committed offsets).
func newChecker(brokers []string, topic string, opts ...kgo.Opt) (*checker, error) {
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("millrace-demo-checker"),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(250 * time.Millisecond),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	return &checker{
		client:  cl,
		seen:    make(map[string]time.Time),
		lastSeq: make(map[string]int64),
	}, nil
}

// run reads records until ctx ends or Close is called.
func (c *checker) run(ctx context.Context) {
	for {
		fetches := c.client.PollFetches(ctx)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		// Fetch errors (a broker restarting, ...) are retried by the client itself.
		fetches.EachRecord(c.check)
	}
}

// Close stops the client; run returns.
func (c *checker) Close() { c.client.Close() }

// check handles one record. The value is decoded but never printed.
func (c *checker) check(r *kgo.Record) {
	now := time.Now()
	c.records.Add(1)
	var id string
	for _, h := range r.Headers {
		if h.Key == kafka.UUIDHeaderKey {
			id = string(h.Value)
		}
	}
	if id == "" {
		c.foreign.Add(1)
		return
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.seen[id]; dup {
		c.duplicates.Add(1)
		return
	}
	c.seen[id] = now
	c.distinct.Add(1)

	var ev OrderPlaced
	if err := json.Unmarshal(r.Value, &ev); err != nil || ev.Customer == "" {
		c.foreign.Add(1)
		return
	}
	if last := c.lastSeq[ev.Customer]; ev.Seq <= last {
		c.violations.Add(1)
		if len(c.examples) < 5 {
			c.examples = append(c.examples, fmt.Sprintf("%s: event %s (seq %d) read after seq %d (partition %d, offset %d)",
				ev.Customer, id, ev.Seq, last, r.Partition, r.Offset))
		}
		return
	}
	c.lastSeq[ev.Customer] = ev.Seq
}

// reading is a copy of what the checker has read.
type reading struct {
	seen       map[string]time.Time
	records    int64
	duplicates int64
	violations int64
	foreign    int64
	examples   []string
}

func (c *checker) snapshot() reading {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]time.Time, len(c.seen))
	for k, v := range c.seen {
		seen[k] = v
	}
	return reading{
		seen:       seen,
		records:    c.records.Load(),
		duplicates: c.duplicates.Load(),
		violations: c.violations.Load(),
		foreign:    c.foreign.Load(),
		examples:   append([]string(nil), c.examples...),
	}
}

// missing returns how many of the committed UUIDs the checker has not read yet,
// not counting those in skip.
func (c *checker) missing(commits map[string]commit, skip map[string]bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for id := range commits {
		if _, ok := c.seen[id]; !ok && !skip[id] {
			n++
		}
	}
	return n
}
