package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
)

// InitializeSchema creates the outbox tables and indexes if they do not exist: the
// events table, the offsets table, the dead letters table and, on MySQL, the
// sequence table. It is idempotent and safe to run from several processes at once:
// PostgreSQL serialises the DDL with pg_advisory_xact_lock inside one transaction,
// MySQL with GET_LOCK/RELEASE_LOCK on one connection (MySQL DDL commits implicitly,
// so a transaction would not help there). Run it at deploy or start-up, never inside
// a business transaction.
func InitializeSchema(ctx context.Context, db *sql.DB, cfg Config) error {
	cfg, err := cfg.normalize()
	if err != nil {
		return err
	}
	if cfg.Dialect == MySQL {
		err = initializeMySQL(ctx, db, cfg)
	} else {
		err = initializePostgres(ctx, db, cfg)
	}
	if err != nil {
		return fmt.Errorf("outbox: initialize schema %q: %w", cfg.Name, err)
	}
	return nil
}

func initializePostgres(ctx context.Context, db *sql.DB, cfg Config) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err = tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("schema", cfg.Name)); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	for _, q := range schemaStatements(cfg) {
		if _, err = tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", firstLine(q), err)
		}
	}
	return tx.Commit()
}

func initializeMySQL(ctx context.Context, db *sql.DB, cfg Config) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	lock := "millrace.outbox." + cfg.Name // at most 48 characters (limit 64)
	for {
		// Wait at most one second per attempt so that ctx is checked between attempts
		// even if the driver cannot interrupt GET_LOCK.
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, 1)`, lock).Scan(&got); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if got.Valid && got.Int64 == 1 {
			break
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, rerr := conn.ExecContext(rctx, `SELECT RELEASE_LOCK(?)`, lock); rerr != nil {
			// The lock is bound to this session: discard the connection rather than
			// return it to the pool still holding the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			err = errors.Join(err, fmt.Errorf("unlock: %w", rerr))
		}
	}()
	for _, q := range schemaStatements(cfg) {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", firstLine(q), err)
		}
	}
	return nil
}

// schemaStatements returns the DDL of the outbox, in order.
func schemaStatements(cfg Config) []string {
	if cfg.Dialect == MySQL {
		return mysqlSchema(cfg)
	}
	return postgresSchema(cfg)
}

// postgresSchema: the events table is watermill-sql's DefaultPostgreSQLSchema table
// (same columns, same primary key, same insert query) with a BYTEA payload and a
// TIMESTAMPTZ created_at, plus a unique index on "offset" (the reading order within
// a snapshot delta) and a trigger that sets transaction_id to the writing
// transaction's id whatever the INSERT said, so a row written by hand or by another
// program is read like any other. The offsets table holds each consumer group's
// snapshot delta state; the columns of watermill-sql's offsets table are kept for
// upgrades (a legacy position is turned into a snapshot once, see below).
func postgresSchema(cfg Config) []string {
	dl := cfg.deadLettersTable()
	fn := cfg.quote(cfg.Name + "_set_transaction_id")
	trigger := cfg.Name + "_set_transaction_id"
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + cfg.eventsTable() + ` (
	"offset" BIGSERIAL,
	"uuid" VARCHAR(36) NOT NULL,
	"created_at" TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
	"payload" BYTEA DEFAULT NULL,
	"metadata" JSON DEFAULT NULL,
	"transaction_id" xid8 NOT NULL,
	PRIMARY KEY ("transaction_id", "offset")
)`,
		// A hand-written INSERT need not name transaction_id (the trigger sets it).
		`ALTER TABLE ` + cfg.eventsTable() + ` ALTER COLUMN transaction_id SET DEFAULT pg_current_xact_id()`,
		`CREATE UNIQUE INDEX IF NOT EXISTS ` + cfg.quote(cfg.Name+"_offset_idx") + ` ON ` + cfg.eventsTable() + ` ("offset")`,
		`CREATE OR REPLACE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	NEW.transaction_id := pg_current_xact_id();
	RETURN NEW;
END
$fn$`,
		// CREATE OR REPLACE TRIGGER needs PostgreSQL 14; 13 is supported.
		`DO $do$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '` + cfg.eventsTable() + `'::regclass AND tgname = '` + trigger + `') THEN
		CREATE TRIGGER ` + cfg.quote(trigger) + ` BEFORE INSERT ON ` + cfg.eventsTable() + `
			FOR EACH ROW EXECUTE FUNCTION ` + fn + `();
	END IF;
END $do$`,
		`CREATE TABLE IF NOT EXISTS ` + cfg.offsetsTable() + ` (
	consumer_group VARCHAR(255) NOT NULL,
	snapshot_done pg_snapshot,
	snapshot_cur pg_snapshot,
	delta_seq BIGINT NOT NULL DEFAULT 0,
	delta_pos BIGINT NOT NULL DEFAULT 0,
	delta_hi BIGINT NOT NULL DEFAULT 0,
	offset_acked BIGINT,
	last_processed_transaction_id xid8,
	updated_at TIMESTAMPTZ DEFAULT NULL,
	PRIMARY KEY (consumer_group)
)`,
		// Upgrade from the watermill-sql position (transaction id X, offset O),
		// which had read every row of the transactions below X and those of X up
		// to O: the snapshot "X:X:" sees exactly the former, "X+1:X+1:" also X.
		`ALTER TABLE ` + cfg.offsetsTable() + `
	ADD COLUMN IF NOT EXISTS snapshot_done pg_snapshot,
	ADD COLUMN IF NOT EXISTS snapshot_cur pg_snapshot,
	ADD COLUMN IF NOT EXISTS delta_seq BIGINT NOT NULL DEFAULT 0,
	ADD COLUMN IF NOT EXISTS delta_pos BIGINT NOT NULL DEFAULT 0,
	ADD COLUMN IF NOT EXISTS delta_hi BIGINT NOT NULL DEFAULT 0,
	ALTER COLUMN last_processed_transaction_id DROP NOT NULL`,
		`UPDATE ` + cfg.offsetsTable() + ` AS o SET snapshot_done = (x || ':' || x || ':')::pg_snapshot
FROM (SELECT g.consumer_group, GREATEST(g.last_processed_transaction_id::text::numeric + CASE WHEN EXISTS (
		SELECT 1 FROM ` + cfg.eventsTable() + ` AS e WHERE e.transaction_id = g.last_processed_transaction_id
		AND e."offset" > COALESCE(g.offset_acked, 0)) THEN 0 ELSE 1 END, 3)::text AS x
	FROM ` + cfg.offsetsTable() + ` AS g WHERE g.snapshot_done IS NULL AND g.last_processed_transaction_id IS NOT NULL) AS legacy
WHERE o.consumer_group = legacy.consumer_group`,
		`CREATE TABLE IF NOT EXISTS ` + dl + ` (
	id BIGSERIAL PRIMARY KEY,
	uuid VARCHAR(36) NOT NULL,
	topic VARCHAR(249) NOT NULL,
	partition_key TEXT NOT NULL DEFAULT '',
	payload BYTEA DEFAULT NULL,
	metadata JSON DEFAULT NULL,
	reason TEXT NOT NULL,
	class VARCHAR(64) NOT NULL,
	attempts INTEGER NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	failed_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
)`,
		`CREATE INDEX IF NOT EXISTS ` + cfg.quote(cfg.Name+"_dead_letters_topic_idx") + ` ON ` + dl + ` (topic, id)`,
		`CREATE INDEX IF NOT EXISTS ` + cfg.quote(cfg.Name+"_dead_letters_failed_idx") + ` ON ` + dl + ` (failed_at)`,
	}
}

// mysqlSchema: the events table is watermill-sql's DefaultMySQLSchema table (same
// columns and insert query) with a LONGBLOB payload, microsecond created_at and the
// seq column that orders reading (see the package documentation).
func mysqlSchema(cfg Config) []string {
	return []string{
		"CREATE TABLE IF NOT EXISTS " + cfg.eventsTable() + ` (
	` + "`offset`" + ` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
	` + "`uuid`" + ` VARCHAR(36) NOT NULL,
	` + "`created_at`" + ` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	` + "`payload`" + ` LONGBLOB DEFAULT NULL,
	` + "`metadata`" + ` JSON DEFAULT NULL,
	` + "`seq`" + ` BIGINT DEFAULT NULL,
	UNIQUE KEY ` + "`seq` (`seq`)" + `
) ENGINE=InnoDB`,
		"CREATE TABLE IF NOT EXISTS " + cfg.offsetsTable() + ` (
	consumer_group VARCHAR(255) NOT NULL PRIMARY KEY,
	seq_acked BIGINT NOT NULL DEFAULT 0,
	updated_at TIMESTAMP(6) NULL DEFAULT NULL
) ENGINE=InnoDB`,
		"CREATE TABLE IF NOT EXISTS " + cfg.sequenceTable() + ` (
	id TINYINT NOT NULL PRIMARY KEY,
	last_seq BIGINT NOT NULL
) ENGINE=InnoDB`,
		"INSERT IGNORE INTO " + cfg.sequenceTable() + " (id, last_seq) VALUES (1, 0)",
		"CREATE TABLE IF NOT EXISTS " + cfg.deadLettersTable() + ` (
	id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
	uuid VARCHAR(36) NOT NULL,
	topic VARCHAR(249) NOT NULL,
	partition_key TEXT NOT NULL,
	payload LONGBLOB DEFAULT NULL,
	metadata JSON DEFAULT NULL,
	reason TEXT NOT NULL,
	class VARCHAR(64) NOT NULL,
	attempts INT NOT NULL,
	created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	failed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	KEY topic_idx (topic, id),
	KEY failed_idx (failed_at)
) ENGINE=InnoDB`,
	}
}

// DropSchema drops every table of the outbox (data included). It exists for tests
// and tear-down scripts.
func DropSchema(ctx context.Context, db *sql.DB, cfg Config) error {
	cfg, err := cfg.normalize()
	if err != nil {
		return err
	}
	tables := []string{cfg.eventsTable(), cfg.offsetsTable(), cfg.deadLettersTable()}
	if cfg.Dialect == MySQL {
		tables = append(tables, cfg.sequenceTable())
	}
	for _, t := range tables {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
			return fmt.Errorf("outbox: drop %s: %w", t, err)
		}
	}
	if cfg.Dialect == Postgres {
		fn := cfg.quote(cfg.Name + "_set_transaction_id")
		if _, err := db.ExecContext(ctx, "DROP FUNCTION IF EXISTS "+fn+"()"); err != nil {
			return fmt.Errorf("outbox: drop %s: %w", fn, err)
		}
	}
	return nil
}

// lockKey derives a PostgreSQL advisory lock key from its purpose and names. A
// collision with another application's key only costs extra waiting.
func lockKey(parts ...string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("millrace/outbox"))
	for _, p := range parts {
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(p))
	}
	return int64(h.Sum64())
}

func firstLine(q string) string {
	if i := strings.IndexAny(q, "(\n"); i >= 0 {
		q = q[:i]
	}
	return strings.TrimSpace(q)
}
