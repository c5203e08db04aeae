// Package kafkatest is the Kafka test kit shared by every test and benchmark of the
// project.
//
// New gives a test a Kafka cluster. When the KAFKA_BROKERS environment variable
// (comma-separated host:port list) is set, that real cluster is used; otherwise an
// in-process fake broker (franz-go's kfake, which speaks the real wire protocol on
// 127.0.0.1) is started and closed when the test ends. The kit then offers:
//
//   - topics: CreateTopic and NewTopic create topics that every broker reports in its
//     metadata before they return, so a sarama producer created afterwards sees them at
//     once; on a real cluster they are deleted when the test ends. SetMaxMessageBytes
//     sets a topic's max.message.bytes, which the fake enforces like Kafka
//     (MESSAGE_TOO_LARGE).
//   - faults of the fake broker: Fault, FailProduce and FailProduceWhere inject broker
//     error codes into answers, and are removed when the test ends.
//   - a network between client and brokers: with WithProxy every broker is reached
//     through an in-process TCP proxy (toxiproxy) that the brokers advertise in their
//     metadata, so clients cannot bypass it; Proxy adds latency, cuts and restores
//     connections.
//   - reading back: Consume and ConsumeAll read a topic from the start of every
//     partition with a client (franz-go) independent of the code under test.
//   - SaramaConfig, a sarama configuration suited to tests against these clusters.
//
// What needs the in-process broker (fault injection, the proxy, broker configs) skips
// the test with its reason when KAFKA_BROKERS is set; everything else runs against
// both. Every helper takes a testing.TB, fails the test on setup errors and cleans up
// with tb.Cleanup, so tests and benchmarks need no teardown code of their own.
package kafkatest
