package adapter

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// ResultPublisher is implemented by publishers that report the outcome of every
// message of a Publish call, such as KafkaPublisher. The decorator uses it to resend
// only the messages that failed, so a message already written is not written again.
type ResultPublisher interface {
	message.Publisher

	// PublishResults publishes msgs to topic and returns one error per message, in the
	// order of msgs: nil for a message that was written, its failure otherwise. A nil
	// slice means every message was written.
	PublishResults(topic string, msgs ...*message.Message) []error
}

// Pinger is implemented by publishers that can check that their broker is reachable.
// The decorator's HealthCheck includes it.
type Pinger interface {
	Ping(ctx context.Context) error
}
