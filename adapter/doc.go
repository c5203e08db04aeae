// Package adapter makes publishing through any Watermill message.Publisher safe: a
// decorator that classifies failures, retries the retriable ones with jittered
// exponential backoff inside a time budget, counts what happens (a Metrics snapshot
// and, optionally, Prometheus), reports health, logs through zerolog and closes
// gracefully.
//
// The decorator gives at-least-once delivery: a message whose first attempt reached
// the broker but whose answer was lost is sent again, so consumers de-duplicate by the
// Watermill message UUID (carried as a Kafka header by watermill-kafka's marshalers).
//
// The package also offers KafkaPublisher, a Kafka publisher wire compatible with
// watermill-kafka that writes a whole batch in one pipelined call and reports the
// outcome of every message, so the decorator resends only what failed.
package adapter
