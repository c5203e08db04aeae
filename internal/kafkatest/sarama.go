package kafkatest

import (
	"time"

	"github.com/IBM/sarama"
)

// SaramaConfig returns a sarama configuration for tests against the clusters of this
// package, a new one per call:
//
//   - Version 2.8, sarama's default and fully covered protocol, which the in-process
//     broker and Kafka up to 4.x accept;
//   - Producer.Return.Successes set, as a SyncProducer requires; RequiredAcks
//     WaitForAll; sarama's own 3 retries, 10 ms apart rather than 100 ms;
//   - Metadata retries 10 ms apart rather than 250 ms, and no topic auto-creation
//     through metadata requests, so a test that forgot to create its topic fails;
//   - dial timeout 2 s and read/write timeouts 10 s rather than 30 s, so an
//     unreachable broker fails a test quickly while 10 s of proxy latency still pass;
//   - consumers start from the oldest offset.
func SaramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "kafkatest"
	cfg.Version = sarama.V2_8_0_0

	cfg.Net.DialTimeout = 2 * time.Second
	cfg.Net.ReadTimeout = 10 * time.Second
	cfg.Net.WriteTimeout = 10 * time.Second

	cfg.Metadata.Retry.Max = 3
	cfg.Metadata.Retry.Backoff = 10 * time.Millisecond
	cfg.Metadata.AllowAutoTopicCreation = false

	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Retry.Max = 3
	cfg.Producer.Retry.Backoff = 10 * time.Millisecond

	cfg.Admin.Timeout = 10 * time.Second
	cfg.Admin.Retry.Backoff = 10 * time.Millisecond

	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Retry.Backoff = 100 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
	return cfg
}
