package outbox

import (
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys. Every key that starts with ReservedPrefix belongs to the outbox:
// Publish rejects user metadata that uses the prefix (except KeyMetadata, which
// SetKey writes), and Event.Metadata never contains it, so user metadata can become
// Kafka headers unchanged.
const (
	// ReservedPrefix starts every metadata key that the outbox uses itself.
	ReservedPrefix = "_millrace_"
	// KeyMetadata carries the partition key; use SetKey and Key rather than the map.
	KeyMetadata = ReservedPrefix + "key"
	// TopicMetadata carries the destination topic in the stored row. It is written by
	// Publish from its topic argument and must not be set by the caller.
	TopicMetadata = ReservedPrefix + "topic"
)

// maxUUIDLen is the width of the uuid column, as in watermill-sql's default schemas.
const maxUUIDLen = 36

// insertChunk bounds the rows of one INSERT statement (3 bind parameters each), well
// below the 65535 parameters that PostgreSQL and MySQL accept.
const insertChunk = 1000

// kafkaTopicRe is Kafka's rule for topic names (also within watermill-sql's rule).
var kafkaTopicRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// SetKey sets the partition key of msg: events with the same key reach the same Kafka
// partition in commit order. An empty key removes it (the broker then spreads the
// events).
func SetKey(msg *message.Message, key string) {
	if key == "" {
		delete(msg.Metadata, KeyMetadata)
		return
	}
	if msg.Metadata == nil {
		msg.Metadata = make(message.Metadata)
	}
	msg.Metadata[KeyMetadata] = key
}

// Key returns the partition key set by SetKey, or "" when there is none.
func Key(msg *message.Message) string {
	return msg.Metadata.Get(KeyMetadata)
}

// NewPublisher returns a Watermill publisher that writes events into the outbox
// inside tx, the caller's transaction: the events exist if and only if tx commits.
// The Publish topic is the destination Kafka topic; all topics share the one events
// table, so events are read back in one order across topics.
//
// It is watermill-sql's Publisher (AutoInitializeSchema off, so it never issues DDL in
// the transaction) over watermill-sql's default schema of the dialect with a binary
// payload column; the destination topic travels in the row's metadata under
// TopicMetadata. On PostgreSQL every Publish also runs pg_notify(Config.NotifyChannel)
// in tx, so Listen wakes when tx commits and not when it rolls back.
// Each row also keeps the W3C trace context of its message's context (see
// TraceContext).
//
// Publish validates every message first and writes nothing if one is invalid (see
// ErrInvalidEvent); it uses the first message's context for the notification and
// fails if any message's context is already done. Publish calls are serialised, so the
// events of consecutive calls keep their order. InitializeSchema must have created the
// tables.
func NewPublisher(tx *sql.Tx, cfg Config) (message.Publisher, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if tx == nil {
		return nil, errors.New("outbox: NewPublisher: tx is nil")
	}
	inner, err := wsql.NewPublisher(tx, wsql.PublisherConfig{
		SchemaAdapter:        newSchemaAdapter(cfg),
		AutoInitializeSchema: false,
	}, nil) // nil logger: watermill-sql's trace logs would include payloads
	if err != nil {
		return nil, fmt.Errorf("outbox: NewPublisher: %w", err)
	}
	return &publisher{tx: tx, cfg: cfg, inner: inner}, nil
}

type publisher struct {
	mu     sync.Mutex // serialises Publish and Close; guards closed and inner
	closed bool
	tx     *sql.Tx
	cfg    Config
	inner  *wsql.Publisher
}

func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrPublisherClosed
	}
	if err := validateEvents(p.cfg, topic, msgs); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	for _, m := range msgs {
		if err := m.Context().Err(); err != nil {
			return fmt.Errorf("outbox: publish message %s: %w", m.UUID, err)
		}
	}
	for start := 0; start < len(msgs); start += insertChunk {
		end := min(start+insertChunk, len(msgs))
		if err := p.inner.Publish(topic, msgs[start:end]...); err != nil {
			return fmt.Errorf("outbox: publish to %q: %w", topic, err)
		}
	}
	if p.cfg.Dialect == Postgres {
		// One notification per call is enough: PostgreSQL delivers it at commit and
		// folds identical notifications of one transaction into one.
		if _, err := p.tx.ExecContext(msgs[0].Context(), `SELECT pg_notify($1, '')`, p.cfg.NotifyChannel); err != nil {
			return fmt.Errorf("outbox: notify %q: %w", p.cfg.NotifyChannel, err)
		}
	}
	return nil
}

// Close makes later Publish calls fail with ErrPublisherClosed. It neither commits
// nor rolls back the transaction, which belongs to the caller.
func (p *publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.inner.Close()
}

func validateEvents(cfg Config, topic string, msgs []*message.Message) error {
	if topic == "" {
		return fmt.Errorf("%w: topic is empty", ErrInvalidEvent)
	}
	if !kafkaTopicRe.MatchString(topic) || topic == "." || topic == ".." {
		return fmt.Errorf("%w: topic %q is not a valid Kafka topic name (1-249 characters of [a-zA-Z0-9._-])", ErrInvalidEvent, topic)
	}
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("%w: message %d is nil", ErrInvalidEvent, i)
		}
		if m.UUID == "" {
			return fmt.Errorf("%w: message %d has an empty UUID", ErrInvalidEvent, i)
		}
		if len(m.UUID) > maxUUIDLen {
			return fmt.Errorf("%w: message %d: UUID %q is longer than %d characters", ErrInvalidEvent, i, m.UUID, maxUUIDLen)
		}
		size := len(m.Payload)
		for k, v := range m.Metadata {
			if strings.HasPrefix(k, ReservedPrefix) && k != KeyMetadata {
				return fmt.Errorf("%w: message %s: metadata key %q uses the reserved prefix %q", ErrInvalidEvent, m.UUID, k, ReservedPrefix)
			}
			size += len(k) + len(v)
		}
		if cfg.MaxEventBytes > 0 && size > cfg.MaxEventBytes {
			return fmt.Errorf("%w: message %s is %d bytes, more than MaxEventBytes (%d)", ErrInvalidEvent, m.UUID, size, cfg.MaxEventBytes)
		}
	}
	return nil
}

// schemaAdapter is watermill-sql's default schema of the dialect, pointed at the
// outbox table with a binary payload column, whose InsertQuery also stores the
// destination topic in each row's metadata (on copies: the caller's messages are
// not modified).
type schemaAdapter struct {
	wsql.SchemaAdapter
	cfg Config
}

// newSchemaAdapter returns the schema adapter: watermill-sql's default schema of the
// dialect with a binary payload column. The reader uses its UnmarshalMessage, not its
// SelectQuery (see Reader).
func newSchemaAdapter(cfg Config) schemaAdapter {
	table := func(string) string { return cfg.eventsTable() }
	var inner wsql.SchemaAdapter
	switch cfg.Dialect {
	case MySQL:
		inner = wsql.DefaultMySQLSchema{
			GenerateMessagesTableName: table,
			GeneratePayloadType:       func(string) string { return "LONGBLOB" },
		}
	default:
		inner = wsql.DefaultPostgreSQLSchema{
			GenerateMessagesTableName: table,
			GeneratePayloadType:       func(string) string { return "BYTEA" },
		}
	}
	return schemaAdapter{SchemaAdapter: inner, cfg: cfg}
}

func (s schemaAdapter) InsertQuery(topic string, msgs message.Messages) (wsql.Query, error) {
	rows := make(message.Messages, len(msgs))
	for i, m := range msgs {
		c := message.NewMessage(m.UUID, m.Payload)
		c.Metadata = make(message.Metadata, len(m.Metadata)+1)
		for k, v := range m.Metadata {
			c.Metadata[k] = v
		}
		c.Metadata[TopicMetadata] = topic
		captureTrace(m.Context(), c.Metadata) // see trace.go
		rows[i] = c
	}
	return s.SchemaAdapter.InsertQuery(topic, rows)
}

// SchemaInitializingQueries returns the outbox's own DDL (InitializeSchema runs it
// under a lock; the publisher never does).
func (s schemaAdapter) SchemaInitializingQueries(string) []wsql.Query {
	var qs []wsql.Query
	for _, q := range schemaStatements(s.cfg) {
		qs = append(qs, wsql.Query{Query: q})
	}
	return qs
}
