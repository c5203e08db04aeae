// Package benchrelay is the relay benchmark behind `go run ./cmd/bench-relay`: it
// compares, on one PostgreSQL and one Kafka broker, the stock Watermill outbox path
// (watermill-sql subscriber -> components/forwarder -> watermill-kafka publisher)
// with this project's (outbox -> router.Forwarder -> router.NewKafkaPublisher).
//
// Kafka is an in-process kfake broker behind an in-process toxiproxy that adds a
// chosen latency in each direction on the relays' produce path, or the real cluster
// of KAFKA_BROKERS (then without latency injection). The benchmark's own consumer
// (franz-go) reads straight from the broker.
//
// Three tests, each with a fresh outbox, SQL topic and Kafka topic named after the
// run, all dropped at the end:
//
//   - drain: a backlog written with each path's own writer, in transactions, before
//     the timer starts; timed from the relay's start until the consumer has read
//     every event;
//   - trickle: single-event transactions at a steady rate while the relay runs; the
//     commit-to-consumer latency of each event (one process, one clock);
//   - memory: our forwarder alone in a child process (ChildMain) drains a large and a
//     small backlog of 1 KiB events; its peak RSS is VmHWM of /proc/self/status.
//
// Every test verifies at the consumer that each committed event arrived, counts
// duplicates, and checks per-key commit order; problems are reported, never hidden.
package benchrelay
