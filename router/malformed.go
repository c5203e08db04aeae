package router

import (
	"context"
	"errors"
	"fmt"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
)

// publishWellFormed publishes a batch whose events may include malformed ones (rows
// that could not be decoded, see outbox.ErrMalformedEvent). A malformed event is
// never sent: it is stored as a dead letter, in its place in the reading order, and
// marked in the result as a permanent failure already stored, so it never stops the
// events around it. The events between malformed ones are published as one call
// each; a batch without malformed events is one call. When a segment's publish
// fails, or a malformed event cannot be stored, nothing after it is sent: the batch
// records the progress before it and fails.
func (f *Forwarder) publishWellFormed(ctx context.Context, batch *outbox.Batch, events []outbox.Event) publishResult {
	res := publishResult{
		published: make([]bool, len(events)),
		permanent: make([]*failure, len(events)),
	}
	for start := 0; start < len(events); {
		end := start
		for end < len(events) && events[end].Err == nil {
			end++
		}
		if end > start {
			sub := f.publish(ctx, events[start:end])
			copy(res.published[start:end], sub.published)
			copy(res.permanent[start:end], sub.permanent)
			res.calls += sub.calls
			if sub.err != nil {
				res.class, res.err = sub.class, sub.err
				return res
			}
		}
		if end == len(events) {
			break
		}
		ev := events[end]
		if err := batch.DeadLetter(ctx, ev, ev.Err, "malformed", 0); err != nil {
			res.class, res.err = adapter.Retriable, fmt.Errorf("store dead letter of malformed event: %w", err)
			return res
		}
		f.log.Error().Str("event_uuid", ev.UUID).Int64("offset", ev.Position.Offset()).Err(ev.Err).
			Msg("malformed outbox row set aside as a dead letter")
		res.permanent[end] = &failure{FailedMessage: adapter.FailedMessage{
			UUID: ev.UUID, Class: adapter.Permanent, Err: ev.Err,
		}, stored: true}
		start = end + 1
	}
	return res
}

// keepProgress handles a dead letter that could not be stored at event i: the
// events before i, published and acknowledged by Kafka or stored as dead letters
// (dead of them), are committed as progress, so they are not sent again because of
// event i. It returns cause, joined with the commit's error if that failed too.
func (f *Forwarder) keepProgress(ctx context.Context, batch *outbox.Batch, events []outbox.Event, res publishResult, i, dead int, cause error) error {
	if i == 0 {
		return cause
	}
	if err := batch.Commit(ctx, events[i-1].Position); err != nil {
		return errors.Join(cause, fmt.Errorf("record progress before event %s: %w", events[i].UUID, err))
	}
	forwarded := 0
	for _, ok := range res.published[:i] {
		if ok {
			forwarded++
		}
	}
	f.forwarded.Add(int64(forwarded))
	f.deadLetters.Add(int64(dead))
	if f.prom != nil {
		f.prom.batch(i, forwarded, dead)
	}
	f.log.Warn().Int("acked", i).Str("event_uuid", events[i].UUID).Err(cause).
		Msg("dead letter not stored; progress before it recorded")
	return cause
}
