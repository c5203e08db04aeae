// Quickstart: write an event in the same transaction as the business data (a relay
// forwards it to Kafka), then publish one directly through the resilient publisher.
//
//	relay dev                      # terminal 1: in-memory Kafka + relay, prints events
//	go run ./examples/quickstart   # terminal 2
//
// DATABASE_URL defaults to the local PostgreSQL database that relay dev uses.
// KAFKA_BROKERS (host:port,...) is where part 2 publishes; unset, it starts an
// in-process broker (KAFKA_BROKERS=127.0.0.1:9092 publishes to relay dev's).
package main

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
)

const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

func main() {
	log.SetFlags(0)
	// 0. Check the settings before touching anything.
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		dbURL = defaultDatabaseURL
	}
	pgcfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		log.Fatalf("DATABASE_URL: %v", err)
	}
	var brokers []string
	if s := os.Getenv("KAFKA_BROKERS"); s != "" {
		for _, b := range strings.Split(s, ",") {
			if _, _, err := net.SplitHostPort(strings.TrimSpace(b)); err != nil {
				log.Fatalf("KAFKA_BROKERS: %q is not host:port", b)
			}
			brokers = append(brokers, strings.TrimSpace(b))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	where := fmt.Sprintf("database %q on %s:%d as %s", pgcfg.Database, pgcfg.Host, pgcfg.Port, pgcfg.User)
	if err := db.PingContext(ctx); err != nil {
		log.Fatalf("%s: %v (start PostgreSQL or set DATABASE_URL)", where, err)
	}
	cfg := outbox.Config{Dialect: outbox.Postgres} // tables "outbox", "outbox_offsets", ...
	if err := outbox.InitializeSchema(ctx, db, cfg); err != nil {
		log.Fatal(err)
	}

	// 1. Transactional outbox: the event exists if and only if the order does.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback()
	// ... INSERT INTO orders ... with tx
	events, err := outbox.NewPublisher(tx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	event := message.NewMessage(watermill.NewUUID(), []byte(`{"order_id":42}`))
	outbox.SetKey(event, "customer-7") // same key, same partition, commit order
	if err := events.Publish("orders", event); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}
	log.Printf("1. event %s committed to the outbox of %s;\n   relay dev (or relay run) forwards it to topic orders", event.UUID, where)

	// 2. Direct publishing: retries, metrics and health around a batching producer.
	if brokers == nil {
		kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
		if err != nil {
			log.Fatal(err)
		}
		defer kafka.Close()
		brokers = kafka.ListenAddrs()
		log.Printf("2. KAFKA_BROKERS is not set: publishing to an in-process broker at %s", brokers[0])
	}
	zerolog.DurationFieldFormat = zerolog.DurationFormatString // "1.5ms", not 1.5
	logger := zerolog.New(os.Stderr).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	pub, err := adapter.NewKafka(adapter.KafkaConfig{Brokers: brokers}, adapter.Config{Logger: &logger})
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order_id":43}`))
	deadline, cancelPublish := context.WithTimeout(ctx, 10*time.Second)
	defer cancelPublish()
	msg.SetContext(deadline) // retries stop when it ends
	if err := pub.Publish("orders", msg); err != nil {
		log.Fatal(err) // a *adapter.PublishError with the class and attempts
	}
	m := pub.Metrics()
	log.Printf("2. published %s to %s: %d published, %d retries, given up %v, %v per call",
		msg.UUID, strings.Join(brokers, ","), m.MessagesPublished, m.RetriesTotal,
		m.GivenUpByClass, m.AvgPublishTime.Round(time.Microsecond))
}
