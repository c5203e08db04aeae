package adapter

// Class says what a publish failure means for the next attempt.
type Class uint8

const (
	// Retriable failures come from a cluster in transition (leader election, broker
	// restart, full buffers, network faults): the same message can succeed later, so it
	// is retried with backoff inside the time budget.
	Retriable Class = iota
	// Permanent failures belong to one message that can never succeed as it is (too
	// large, invalid record or topic name, marshalling failed). Retrying is useless; an
	// outbox relay sets such a message aside as a dead letter.
	Permanent
	// Fatal failures break the producer for every message (authorization, SASL,
	// unsupported version, fenced producer, closed publisher). They are not retried and
	// they turn the publisher unhealthy until a publish succeeds again.
	Fatal
	// Canceled means the caller's context ended before the message was written.
	Canceled

	numClasses = 4
)

// String returns the lower-case name of the class, as used in logs and metric labels.
func (c Class) String() string {
	switch c {
	case Retriable:
		return "retriable"
	case Permanent:
		return "permanent"
	case Fatal:
		return "fatal"
	case Canceled:
		return "canceled"
	default:
		return "unknown"
	}
}
