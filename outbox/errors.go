package outbox

import "errors"

var (
	// ErrInvalidConfig is wrapped by every Config validation error; the message names
	// the field.
	ErrInvalidConfig = errors.New("outbox: invalid config")

	// ErrInvalidEvent is wrapped by Publish when a message cannot be stored: nil, an
	// empty or too long UUID, an invalid topic, a reserved metadata key, or larger
	// than Config.MaxEventBytes. Nothing of the Publish call is written then.
	ErrInvalidEvent = errors.New("outbox: invalid event")

	// ErrPublisherClosed is returned by Publish after Close.
	ErrPublisherClosed = errors.New("outbox: publisher closed")

	// ErrNotSupported is returned by Listen on MySQL, which has no LISTEN/NOTIFY:
	// readers poll there.
	ErrNotSupported = errors.New("outbox: not supported by this dialect")

	// ErrBatchDone is returned by the methods of a Batch after Commit or Rollback.
	ErrBatchDone = errors.New("outbox: batch already committed or rolled back")

	// ErrPositionNotInBatch is returned by Batch.Commit when upTo is neither the zero
	// Position nor the position of one of the batch's events, and by Batch.DeadLetter
	// for an event that the batch did not read.
	ErrPositionNotInBatch = errors.New("outbox: position is not in this batch")

	// ErrInvalidFilter is wrapped by List, Replay and Purge when the Filter is
	// invalid; the message names the field.
	ErrInvalidFilter = errors.New("outbox: invalid filter")
)

// ErrMalformedEvent is wrapped by Event.Err when a row of the events table could not
// be turned into an event: its metadata is NULL, not a JSON object, holds a value
// that is not a string, or names no valid Kafka topic. The message names the row
// (uuid and offset) and what is wrong. Such an event is set aside with
// Batch.DeadLetter, never published.
var ErrMalformedEvent = errors.New("outbox: malformed event row")
