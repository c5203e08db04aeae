// Package router forwards the events of a transactional outbox (package outbox) to
// Kafka through a publisher, normally the adapter decorator around the batching
// adapter.KafkaPublisher.
//
// Guarantees:
//
//   - At-least-once. Progress is recorded in the outbox only after the events it
//     covers were written to Kafka (or set aside as dead letters), in the same
//     transaction as those dead letters. A crash at any point re-sends at most the
//     batch in flight; it never loses an event.
//   - Commit order per key. Events are read in the outbox's commit-safe order
//     (see outbox.Reader.Begin). Within a batch, events that share a topic and a
//     partition key go out in separate, successive publish calls (waves), so a
//     failed and retried event can never overtake, or be overtaken by, another event
//     of its key; events of different keys share one pipelined call.
//   - No head-of-line blocking by poison events. An event that fails permanently
//     (too large, invalid) becomes a dead letter with its reason, and the events
//     behind it keep flowing.
//   - Nothing dead-lettered for an outage or a broken producer. Retriable failures
//     are retried with backoff for as long as they last; fatal ones (authorization,
//     SASL, unsupported version) halt forwarding, report unhealthy with the reason,
//     and are retried slowly until the cause is fixed.
//   - Hot standby. Several forwarders may run on one outbox and consumer group: one
//     holds the group's lock and forwards, the others stand by (StateStandby) and
//     take over when it stops or its connection breaks. Stats and ReadLockHolder
//     name the holder.
//
// Duplicates: an event is sent again when its batch was interrupted after it reached
// Kafka but before progress was recorded, or when the broker's answer was lost.
// Consumers de-duplicate by the Watermill message UUID, which Kafka carries in the
// "_watermill_message_uuid" header (watermill-kafka's subscriber restores it as
// msg.UUID).
//
// Tracing: every record carries the W3C trace context that the event's writer had
// (outbox.Event.Trace) as the "traceparent" and "tracestate" headers, so that a
// consumer that extracts them continues the writer's trace. The forwarder's own
// OpenTelemetry spans, created by Config.TracerProvider, are one span per batch, the
// root of its own trace and linked to each event's producer span rather than parent
// of a thousand, with the decorator's publish spans as its children. Events whose
// writer had no span carry the context of the decorator's publish span instead (see
// adapter.Publisher.Publish).
package router
