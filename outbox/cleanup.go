package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	var query string
	var args []any
	if cfg.Dialect == MySQL {
		var horizon int64
		err := db.QueryRowContext(ctx, "SELECT seq_acked FROM "+cfg.offsetsTable()+" ORDER BY seq_acked LIMIT 1").Scan(&horizon)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && horizon == 0) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("outbox: Cleanup: read acked positions: %w", err)
		}
		query = "DELETE FROM " + cfg.eventsTable() + " WHERE `seq` <= ? AND created_at < CURRENT_TIMESTAMP(6) - INTERVAL ? MICROSECOND" +
			" ORDER BY `seq` LIMIT ?"
		args = []any{horizon, olderThan.Microseconds(), batchSize}
	} else {
		// A row is handled by a group when its transaction is visible in the group's
		// done snapshot, or in the open delta at or before the group's position.
		// Only transactions below the highest xmax (of cur, else done) can be; the bound keeps the
		// statement on the primary key.
		off := cfg.offsetsTable()
		query = `DELETE FROM ` + cfg.eventsTable() + ` WHERE "offset" IN (
	SELECT e."offset" FROM ` + cfg.eventsTable() + ` AS e
	WHERE e.transaction_id < (SELECT max(pg_snapshot_xmax(COALESCE(snapshot_cur, snapshot_done))) FROM ` + off + `)
	  AND e.created_at < now() - $1 * interval '1 microsecond'
	  AND NOT EXISTS (SELECT 1 FROM ` + off + ` AS g WHERE NOT (
		COALESCE(pg_visible_in_snapshot(e.transaction_id, g.snapshot_done), false)
		OR (g.snapshot_cur IS NOT NULL AND e."offset" <= g.delta_pos AND pg_visible_in_snapshot(e.transaction_id, g.snapshot_cur))))
	ORDER BY e.transaction_id LIMIT $2)`
		args = []any{olderThan.Microseconds(), batchSize}
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
