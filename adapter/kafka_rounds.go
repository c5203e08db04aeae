package adapter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrHeldBack is the failure of a message that could not be written because a record
// before it in its partition failed: franz-go fails every record buffered behind a
// failed one, so that a later record is never written ahead of it. The error also
// wraps that failure (errors.Is reaches it), but Classify reports it as Retriable:
// the message itself is fine, and the decorator resends it after the earlier one.
var ErrHeldBack = errors.New("adapter: kafka: held back behind a failed record of its partition")

// heldBackError is ErrHeldBack with the failure that held the message back.
type heldBackError struct{ cause error }

func (e *heldBackError) Error() string   { return ErrHeldBack.Error() + ": " + e.cause.Error() }
func (e *heldBackError) Unwrap() []error { return []error{ErrHeldBack, e.cause} }

// kafkaCodeError is a franz-go error carrying a broker error code. It unwraps to the
// franz-go error (errors.Is(err, kerr.MessageTooLarge)) and also matches sarama's
// KError of the same code (errors.Is(err, sarama.ErrMessageSizeTooLarge)), so that
// code written against watermill-kafka's errors keeps working.
type kafkaCodeError struct {
	err  error
	code int16
}

func (e *kafkaCodeError) Error() string { return e.err.Error() }
func (e *kafkaCodeError) Unwrap() error { return e.err }
func (e *kafkaCodeError) Is(target error) bool {
	k, ok := target.(sarama.KError)
	return ok && int16(k) == e.code
}

// brokerError returns err, made to match sarama's KError too when it carries a broker
// error code.
func brokerError(err error) error {
	var ke *kerr.Error
	if err == nil || !errors.As(err, &ke) {
		return err
	}
	return &kafkaCodeError{err: err, code: ke.Code}
}

// loop runs the rounds: it takes every queued call, produces and flushes their
// records together, and wakes the calls. It returns once Close was called and the
// queue is empty.
func (p *KafkaPublisher) loop() {
	defer close(p.done)
	for {
		p.mu.Lock()
		calls, closed := p.queue, p.closed
		p.queue = nil
		p.mu.Unlock()
		if len(calls) == 0 {
			if closed {
				return
			}
			<-p.wake
			continue
		}
		if p.cfg.Linger > 0 && !closed {
			time.Sleep(p.cfg.Linger)
			p.mu.Lock()
			calls = append(calls, p.queue...)
			p.queue = nil
			p.mu.Unlock()
		}
		p.round(calls)
		for _, c := range calls {
			close(c.done)
		}
	}
}

// roundRecord is one record of a round.
type roundRecord struct {
	call *kafkaCall
	i    int // index of the message in its call
	r    *kgo.Record
	ts   time.Time // the record's Timestamp as marshalled: zero lets franz-go stamp it
	err  error
	// alone is set when the record failed permanently on its own: not because a
	// record it shared a batch or a partition with failed.
	alone bool
}

// round produces the records of calls, flushes, isolates the records that failed
// permanently, and records every outcome in the calls.
func (p *KafkaPublisher) round(calls []*kafkaCall) {
	n := 0
	for _, c := range calls {
		n += c.valid
	}
	recs := make([]roundRecord, 0, n)
	for _, c := range calls {
		for i, r := range c.recs {
			if r != nil {
				recs = append(recs, roundRecord{call: c, i: i, r: r, ts: r.Timestamp})
			}
		}
	}
	all := make([]*roundRecord, len(recs))
	for i := range recs {
		all[i] = &recs[i]
	}
	p.produce(all, false)
	p.isolate(all)
	for _, rr := range all {
		if rr.err == nil {
			continue
		}
		err := brokerError(rr.err)
		if !rr.alone && Classify(err) == Permanent {
			// It failed with a record before it in its partition, or isolating the
			// bad record was cut short: it must be resent, after that one.
			err = &heldBackError{cause: err}
		}
		if errors.Is(rr.err, kgo.ErrClientClosed) {
			err = fmt.Errorf("%w (%w)", ErrClosed, err)
		}
		uuid := rr.call.msgs[rr.i].UUID
		if rr.alone && errors.Is(rr.err, kerr.MessageTooLarge) {
			rr.call.errs[rr.i] = fmt.Errorf("adapter: kafka: message %s is too large for %q (MaxMessageBytes %d, or the topic's max.message.bytes): %w",
				uuid, rr.r.Topic, p.cfg.MaxMessageBytes, err)
			continue
		}
		rr.call.errs[rr.i] = fmt.Errorf("adapter: kafka: publish message %s to %q: %w", uuid, rr.r.Topic, err)
	}
}

// produce hands recs to franz-go in order, flushes, and waits for every answer. With
// fresh set, each record is replaced by a copy first: a record is not handed to
// franz-go twice. The copy keeps the marshalled timestamp, not the one franz-go
// stamped on the first send: franz-go times a record out from its timestamp
// (DeliveryTimeout), so a resend must start a fresh clock.
//
// Nothing leaves before Flush (manual flushing). Flush waits until franz-go knows
// the partitions of every topic of recs: records of a topic it has not loaded yet
// wait in a buffer of their own, and franz-go moves them to their partitions when
// the metadata arrives; during a flush each move could send a partial batch whose
// failure would then not fail the records moved after it (franz-go fails only the
// records buffered at the time), letting them overtake it.
func (p *KafkaPublisher) produce(recs []*roundRecord, fresh bool) {
	type topicState struct {
		records  int
		answered atomic.Int64
	}
	topics := make(map[string]*topicState, 1)
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for _, rr := range recs {
		if fresh {
			old := rr.r
			rr.r = &kgo.Record{Topic: old.Topic, Key: old.Key, Value: old.Value, Headers: old.Headers, Timestamp: rr.ts}
		}
		rr.err = nil
		ts := topics[rr.r.Topic]
		if ts == nil {
			ts = &topicState{}
			topics[rr.r.Topic] = ts
		}
		ts.records++
		p.cl.Produce(context.Background(), rr.r, func(_ *kgo.Record, err error) {
			rr.err = err
			ts.answered.Add(1)
			wg.Done()
		})
	}
	deadline := time.Now().Add(p.answerWait() + time.Second)
	for topic, ts := range topics {
		for {
			leader, _, err := p.cl.PartitionLeader(topic, 0)
			if leader >= 0 || err != nil || ts.answered.Load() == int64(ts.records) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	// Flush returns once nothing is buffered; the promises may still be running.
	_ = p.cl.Flush(context.Background())
	wg.Wait()
}

// partitionKey identifies a record's partition after it was produced.
type partitionKey struct {
	topic     string
	partition int32
}

// isolate finds, in each partition where several records failed with a permanent
// error, which of them fail on their own. A broker judges a record batch as a whole
// (MESSAGE_TOO_LARGE for a batch, INVALID_RECORD for one bad record) and franz-go
// then fails the partition's later records too, so one bad record fails its
// neighbours. They are sent again in halves, in order, until every permanent failure
// is alone (about 2·log2(n) round trips for one bad record among n). A lone
// permanent failure needs no isolation.
func (p *KafkaPublisher) isolate(recs []*roundRecord) {
	var groups map[partitionKey][]*roundRecord
	var order []partitionKey
	for _, rr := range recs {
		if rr.err == nil || Classify(brokerError(rr.err)) != Permanent {
			continue
		}
		k := partitionKey{rr.r.Topic, rr.r.Partition}
		if groups == nil {
			groups = make(map[partitionKey][]*roundRecord)
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], rr)
	}
	for _, k := range order {
		p.narrow(groups[k])
	}
}

// narrow marks which of recs, which failed together with a permanent error, fail on
// their own. It returns false when a failure of another class cut it short: the
// records not yet resent keep their error and are held back.
func (p *KafkaPublisher) narrow(recs []*roundRecord) bool {
	if len(recs) == 1 {
		recs[0].alone = true
		return true
	}
	half := len(recs) / 2
	for _, part := range [][]*roundRecord{recs[:half], recs[half:]} {
		p.produce(part, true)
		var again []*roundRecord
		for _, rr := range part {
			if rr.err == nil {
				continue
			}
			if Classify(brokerError(rr.err)) != Permanent {
				return false
			}
			again = append(again, rr)
		}
		if len(again) > 0 && !p.narrow(again) {
			return false
		}
	}
	return true
}
