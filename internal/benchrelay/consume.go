package benchrelay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// uuidHeader is where both paths put the Watermill message UUID (watermill-kafka's
// DefaultMarshaler and router.Marshaler alike).
const uuidHeader = "_watermill_message_uuid"

// record is what the collector keeps of a consumed record.
type record struct {
	uuid      string
	key       string
	partition int32
	offset    int64
	seen      time.Time // when the consumer received it
}

// collector reads one topic from the start with a franz-go client (no consumer
// group, straight to the broker) and keeps every record. It reports when want
// distinct UUIDs were seen.
type collector struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	exited chan struct{}
	once   sync.Once

	mu       sync.Mutex
	recs     []record
	distinct map[string]struct{}
	want     int
	doneAt   time.Time
	done     chan struct{} // closed when len(distinct) >= want
	lastRecv time.Time
	errs     []string
}

func newCollector(k *kafkaEnv, topic string, want int) (*collector, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(k.addrs...),
		kgo.ClientID("bench-relay-consumer"),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// The broker answers a waiting fetch as soon as data arrives, so a long
		// MaxWait costs no latency.
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.MetadataMinAge(50 * time.Millisecond),
	}, k.directDialer()...)...)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{
		cl:       cl,
		cancel:   cancel,
		exited:   make(chan struct{}),
		distinct: make(map[string]struct{}, want),
		want:     want,
		done:     make(chan struct{}),
	}
	if want <= 0 {
		close(c.done)
	}
	go c.loop(ctx)
	return c, nil
}

func (c *collector) loop(ctx context.Context) {
	defer close(c.exited)
	for ctx.Err() == nil {
		fetches := c.cl.PollFetches(ctx)
		now := time.Now()
		c.mu.Lock()
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			if len(c.errs) < 10 {
				c.errs = append(c.errs, fmt.Sprintf("%s[%d]: %v", t, p, err))
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			rec := record{key: string(r.Key), partition: r.Partition, offset: r.Offset, seen: now}
			for _, h := range r.Headers {
				if h.Key == uuidHeader {
					rec.uuid = string(h.Value)
				}
			}
			c.recs = append(c.recs, rec)
			c.lastRecv = now
			if _, dup := c.distinct[rec.uuid]; !dup {
				c.distinct[rec.uuid] = struct{}{}
				if len(c.distinct) == c.want {
					c.doneAt = now
					close(c.done)
				}
			}
		})
		c.mu.Unlock()
	}
}

// wait returns when want distinct UUIDs were consumed, with the time the last one
// arrived, or fails at timeout saying how many were seen.
func (c *collector) wait(ctx context.Context, timeout time.Duration) (time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.doneAt, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-t.C:
		c.mu.Lock()
		defer c.mu.Unlock()
		return time.Time{}, fmt.Errorf("consumed %d distinct events of %d in %v (fetch errors: %v)",
			len(c.distinct), c.want, timeout, c.errs)
	}
}

// settle waits until no record arrived for idle (late duplicates are counted).
func (c *collector) settle(idle time.Duration) {
	for {
		c.mu.Lock()
		last := c.lastRecv
		c.mu.Unlock()
		if d := time.Since(last); d >= idle {
			return
		}
		time.Sleep(idle / 4)
	}
}

// stop ends consumption and returns every record read.
func (c *collector) stop() []record {
	c.once.Do(func() {
		c.cancel()
		<-c.exited
		c.cl.Close()
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recs
}
