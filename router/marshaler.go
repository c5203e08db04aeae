package router

import (
	"strings"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
)

// Marshaler returns the Kafka marshaler for outbox events: wire compatible with
// watermill-kafka's DefaultMarshaler (the UUID in the "_watermill_message_uuid"
// header, one header per user metadata entry, the payload as the value), with the
// event's partition key (outbox.SetKey) as the Kafka key. The outbox's own metadata
// (outbox.ReservedPrefix) is not sent. Unmarshal is watermill-kafka's.
func Marshaler() kafka.MarshalerUnmarshaler { return marshaler{} }

type marshaler struct{ kafka.DefaultMarshaler }

// Marshal turns msg into a Kafka record for topic.
func (marshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	headers := make([]sarama.RecordHeader, 1, len(msg.Metadata)+1)
	headers[0] = sarama.RecordHeader{Key: []byte(kafka.UUIDHeaderKey), Value: []byte(msg.UUID)}
	for k, v := range msg.Metadata {
		if strings.HasPrefix(k, outbox.ReservedPrefix) || k == kafka.UUIDHeaderKey {
			continue
		}
		headers = append(headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	}
	pm := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(msg.Payload), Headers: headers}
	if key := outbox.Key(msg); key != "" {
		pm.Key = sarama.StringEncoder(key)
	}
	return pm, nil
}

// MarshalRecord is Marshal producing a franz-go record directly, for
// adapter.KafkaPublisher (adapter.KafkaRecordMarshaler).
func (marshaler) MarshalRecord(topic string, msg *message.Message) (*kgo.Record, error) {
	headers := make([]kgo.RecordHeader, 1, len(msg.Metadata)+1)
	headers[0] = kgo.RecordHeader{Key: kafka.UUIDHeaderKey, Value: []byte(msg.UUID)}
	for k, v := range msg.Metadata {
		if strings.HasPrefix(k, outbox.ReservedPrefix) || k == kafka.UUIDHeaderKey {
			continue
		}
		headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	r := &kgo.Record{Topic: topic, Value: msg.Payload, Headers: headers}
	if key := outbox.Key(msg); key != "" {
		r.Key = []byte(key)
	}
	return r, nil
}

// NewKafkaPublisher returns the publisher a Forwarder needs: the adapter decorator
// (cfg) around the batching adapter.KafkaPublisher (kcfg) with Marshaler(). A
// Marshaler set in kcfg is replaced.
func NewKafkaPublisher(kcfg adapter.KafkaConfig, cfg adapter.Config) (*adapter.Publisher, error) {
	kcfg.Marshaler = Marshaler()
	return adapter.NewKafka(kcfg, cfg)
}
