package outbox

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Position is the place of an event in the outbox's reading order. It is opaque:
// compare positions with Compare and hand them back to Batch.Commit. On PostgreSQL it
// is the number of the snapshot delta that holds the event and the event's offset
// (see the package documentation); on MySQL the commit sequence number assigned by
// the reader, with the offset kept for diagnostics.
type Position struct {
	delta  int64 // PostgreSQL: number of the snapshot delta of the consumer group
	seq    int64 // MySQL: commit sequence number
	offset int64 // the row's offset column
}

// IsZero reports whether p is the zero Position, which precedes every event.
func (p Position) IsZero() bool { return p == Position{} }

// Offset returns the value of the event's offset column, which identifies its row.
func (p Position) Offset() int64 { return p.offset }

// Compare returns -1, 0 or +1 as p is before, equal to or after q in reading order.
// Positions of different outboxes or consumer groups are not comparable.
func (p Position) Compare(q Position) int {
	if c := cmp.Compare(p.delta, q.delta); c != 0 {
		return c
	}
	if c := cmp.Compare(p.seq, q.seq); c != 0 {
		return c
	}
	return cmp.Compare(p.offset, q.offset)
}

// String formats p for logs: "delta:offset" on PostgreSQL, "seq#offset" on MySQL.
func (p Position) String() string {
	if p.seq != 0 {
		return fmt.Sprintf("%d#%d", p.seq, p.offset)
	}
	return fmt.Sprintf("%d:%d", p.delta, p.offset)
}

// Event is one event read from the outbox.
type Event struct {
	// Position is the event's place in the reading order; pass it to Batch.Commit.
	Position Position
	// UUID is the Watermill message UUID given at Publish.
	UUID string
	// Topic is the destination topic given at Publish.
	Topic string
	// Key is the partition key set with SetKey, "" if none.
	Key string
	// Payload is the message payload, byte for byte.
	Payload []byte
	// Metadata is the user metadata only: keys with ReservedPrefix are removed.
	Metadata map[string]string
	// Trace is the trace context of the message's context at Publish (see
	// TraceContext); zero when it carried none.
	Trace TraceContext
	// CreatedAt is when the event was written, by the database clock.
	CreatedAt time.Time
	// Err is set, wrapping ErrMalformedEvent, when the row could not be decoded (it
	// was not written by NewPublisher: metadata NULL, not a JSON object of strings,
	// no valid topic). Such an event must not be published: set it aside with
	// Batch.DeadLetter. Topic, Key and Metadata then hold what could be recovered.
	Err error
	// RawMetadata is the metadata column as stored, nil when it was NULL; set only
	// when Err is.
	RawMetadata []byte
}

// Message returns a new Watermill message with the event's UUID, payload and user
// metadata, plus the partition key under KeyMetadata (read it with Key) when the
// event has one, and the trace context as the traceparent and tracestate entries
// when it has one (they replace user entries of those names). A Kafka marshaler
// should not turn keys with ReservedPrefix into headers.
func (e Event) Message() *message.Message {
	msg := message.NewMessage(e.UUID, e.Payload)
	msg.Metadata = make(message.Metadata, len(e.Metadata)+1)
	for k, v := range e.Metadata {
		msg.Metadata[k] = v
	}
	SetKey(msg, e.Key)
	e.Trace.setOn(msg.Metadata)
	return msg
}

// splitMetadata separates the stored metadata into topic, key and user metadata.
func splitMetadata(stored map[string]string) (topic, key string, user map[string]string) {
	user = make(map[string]string, len(stored))
	for k, v := range stored {
		switch {
		case k == TopicMetadata:
			topic = v
		case k == KeyMetadata:
			key = v
		case strings.HasPrefix(k, ReservedPrefix):
			// Unknown internal key (a newer writer): never leak it as a header.
		default:
			user[k] = v
		}
	}
	return topic, key, user
}
