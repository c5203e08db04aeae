// Package outbox owns the SQL of a transactional outbox: applications write events
// into an outbox table in the same transaction as their business data, and a relay
// reads them in batches and forwards them to Kafka. Every dialect-specific statement
// lives here, so the relay contains none.
//
// # Writing
//
// NewPublisher returns a Watermill publisher (watermill-sql's, over the caller's
// *sql.Tx): the events exist if and only if the transaction commits. The Publish
// topic is the destination Kafka topic; all topics share one table, hence one order.
// SetKey sets the partition key. Metadata keys starting with ReservedPrefix are the
// outbox's own and never come back as user metadata.
//
// Publish also stores the W3C trace context of each message's context (its
// OpenTelemetry span) in reserved metadata; Event.Trace returns it and Event.Message
// turns it into the "traceparent" and "tracestate" entries, which become Kafka
// headers. Only the OpenTelemetry API is used: without a span in the context nothing
// is stored.
//
// # Reading
//
// Reader.Begin opens a Batch: a transaction holding the consumer group's lock and
// the next events after the group's acked position. Batch.Commit records progress
// (and any dead letters written with Batch.DeadLetter) atomically; nothing else
// does, so a forwarder that dies mid-batch leaves the events to be read again:
// delivery is at-least-once, and consumers de-duplicate by the event UUID. Batches
// of one consumer group never overlap, across processes: a second forwarder waits
// in Begin as a hot standby.
//
// Guarantees on both dialects: no committed event is ever skipped, however long the
// transaction that wrote it stayed open; an open transaction holds back nothing but
// its own events; events of one transaction are read in publish order; and an event
// written after another transaction committed is read after that transaction's
// events. So events of one key are read in commit order whenever the transactions
// writing that key do not overlap, e.g. they take a row lock on the key's aggregate
// or one process writes the key sequentially. Transactions that write the same key
// concurrently have no promised relative order.
//
// PostgreSQL reads snapshot deltas (docs/commit-order.md has the proof). Each
// consumer group keeps a snapshot whose transactions it has handled; a batch takes
// the rows of transactions that became visible since, in offset order, and Commit
// stores the newer snapshot with the position. A trigger stores the writer's real
// transaction id in every row, whatever the INSERT said. No write happens on the read
// path, and a batch takes a transaction id only when Commit writes the progress.
//
// MySQL/MariaDB cannot use watermill-sql's rule (an AUTO_INCREMENT offset cursor),
// because offsets are allocated at insert, not at commit: a transaction holding
// offset 5 that commits after offset 6 was read would be skipped by a cursor.
// watermill-sql v3.1.0 relies on SERIALIZABLE isolation, whose locking reads wait
// for such rows but also take next-key locks that block every writer while a batch
// is open. This package instead gives rows a commit sequence number: Begin first
// runs a short "sequencer" transaction that, under a lock on the one row of the
// sequence table, reads the committed rows that have no number yet (one consistent
// snapshot, in offset order; rows of still-open transactions are not in it, so they
// wait for a later call and are never skipped) and numbers them after the last
// number. Numbers thus become visible in increasing order without gaps, and readers
// follow them with a plain cursor and non-locking reads that never block writers. A
// late transaction's events are read after the events numbered before it committed.
//
// # Waking up
//
// On PostgreSQL, Publish also runs pg_notify in the transaction, and Listen returns
// a channel signalled at each commit. On MySQL Listen returns ErrNotSupported and
// the relay polls.
//
// # Dead letters and retention
//
// Dead letters are listed, replayed (back into the outbox as new events with the
// same UUID, after everything pending) and purged with List, Replay and Purge.
// Cleanup deletes forwarded events older than a retention age, in short batches,
// never pending ones. Payloads are never logged.
//
// # Tables
//
// InitializeSchema creates, for Config.Name "outbox": outbox (events), outbox_offsets
// (one row per consumer group), outbox_dead_letters and, on MySQL, outbox_sequence.
// It is idempotent and safe to run concurrently.
package outbox
