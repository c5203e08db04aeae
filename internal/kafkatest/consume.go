package kafkatest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Record is a record read back from a topic.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte // nil for a record without a key
	Value     []byte
	// Headers holds the record's headers; a header name repeated in one record keeps
	// its last value. nil when the record has none.
	Headers   map[string]string
	Timestamp time.Time
}

// consumeMax bounds ConsumeAll: a topic that still receives records after this long
// is a test that never stops producing.
const consumeMax = time.Minute

// Consume reads topic from the start of every partition, through a client of its own
// (franz-go, no consumer group) bootstrapped from addrs, until at least n records
// were read, and returns them sorted by partition and offset. It may return more than
// n when they arrive in the same fetch; use
// ConsumeAll to check that nothing beyond n was written. It fails the test, saying
// how many records it read, when n records were not read within timeout.
func Consume(tb testing.TB, addrs []string, topic string, n int, timeout time.Duration) []Record {
	tb.Helper()
	return consume(tb, addrs, nil, topic, n, timeout, 0)
}

// ConsumeAll reads topic from the start of every partition, as Consume does, until no
// new record arrived for idle, and returns every record read, sorted by partition and
// offset. It fails the test when
// records still arrive after a minute.
func ConsumeAll(tb testing.TB, addrs []string, topic string, idle time.Duration) []Record {
	tb.Helper()
	return consume(tb, addrs, nil, topic, -1, consumeMax, idle)
}

// Consume is the package's Consume on this cluster. With WithProxy it reaches the
// brokers directly, so neither the proxy's latency nor a Cut affects it.
func (c *Cluster) Consume(tb testing.TB, topic string, n int, timeout time.Duration) []Record {
	tb.Helper()
	return consume(tb, c.addrs, c.directDialer(), topic, n, timeout, 0)
}

// ConsumeAll is the package's ConsumeAll on this cluster. With WithProxy it reaches
// the brokers directly, so neither the proxy's latency nor a Cut affects it.
func (c *Cluster) ConsumeAll(tb testing.TB, topic string, idle time.Duration) []Record {
	tb.Helper()
	return consume(tb, c.addrs, c.directDialer(), topic, -1, consumeMax, idle)
}

// consume reads until n records (n >= 0), or until idle passed without a record
// (n < 0), failing the test at timeout.
func consume(tb testing.TB, addrs []string, extra []kgo.Opt, topic string, n int, timeout, idle time.Duration) []Record {
	tb.Helper()
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(addrs...),
		kgo.ClientID("kafkatest-consumer"),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.MetadataMinAge(50 * time.Millisecond),
	}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		tb.Fatalf("kafkatest: consumer client: %v", err)
	}
	defer cl.Close()

	start := time.Now()
	deadline := start.Add(timeout)
	var (
		recs []Record
		errs []string // distinct fetch errors, for the failure message
	)
	for {
		wait := time.Until(deadline)
		if n < 0 && idle < wait {
			wait = idle
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fetches := cl.PollFetches(ctx)
		cancel()
		got := 0
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			if s := fmt.Sprintf("%s[%d]: %v", t, p, err); !slices.Contains(errs, s) {
				errs = append(errs, s)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			got++
			recs = append(recs, fromKgo(r))
		})
		switch {
		case n >= 0 && len(recs) >= n:
			return sorted(recs)
		case n < 0 && got == 0 && ctx.Err() != nil && time.Now().Before(deadline):
			return sorted(recs) // idle: nothing new for idle
		case time.Now().After(deadline):
			want := fmt.Sprintf("%d", n)
			if n < 0 {
				want = fmt.Sprintf("an idle period of %v", idle)
			}
			msg := fmt.Sprintf("kafkatest: consumed %d records from %q in %v, want %s", len(recs), topic, timeout, want)
			if len(errs) > 0 {
				msg += "; fetch errors: " + strings.Join(errs, "; ")
			}
			tb.Fatal(msg)
		}
	}
}

func sorted(recs []Record) []Record {
	slices.SortStableFunc(recs, func(a, b Record) int {
		if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	return recs
}

func fromKgo(r *kgo.Record) Record {
	rec := Record{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Key:       r.Key,
		Value:     r.Value,
		Timestamp: r.Timestamp,
	}
	if len(r.Headers) > 0 {
		rec.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			rec.Headers[h.Key] = string(h.Value)
		}
	}
	return rec
}
