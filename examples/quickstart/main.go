// Quickstart: write an event in the same transaction as the business data, then
// publish one directly through the resilient Kafka publisher.
package main

import (
	"context"
	"database/sql"
	"log"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/rs/zerolog"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
)

func main() {
	ctx := context.Background()
	db, err := sql.Open("pgx", os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
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
	// `relay run` (or router.NewForwarder) now forwards it to Kafka.

	// 2. Direct publishing: retries, metrics and health around a batching producer.
	logger := zerolog.New(os.Stderr).With().Timestamp().Logger()
	pub, err := adapter.NewKafka(
		adapter.KafkaConfig{Brokers: []string{os.Getenv("KAFKA_BROKERS")}},
		adapter.Config{Logger: &logger},
	)
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order_id":43}`))
	deadline, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msg.SetContext(deadline) // retries stop when it ends
	if err := pub.Publish("orders", msg); err != nil {
		log.Fatal(err) // a *adapter.PublishError with the class and attempts
	}
	log.Printf("published: %+v", pub.Metrics())
}
