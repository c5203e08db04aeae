package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// emptySnapshot is the pg_snapshot in which no transaction is visible
// (FirstNormalTransactionId is 3): a new consumer group has handled nothing.
const emptySnapshot = "3:3:"

// pgDelta is the state of a PostgreSQL consumer group: the snapshot delta being
// read. See the package documentation ("Reading order") and docs/commit-order.md.
//
// done is a snapshot whose visible transactions the group has handled completely.
// While a delta is open, cur is a later snapshot: the delta is the set of rows of
// transactions visible in cur but not in done, read in offset order; pos is the
// offset of the last row of it handled, hi the highest offset in it. Between deltas
// cur is "".
type pgDelta struct {
	done string
	cur  string
	seq  int64 // number of the current (or last) delta; Position.delta
	pos  int64
	hi   int64
	last bool // this batch reads the delta to its end
}

// readPostgres takes the group's lock and reads the next page of the group's
// snapshot delta, opening a new delta when none is open.
//
// The group is serialised by an advisory lock only, not by SELECT ... FOR UPDATE on
// the offsets row: a row lock would give the batch a transaction id while it
// publishes to Kafka. Without it the batch takes a transaction id only when Commit
// writes the progress.
//
// READ COMMITTED: a standby that waited for the lock must see the state its
// predecessor committed meanwhile, and each statement takes a fresh snapshot.
func (r *Reader) readPostgres(ctx context.Context, tx *sql.Tx, limit int) ([]Event, *pgDelta, error) {
	ms := max(r.cfg.LockPollInterval.Milliseconds(), 1)
	if _, err := tx.ExecContext(ctx, `SELECT set_config('lock_timeout', $1, true)`, fmt.Sprintf("%dms", ms)); err != nil {
		return nil, nil, err
	}
	// Standbys queue on an advisory lock, which takes no transaction id while waiting.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("reader", r.cfg.Name, r.cfg.ConsumerGroup)); err != nil {
		return nil, nil, err
	}
	var (
		d   pgDelta
		cur sql.NullString
	)
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(snapshot_done::text, $2), snapshot_cur::text, delta_seq, delta_pos, delta_hi FROM `+
		r.cfg.offsetsTable()+` WHERE consumer_group = $1`, r.cfg.ConsumerGroup, emptySnapshot).
		Scan(&d.done, &cur, &d.seq, &d.pos, &d.hi)
	if errors.Is(err, sql.ErrNoRows) {
		r.groupReady.Store(false)
		return nil, nil, fmt.Errorf("offsets row of consumer group %q is missing", r.cfg.ConsumerGroup)
	}
	if err != nil {
		return nil, nil, err
	}
	d.cur = cur.String
	for range 2 {
		if d.cur == "" {
			found, err := r.openDelta(ctx, tx, &d)
			if err != nil || !found {
				return nil, nil, err
			}
		}
		events, err := r.readDelta(ctx, tx, &d, limit)
		if err != nil {
			return nil, nil, err
		}
		if len(events) > 0 {
			return events, &d, nil
		}
		// An open delta with nothing left after pos: its last rows were deleted
		// (never by Cleanup, which keeps unhandled rows). It is over.
		d.done, d.cur, d.pos, d.hi = d.cur, "", 0, 0
	}
	return nil, nil, nil
}

// openDelta takes a new snapshot and, when transactions not visible in d.done have
// become visible in it with rows in the outbox, opens the delta of those rows. One
// statement, so the snapshot it returns is the one its rows were read with.
//
// A transaction is not visible in done when its id is at or above done's xmax or in
// done's list of transactions in progress; the first is an index range of the
// primary key, the second index lookups.
func (r *Reader) openDelta(ctx context.Context, tx *sql.Tx, d *pgDelta) (bool, error) {
	var (
		snap   string
		lo, hi sql.NullInt64
	)
	err := tx.QueryRowContext(ctx, `SELECT pg_current_snapshot()::text, min(e."offset"), max(e."offset") FROM (
	SELECT "offset", transaction_id FROM `+r.cfg.eventsTable()+` WHERE transaction_id >= pg_snapshot_xmax($1::pg_snapshot)
	UNION ALL
	SELECT "offset", transaction_id FROM `+r.cfg.eventsTable()+` WHERE transaction_id IN (SELECT pg_snapshot_xip($1::pg_snapshot))
) AS e WHERE pg_visible_in_snapshot(e.transaction_id, pg_current_snapshot())`, d.done).Scan(&snap, &lo, &hi)
	if err != nil {
		return false, fmt.Errorf("open snapshot delta: %w", err)
	}
	if !hi.Valid {
		return false, nil
	}
	d.cur, d.seq, d.pos, d.hi = snap, d.seq+1, lo.Int64-1, hi.Int64
	return true, nil
}

// readDelta reads the next at most limit rows of the open delta after d.pos.
func (r *Reader) readDelta(ctx context.Context, tx *sql.Tx, d *pgDelta, limit int) ([]Event, error) {
	rows, err := tx.QueryContext(ctx, `SELECT "offset", uuid, payload, metadata, created_at FROM `+r.cfg.eventsTable()+`
WHERE "offset" > $1 AND "offset" <= $2
  AND pg_visible_in_snapshot(transaction_id, $3::pg_snapshot)
  AND NOT pg_visible_in_snapshot(transaction_id, $4::pg_snapshot)
ORDER BY "offset" LIMIT $5`, d.pos, d.hi, d.cur, d.done, limit)
	if err != nil {
		return nil, fmt.Errorf("read snapshot delta %d: %w", d.seq, err)
	}
	defer rows.Close()
	var events []Event
	for rows.Next() {
		var row rawRow
		if err := row.scan(rows); err != nil {
			return nil, err
		}
		events = append(events, row.event(Position{delta: d.seq, offset: row.offset}))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	d.last = len(events) < limit || (len(events) > 0 && events[len(events)-1].Position.offset == d.hi)
	return events, nil
}

// commitPostgres records upTo, an event of the batch's delta, as handled.
func (b *Batch) commitPostgres(ctx context.Context, upTo Position) error {
	d := *b.pg
	if upTo.offset == d.hi || (d.last && upTo == b.events[len(b.events)-1].Position) {
		// The delta is complete: everything visible in cur is handled.
		d.done, d.cur, d.pos, d.hi = d.cur, "", 0, 0
	} else {
		d.pos = upTo.offset
	}
	cfg := b.r.cfg
	_, err := b.tx.ExecContext(ctx, `UPDATE `+cfg.offsetsTable()+` SET snapshot_done = $1::pg_snapshot,
	snapshot_cur = NULLIF($2, '')::pg_snapshot, delta_seq = $3, delta_pos = $4, delta_hi = $5, updated_at = now()
WHERE consumer_group = $6`, d.done, d.cur, d.seq, d.pos, d.hi, cfg.ConsumerGroup)
	return err
}
