package kafkatest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fault installs a fault in the in-process broker (see kfake.Fault: every field is a
// filter, Err is the code answered, Count how many requests) and removes it when the
// test ends. It skips the test against KAFKA_BROKERS. kfake may call the fault's When
// more than once per request (per entity it checks), on its own goroutine.
func (c *Cluster) Fault(tb testing.TB, f kfake.Fault) *kfake.FaultHandle {
	tb.Helper()
	c.RequireFake(tb)
	h := c.fake.Fault(f)
	tb.Cleanup(h.Remove)
	return h
}

// FailProduce makes the in-process broker answer the next count produce requests for
// topic with err instead of writing them; count < 0 fails every one until the handle
// is removed or the test ends, and 0 is refused as a likely mistake. A request counts
// once however many of the topic's partitions it carries, and all of them fail. The
// records are not written. It skips the test against KAFKA_BROKERS.
//
// Pick a code the client under test does not retry inside itself if the test wants
// to see it: sarama's producer retries the retriable ones of its own
// (NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, ...) up to Producer.Retry.Max times, but
// returns NETWORK_EXCEPTION, BROKER_NOT_AVAILABLE and REPLICA_NOT_AVAILABLE at once.
func (c *Cluster) FailProduce(tb testing.TB, topic string, err *kerr.Error, count int) *kfake.FaultHandle {
	tb.Helper()
	if count == 0 {
		tb.Fatalf("kafkatest: FailProduce(%q, %v, 0): count must be positive, or negative for always", topic, err)
	}
	return c.Fault(tb, kfake.Fault{
		Keys:  []kmsg.Key{kmsg.Produce},
		Topic: topic,
		Err:   err,
		Count: count,
	})
}

// FailProduceWhere is FailProduce for only the record batches of topic that hold at
// least one record for which match returns true; count counts failed batches. A
// record batch is one partition's share of a produce request and is written or
// failed as a whole, as in Kafka: records sent in one batch with a matching one fail
// with it, while the batches of other partitions in the same request are written.
//
// match sees the records as the producer sent them: Topic, Partition, Key, Value,
// Headers and Timestamp are set, Offset is -1. It runs on the broker's goroutine and
// must be quick and must not block. Compressed batches are decompressed for it; a
// batch that cannot be decoded never matches. The topic must exist: the partitions it
// has when FailProduceWhere is called are the ones watched.
func (c *Cluster) FailProduceWhere(tb testing.TB, topic string, err *kerr.Error, count int, match func(Record) bool) *kfake.FaultHandle {
	tb.Helper()
	c.RequireFake(tb)
	if count == 0 {
		tb.Fatalf("kafkatest: FailProduceWhere(%q, %v, 0): count must be positive, or negative for always", topic, err)
	}
	if match == nil {
		tb.Fatalf("kafkatest: FailProduceWhere(%q): match is nil", topic)
	}
	id, partitions := c.topicIDAndPartitions(tb, topic)

	// kfake asks When once per request, without saying which partition it is
	// answering for; one fault per partition, each filtered to it, tells When which
	// partition's records to look at. The budget is ours and shared, so that count
	// applies across partitions.
	var left atomic.Int64
	left.Store(int64(count))
	dec := kgo.DefaultDecompressor()
	faults := make([]kfake.Fault, 0, len(partitions))
	for _, p := range partitions {
		faults = append(faults, kfake.Fault{
			Keys:       []kmsg.Key{kmsg.Produce},
			Topic:      topic,
			Partitions: []int32{p},
			Err:        err,
			Count:      -1,
			When: func(r kmsg.Request) bool {
				req, ok := r.(*kmsg.ProduceRequest)
				if !ok || !produceMatches(req, topic, id, p, dec, match) {
					return false
				}
				if count < 0 {
					return true
				}
				for {
					n := left.Load()
					if n <= 0 {
						return false
					}
					if left.CompareAndSwap(n, n-1) {
						return true
					}
				}
			},
		})
	}
	h := c.fake.Fault(faults...)
	tb.Cleanup(h.Remove)
	return h
}

// topicIDAndPartitions returns the topic's ID and partitions from the metadata.
func (c *Cluster) topicIDAndPartitions(tb testing.TB, topic string) ([16]byte, []int32) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	resp, err := c.metadata(ctx, nil, topic)
	if err == nil && len(resp.Topics) != 1 {
		err = fmt.Errorf("answer has %d topics, want 1", len(resp.Topics))
	}
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		tb.Fatalf("kafkatest: metadata of topic %q: %v", topic, err)
	}
	t := resp.Topics[0]
	ps := make([]int32, 0, len(t.Partitions))
	for _, p := range t.Partitions {
		ps = append(ps, p.Partition)
	}
	return t.TopicID, ps
}

// produceMatches reports whether the batch for topic/partition in req holds a record
// that match accepts. Produce v13 names topics by ID only.
func produceMatches(req *kmsg.ProduceRequest, topic string, id [16]byte, partition int32, dec kgo.Decompressor, match func(Record) bool) bool {
	for _, rt := range req.Topics {
		if rt.Topic != topic && (rt.TopicID == [16]byte{} || rt.TopicID != id) {
			continue
		}
		for _, rp := range rt.Partitions {
			if rp.Partition != partition {
				continue
			}
			recs, err := decodeBatch(rp.Records, dec)
			if err != nil {
				continue
			}
			for _, r := range recs {
				r.Topic, r.Partition = topic, partition
				if match(r) {
					return true
				}
			}
		}
	}
	return false
}

// decodeBatch decodes the records of one produced v2 record batch.
func decodeBatch(raw []byte, dec kgo.Decompressor) ([]Record, error) {
	var b kmsg.RecordBatch
	if err := b.ReadFrom(raw); err != nil {
		return nil, err
	}
	if b.Magic != 2 {
		return nil, fmt.Errorf("record batch magic %d, want 2", b.Magic)
	}
	data, err := dec.Decompress(b.Records, kgo.CompressionCodecType(b.Attributes&0x0007))
	if err != nil {
		return nil, err
	}
	recs := make([]Record, 0, b.NumRecords)
	for i := int32(0); i < b.NumRecords; i++ {
		length, n := binary.Varint(data) // Kafka varints are zig-zag, like Go's
		if n <= 0 || length < 0 || int64(len(data)-n) < length {
			return nil, errors.New("truncated record")
		}
		var kr kmsg.Record
		if err := kr.ReadFrom(data[:n+int(length)]); err != nil {
			return nil, err
		}
		data = data[n+int(length):]
		r := Record{
			Offset:    -1,
			Key:       kr.Key,
			Value:     kr.Value,
			Timestamp: time.UnixMilli(b.FirstTimestamp + kr.TimestampDelta64),
		}
		if len(kr.Headers) > 0 {
			r.Headers = make(map[string]string, len(kr.Headers))
			for _, h := range kr.Headers {
				r.Headers[h.Key] = string(h.Value)
			}
		}
		recs = append(recs, r)
	}
	return recs, nil
}
