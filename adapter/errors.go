package adapter

import (
	"errors"
	"fmt"
)

// ErrNilMessage is the failure of a nil *message.Message passed to Publish. It is
// classified Permanent; the other messages of the call are still published.
var ErrNilMessage = errors.New("adapter: nil message")

// PublishError is the error Publish returns when a message could not be published.
// It wraps the most severe failure, so errors.Is and errors.As reach the cause (for
// example errors.Is(err, kerr.MessageTooLarge), or sarama.ErrMessageSizeTooLarge,
// which KafkaPublisher's broker errors also match).
type PublishError struct {
	// Topic is the topic of the Publish call.
	Topic string
	// Attempts is how many times the failed messages were tried, retries included.
	Attempts int
	// Class is the class of Err: the most severe among the failed messages, ordered
	// Fatal, Permanent, Canceled, Retriable.
	Class Class
	// Err is the failure of the most severe failed message.
	Err error
	// Failed lists every message that was not published, with its own failure. A
	// message of the call that is not listed was published. When the inner publisher
	// does not report per-message results, a failed call lists all its messages,
	// although some of them may have been written before the failure.
	Failed []FailedMessage
}

// FailedMessage is one message that Publish could not publish.
type FailedMessage struct {
	// Index is the position of the message in the Publish call.
	Index int
	// UUID is the Watermill UUID of the message ("" for a nil message).
	UUID string
	// Class is the class of Err.
	Class Class
	// Err is the last failure of the message.
	Err error
}

// Error reports the topic, how many messages failed, the attempts, the class and the
// cause. It never contains a payload.
func (e *PublishError) Error() string {
	if len(e.Failed) > 1 {
		return fmt.Sprintf("adapter: publish to %q: %d messages failed after %d attempt(s) (%s): %v",
			e.Topic, len(e.Failed), e.Attempts, e.Class, e.Err)
	}
	return fmt.Sprintf("adapter: publish to %q failed after %d attempt(s) (%s): %v",
		e.Topic, e.Attempts, e.Class, e.Err)
}

// Unwrap returns Err.
func (e *PublishError) Unwrap() error { return e.Err }

// severity orders classes for picking the most severe failure of a batch.
func severity(c Class) int {
	switch c {
	case Fatal:
		return 3
	case Permanent:
		return 2
	case Canceled:
		return 1
	default:
		return 0
	}
}
