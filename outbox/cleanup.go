package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Defaults of Cleanup.
const (
	DefaultRetention        = 24 * time.Hour
	DefaultCleanupBatchSize = 1000
)

// Cleanup deletes forwarded events older than olderThan (by the database clock) and
// returns how many it deleted. An event counts as forwarded when it is at or before
// the acked position of every consumer group in the offsets table; with no consumer
// group recorded, nothing is. Pending events are never deleted, whatever their age.
//
// It deletes batchSize rows per statement, each statement its own short
// transaction, so the outbox is never locked for long; it stops when a statement
// deletes fewer rows or ctx ends. olderThan defaults to DefaultRetention (24h) when
// zero, batchSize to DefaultCleanupBatchSize (1000); negative values are errors.
// Dead letters are not touched: see Purge.
func Cleanup(ctx context.Context, db *sql.DB, cfg Config, olderThan time.Duration, batchSize int) (deleted int, err error) {
	cfg, err = cfg.normalize()
	if err != nil {
		return 0, err
	}
	if olderThan < 0 {
		return 0, fmt.Errorf("outbox: Cleanup: olderThan must not be negative, got %v", olderThan)
	}
	if olderThan == 0 {
		olderThan = DefaultRetention
	}
	if batchSize < 0 {
		return 0, fmt.Errorf("outbox: Cleanup: batchSize must not be negative, got %d", batchSize)
	}
	if batchSize == 0 {
		batchSize = DefaultCleanupBatchSize
	}
	horizon, ok, err := forwardedHorizon(ctx, db, cfg)
	if err != nil || !ok {
		return 0, err
	}
	var query string
	var args []any
	if cfg.Dialect == MySQL {
		query = "DELETE FROM " + cfg.eventsTable() + " WHERE `seq` <= ? AND created_at < CURRENT_TIMESTAMP(6) - INTERVAL ? MICROSECOND" +
			" ORDER BY `seq` LIMIT ?"
		args = []any{horizon.seq, olderThan.Microseconds(), batchSize}
	} else {
		query = `DELETE FROM ` + cfg.eventsTable() + ` WHERE (transaction_id, "offset") IN (
	SELECT transaction_id, "offset" FROM ` + cfg.eventsTable() + `
	WHERE (transaction_id, "offset") <= ($1::text::xid8, $2) AND created_at < now() - $3 * interval '1 microsecond'
	ORDER BY transaction_id, "offset" LIMIT $4)`
		args = []any{strconv.FormatInt(horizon.txID, 10), horizon.offset, olderThan.Microseconds(), batchSize}
	}
	for {
		if err := ctx.Err(); err != nil {
			return deleted, fmt.Errorf("outbox: Cleanup: %w", err)
		}
		res, err := db.ExecContext(ctx, query, args...)
		if err != nil {
			return deleted, fmt.Errorf("outbox: Cleanup: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return deleted, fmt.Errorf("outbox: Cleanup: %w", err)
		}
		deleted += int(n)
		if n < int64(batchSize) {
			return deleted, nil
		}
	}
}

// forwardedHorizon returns the lowest acked position over all consumer groups; ok is
// false when there is no group.
func forwardedHorizon(ctx context.Context, db *sql.DB, cfg Config) (Position, bool, error) {
	var p Position
	var err error
	if cfg.Dialect == MySQL {
		err = db.QueryRowContext(ctx, "SELECT seq_acked FROM "+cfg.offsetsTable()+" ORDER BY seq_acked LIMIT 1").Scan(&p.seq)
	} else {
		err = db.QueryRowContext(ctx, `SELECT last_processed_transaction_id, COALESCE(offset_acked, 0) FROM `+
			cfg.offsetsTable()+` ORDER BY 1, 2 LIMIT 1`).Scan(&p.txID, &p.offset)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return Position{}, false, nil
	}
	if err != nil {
		return Position{}, false, fmt.Errorf("outbox: Cleanup: read acked positions: %w", err)
	}
	return p, !p.IsZero(), nil
}
