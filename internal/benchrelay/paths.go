package benchrelay

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// Path names, as printed.
const (
	pathStock = "stock"
	pathOurs  = "millrace"
)

// stockKeyMetadata is the metadata entry the stock path's application sets and its
// partitioning marshaler turns into the Kafka key.
const stockKeyMetadata = "partition_key"

// stockConsumerGroup is the watermill-sql consumer group of the stock forwarder.
const stockConsumerGroup = "bench_relay"

// relay is a running forwarder: watermill's components/forwarder and
// router.Forwarder both have this shape.
type relay interface {
	Run(ctx context.Context) error
	Close() error
}

// path is one way from an application's transaction to Kafka.
type path interface {
	name() string
	// setup creates the SQL tables.
	setup(ctx context.Context) error
	// write writes evs to topic in one transaction of db, with the path's own
	// application-side publisher, and returns when it committed.
	write(ctx context.Context, db *sql.DB, topic string, evs []event) error
	// newRelay builds the forwarder and its Kafka producer (connected, not started).
	// close releases what newRelay opened, after the relay stopped.
	newRelay(ctx context.Context, brokers []string) (r relay, close func(), err error)
	// ready waits until a started relay is ready to forward.
	ready(ctx context.Context, r relay) error
	// teardown drops the SQL tables.
	teardown(ctx context.Context, db *sql.DB) error
	// settings describes the configuration, for the report.
	settings() string
}

// stockPath is Watermill's documented forwarder setup: the application publishes
// through forwarder.NewPublisher over a watermill-sql publisher in its transaction
// (each message wrapped in a JSON envelope into one SQL topic); a forwarder.Forwarder
// reads that topic with a watermill-sql subscriber (DefaultPostgreSQLSchema,
// DefaultPostgreSQLOffsetsAdapter, a consumer group), unwraps each message and
// publishes it with watermill-kafka's publisher, one at a time. Every setting is the
// library default except RequiredAcks=WaitForAll on the Kafka producer (sarama's
// default is WaitForLocal), so both paths wait for the same acknowledgement.
type stockPath struct {
	dsn      string
	sqlTopic string // the forwarder's SQL topic: tables watermill_<t> and watermill_offsets_<t>
}

func (p *stockPath) name() string { return pathStock }

func (p *stockPath) settings() string {
	return "watermill-sql v3 subscriber (DefaultPostgreSQLSchema, JSON payload, SubscribeBatchSize 100, " +
		"PollInterval 1s, consumer group) -> watermill components/forwarder -> watermill-kafka v3 publisher " +
		"(sarama SyncProducer, DefaultSaramaSyncPublisherConfig + RequiredAcks=WaitForAll, partitioning marshaler on the key)"
}

func (p *stockPath) schema() wsql.DefaultPostgreSQLSchema { return wsql.DefaultPostgreSQLSchema{} }

func (p *stockPath) offsets() wsql.DefaultPostgreSQLOffsetsAdapter {
	return wsql.DefaultPostgreSQLOffsetsAdapter{}
}

func (p *stockPath) subscriber(db *sql.DB) (*wsql.Subscriber, error) {
	return wsql.NewSubscriber(db, wsql.SubscriberConfig{
		ConsumerGroup:    stockConsumerGroup,
		SchemaAdapter:    p.schema(),
		OffsetsAdapter:   p.offsets(),
		InitializeSchema: true,
	}, watermill.NopLogger{})
}

func (p *stockPath) setup(ctx context.Context) error {
	db, err := openDB(ctx, p.dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	sub, err := p.subscriber(db)
	if err != nil {
		return err
	}
	defer sub.Close()
	return sub.SubscribeInitialize(p.sqlTopic)
}

func (p *stockPath) write(ctx context.Context, db *sql.DB, topic string, evs []event) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	sqlPub, err := wsql.NewPublisher(tx, wsql.PublisherConfig{SchemaAdapter: p.schema()}, watermill.NopLogger{})
	if err != nil {
		return err
	}
	pub := forwarder.NewPublisher(sqlPub, forwarder.PublisherConfig{ForwarderTopic: p.sqlTopic})
	msgs := make([]*message.Message, len(evs))
	for i, e := range evs {
		m := message.NewMessage(e.uuid, e.payload)
		m.Metadata.Set(stockKeyMetadata, e.key)
		m.SetContext(ctx)
		msgs[i] = m
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		return err
	}
	return tx.Commit()
}

func (p *stockPath) newRelay(ctx context.Context, brokers []string) (relay, func(), error) {
	db, err := openDB(ctx, p.dsn)
	if err != nil {
		return nil, nil, err
	}
	sub, err := p.subscriber(db)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	sc := kafka.DefaultSaramaSyncPublisherConfig()
	sc.Producer.RequiredAcks = sarama.WaitForAll
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers: brokers,
		Marshaler: kafka.NewWithPartitioningMarshaler(func(_ string, msg *message.Message) (string, error) {
			return msg.Metadata.Get(stockKeyMetadata), nil
		}),
		OverwriteSaramaConfig: sc,
	}, watermill.NopLogger{})
	if err != nil {
		sub.Close()
		db.Close()
		return nil, nil, err
	}
	fwd, err := forwarder.NewForwarder(sub, pub, watermill.NopLogger{}, forwarder.Config{ForwarderTopic: p.sqlTopic})
	if err != nil {
		pub.Close()
		sub.Close()
		db.Close()
		return nil, nil, err
	}
	return fwd, func() {
		_ = pub.Close()
		_ = sub.Close()
		_ = db.Close()
	}, nil
}

func (p *stockPath) ready(ctx context.Context, r relay) error {
	select {
	case <-r.(*forwarder.Forwarder).Running():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *stockPath) teardown(ctx context.Context, db *sql.DB) error {
	var errs []error
	for _, t := range []string{p.schema().MessagesTable(p.sqlTopic), p.offsets().MessagesOffsetsTable(p.sqlTopic)} {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
			errs = append(errs, fmt.Errorf("drop %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// oursPath is this project: outbox.NewPublisher in the application's transaction,
// router.Forwarder with router.NewKafkaPublisher, all defaults (BatchSize 1000,
// LISTEN/NOTIFY with a 1s poll fallback; idempotent producer, acks=all, snappy,
// 1 ms linger, the adapter decorator's retries).
type oursPath struct {
	dsn    string
	outbox outbox.Config

	// last is the forwarder of the last newRelay, for its counters.
	last *router.Forwarder
}

func (p *oursPath) name() string { return pathOurs }

func (p *oursPath) settings() string {
	return fmt.Sprintf("outbox.NewPublisher -> router.Forwarder (defaults: BatchSize %d, LISTEN/NOTIFY + PollInterval %v) "+
		"-> router.NewKafkaPublisher (defaults: franz-go, idempotent, acks=all, snappy, one round per batch)",
		router.DefaultBatchSize, router.DefaultPollInterval)
}

func (p *oursPath) setup(ctx context.Context) error {
	db, err := openDB(ctx, p.dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	return outbox.InitializeSchema(ctx, db, p.outbox)
}

func (p *oursPath) write(ctx context.Context, db *sql.DB, topic string, evs []event) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	pub, err := outbox.NewPublisher(tx, p.outbox)
	if err != nil {
		return err
	}
	msgs := make([]*message.Message, len(evs))
	for i, e := range evs {
		m := message.NewMessage(e.uuid, e.payload)
		outbox.SetKey(m, e.key)
		m.SetContext(ctx)
		msgs[i] = m
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		return err
	}
	return tx.Commit()
}

func (p *oursPath) newRelay(ctx context.Context, brokers []string) (relay, func(), error) {
	db, err := openDB(ctx, p.dsn)
	if err != nil {
		return nil, nil, err
	}
	pub, err := router.NewKafkaPublisher(adapter.KafkaConfig{Brokers: brokers}, adapter.Config{})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	rcfg := router.Config{DB: db, Outbox: p.outbox, Publisher: pub, Logger: debugLogger()}
	fwd, err := router.NewForwarder(rcfg)
	if err != nil {
		pub.Close()
		db.Close()
		return nil, nil, err
	}
	p.last = fwd
	return fwd, func() {
		_ = pub.Close()
		_ = db.Close()
	}, nil
}

// ready waits for the forwarder's first idle state: it is then listening.
func (p *oursPath) ready(ctx context.Context, r relay) error {
	f := r.(*router.Forwarder)
	for {
		if s := f.Stats().State; s == router.StateIdle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (p *oursPath) teardown(ctx context.Context, db *sql.DB) error {
	return outbox.DropSchema(ctx, db, p.outbox)
}

// debugLogger returns a debug-level logger to stderr (one line per batch) when
// BENCH_RELAY_DEBUG is set, for our forwarders in and out of process; nil otherwise.
func debugLogger() *zerolog.Logger {
	if os.Getenv("BENCH_RELAY_DEBUG") == "" {
		return nil
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano // millisecond timestamps in the console
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	l := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, NoColor: true, TimeFormat: "15:04:05.000"}).
		Level(zerolog.DebugLevel).With().Timestamp().Logger()
	return &l
}

// openDB opens a PostgreSQL pool with the pgx driver and checks it.
func openDB(ctx context.Context, dsn string) (*sql.DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres unreachable: %w", err)
	}
	return db, nil
}
