package outbox

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// MaxBatchSize is the largest limit Reader.Begin accepts.
const MaxBatchSize = 10000

// maxReasonBytes bounds the error text stored with a dead letter.
const maxReasonBytes = 16 << 10

// Reader reads the outbox in batches for one consumer group. It is safe for
// concurrent use, but a consumer group has one position: batches of the same group,
// from this Reader or any other process, run one at a time (see Begin).
type Reader struct {
	db         *sql.DB
	cfg        Config
	groupReady atomic.Bool // the group's offsets row is known to exist
}

// NewReader returns a Reader of the outbox described by cfg, for cfg.ConsumerGroup.
// InitializeSchema must have created the tables.
func NewReader(db *sql.DB, cfg Config) (*Reader, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("outbox: NewReader: db is nil")
	}
	return &Reader{db: db, cfg: cfg}, nil
}

// Config returns the Reader's configuration with the defaults applied.
func (r *Reader) Config() Config { return r.cfg }

// Begin opens a batch: a transaction that holds the consumer group's lock and the
// next at most limit events (1..MaxBatchSize) after the group's acked position, in
// reading order. The batch may be empty. Nothing is recorded until Batch.Commit; a
// batch that is rolled back, whose context ends or whose process dies leaves the
// position where it was, so the same events are read again (at-least-once).
//
// Only one batch of a consumer group is open at a time across all processes: Begin
// waits while another holds the group's lock, which makes extra forwarders hot
// standbys. The wait honours ctx: it is made of attempts of at most
// Config.LockPollInterval (PostgreSQL: an advisory lock with lock_timeout; MySQL:
// the offsets row FOR UPDATE NOWAIT, then a sleep), and both drivers also interrupt a
// wait in progress when ctx ends. On PostgreSQL neither a waiting standby nor an open
// batch holds a transaction id (until Commit writes), so neither holds back the
// visibility horizon of other readers on the server.
//
// ctx must stay alive until the batch is committed or rolled back: when it ends, the
// database/sql transaction is rolled back.
//
// Reading order: the order in which the writing transactions became visible
// (committed), then offset (see the package documentation). PostgreSQL reads
// snapshot deltas, MySQL a commit sequence assigned by the reader; on both, no
// committed event is ever skipped, an open transaction holds back nothing but its
// own events, the events of one transaction keep their publish order, and an event
// written after another transaction's event became visible is read after it.
func (r *Reader) Begin(ctx context.Context, limit int) (*Batch, error) {
	if limit < 1 || limit > MaxBatchSize {
		return nil, fmt.Errorf("outbox: Begin: limit must be in 1..%d, got %d", MaxBatchSize, limit)
	}
	if err := r.ensureGroup(ctx); err != nil {
		return nil, fmt.Errorf("outbox: Begin: %w", err)
	}
	if r.cfg.Dialect == MySQL {
		// Sequence before taking the group lock, on its own connection and
		// transaction, so a batch never needs two connections at once.
		if err := r.sequence(ctx, limit); err != nil {
			return nil, fmt.Errorf("outbox: Begin: sequence: %w", err)
		}
	}
	for {
		b, err := r.tryBegin(ctx, limit)
		if err == nil {
			return b, nil
		}
		if !isLockBusy(err) {
			return nil, fmt.Errorf("outbox: Begin: %w", err)
		}
		if r.cfg.Dialect == MySQL {
			// NOWAIT failed at once: wait before the next attempt.
			if err := sleepCtx(ctx, r.cfg.LockPollInterval); err != nil {
				return nil, fmt.Errorf("outbox: Begin: waiting for the lock of consumer group %q: %w", r.cfg.ConsumerGroup, err)
			}
		} else if err := ctx.Err(); err != nil {
			// lock_timeout already waited LockPollInterval.
			return nil, fmt.Errorf("outbox: Begin: waiting for the lock of consumer group %q: %w", r.cfg.ConsumerGroup, err)
		}
	}
}

// tryBegin makes one attempt; a lock conflict is returned as is (isLockBusy).
func (r *Reader) tryBegin(ctx context.Context, limit int) (b *Batch, err error) {
	tx, err := r.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var (
		events []Event
		pg     *pgDelta
	)
	if r.cfg.Dialect == MySQL {
		events, err = r.readMySQL(ctx, tx, limit)
	} else {
		events, pg, err = r.readPostgres(ctx, tx, limit)
	}
	if err != nil {
		return nil, err
	}
	return &Batch{r: r, tx: tx, events: events, pg: pg}, nil
}

// readMySQL locks the group's offsets row and reads the sequenced events after it.
func (r *Reader) readMySQL(ctx context.Context, tx *sql.Tx, limit int) ([]Event, error) {
	var acked int64
	err := tx.QueryRowContext(ctx, "SELECT seq_acked FROM "+r.cfg.offsetsTable()+
		" WHERE consumer_group = ? FOR UPDATE NOWAIT", r.cfg.ConsumerGroup).Scan(&acked)
	if errors.Is(err, sql.ErrNoRows) {
		r.groupReady.Store(false)
		return nil, fmt.Errorf("offsets row of consumer group %q is missing", r.cfg.ConsumerGroup)
	}
	if err != nil {
		return nil, err
	}
	// A consistent (non-locking) read: it never waits for writers nor blocks them.
	rows, err := tx.QueryContext(ctx, "SELECT `offset`, `uuid`, `payload`, `metadata`, `created_at`, `seq` FROM "+
		r.cfg.eventsTable()+" WHERE `seq` > ? ORDER BY `seq` LIMIT ?", acked, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var events []Event
	for rows.Next() {
		var (
			row rawRow
			seq int64
		)
		if err := row.scan(rows, &seq); err != nil {
			return nil, err
		}
		events = append(events, row.event(Position{seq: seq, offset: row.offset}))
	}
	return events, rows.Err()
}

// sequence gives the next committed, not yet sequenced events the next commit
// sequence numbers, in offset order, in a short transaction of its own. The sequence
// row serialises sequencers, so numbers become visible in increasing order and
// without gaps.
//
// The candidates come from a consistent (non-locking) read, i.e. one snapshot: a
// writing transaction is in it with all its rows or not at all, so rows of a
// transaction still open are left for a later call, never skipped. (A locking read
// with SKIP LOCKED is not atomic that way: the scan can find a transaction's first
// rows locked and, once it has committed mid-scan, its last rows unlocked, which
// would number the transaction's events out of order.)
func (r *Reader) sequence(ctx context.Context, limit int) (err error) {
	tx, err := r.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var last int64
	err = tx.QueryRowContext(ctx, "SELECT last_seq FROM "+r.cfg.sequenceTable()+" WHERE id = 1 FOR UPDATE").Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sequence row missing in %s: run InitializeSchema", r.cfg.sequenceTable())
	}
	if err != nil {
		return err
	}
	// Taken after the sequence lock, so this snapshot sees every earlier sequencer's
	// numbers.
	rows, err := tx.QueryContext(ctx, "SELECT `offset` FROM "+r.cfg.eventsTable()+" FORCE INDEX (`seq`)"+
		" WHERE `seq` IS NULL ORDER BY `offset` LIMIT ?", limit)
	if err != nil {
		return err
	}
	var offsets []any
	for rows.Next() {
		var off int64
		if err := rows.Scan(&off); err != nil {
			rows.Close()
			return err
		}
		offsets = append(offsets, off)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(offsets) == 0 {
		return tx.Commit()
	}
	var q strings.Builder
	args := make([]any, 0, 3*len(offsets))
	q.WriteString("UPDATE " + r.cfg.eventsTable() + " SET `seq` = CASE `offset`")
	for i, off := range offsets {
		q.WriteString(" WHEN ? THEN ?")
		args = append(args, off, last+int64(i)+1)
	}
	q.WriteString(" END WHERE `seq` IS NULL AND `offset` IN (" + placeholders(len(offsets)) + ")")
	args = append(args, offsets...)
	res, err := tx.ExecContext(ctx, q.String(), args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(offsets)) {
		return fmt.Errorf("numbered %d of %d events (%v): is another sequencer bypassing the sequence lock?", n, len(offsets), err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE "+r.cfg.sequenceTable()+" SET last_seq = ? WHERE id = 1",
		last+int64(len(offsets))); err != nil {
		return err
	}
	return tx.Commit()
}

// ensureGroup creates the consumer group's offsets row (position zero) once, without
// touching a row that exists: another reader may hold it locked.
func (r *Reader) ensureGroup(ctx context.Context) error {
	if r.groupReady.Load() {
		return nil
	}
	var one int
	err := r.db.QueryRowContext(ctx, "SELECT 1 FROM "+r.cfg.offsetsTable()+" WHERE consumer_group = "+
		r.cfg.placeholder(1), r.cfg.ConsumerGroup).Scan(&one)
	if err == nil {
		r.groupReady.Store(true)
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("consumer group %q: %w", r.cfg.ConsumerGroup, err)
	}
	q := "INSERT IGNORE INTO " + r.cfg.offsetsTable() + " (consumer_group, seq_acked) VALUES (?, 0)"
	if r.cfg.Dialect == Postgres {
		q = "INSERT INTO " + r.cfg.offsetsTable() + " (consumer_group, snapshot_done) VALUES ($1, '" +
			emptySnapshot + "') ON CONFLICT DO NOTHING"
	}
	if _, err := r.db.ExecContext(ctx, q, r.cfg.ConsumerGroup); err != nil {
		return fmt.Errorf("create consumer group %q: %w", r.cfg.ConsumerGroup, err)
	}
	r.groupReady.Store(true)
	return nil
}

// Batch is an open reading transaction of a consumer group; see Reader.Begin. Its
// methods are safe for concurrent use, but a batch is meant to be driven by one
// forwarder.
type Batch struct {
	r      *Reader
	tx     *sql.Tx
	events []Event
	pg     *pgDelta // PostgreSQL: the delta the events belong to; nil when empty

	mu       sync.Mutex
	done     bool
	deadLast Position // highest position dead-lettered in this batch
}

// Events returns the batch's events in reading order. The slice belongs to the
// batch: do not modify it.
func (b *Batch) Events() []Event { return b.events }

// find returns the index of the event at p, or -1.
func (b *Batch) find(p Position) int {
	i := sort.Search(len(b.events), func(i int) bool { return b.events[i].Position.Compare(p) >= 0 })
	if i < len(b.events) && b.events[i].Position == p {
		return i
	}
	return -1
}

// DeadLetter sets ev, an event of this batch, aside as a dead letter: it inserts it
// into the dead letters table inside the batch's transaction, so the dead letter and
// the progress past it are committed together, or neither is. reason is the error
// that made the event undeliverable (its text is stored, truncated to 16 KiB); class
// names the kind of failure (such as "permanent"; "" stores "unknown"; at most 64
// bytes); attempts is how many deliveries were tried. The payload is stored but
// never logged. Commit must then cover ev (upTo at or after ev.Position).
//
// The event is stored as read: topic, key, payload and metadata (the column as
// stored for a malformed row, see Event.Err). When the database refuses that (a
// topic longer than the column, a NUL or invalid UTF-8 in a text column, metadata
// that is not valid JSON for it), the insert is undone to a savepoint and the event
// is stored in a safe form: the text columns cleaned, and the original topic, key
// and metadata kept in base64 under the metadata keys DeadLetterTopicBase64,
// DeadLetterKeyBase64 and DeadLetterMetadataBase64, from which List restores them.
// The error of a failed DeadLetter names the event (uuid and offset); the batch
// stays usable, so the progress before the event can still be committed.
func (b *Batch) DeadLetter(ctx context.Context, ev Event, reason error, class string, attempts int) error {
	if reason == nil {
		return errors.New("outbox: DeadLetter: reason is nil")
	}
	if class == "" {
		class = "unknown"
	}
	if len(class) > 64 {
		return fmt.Errorf("outbox: DeadLetter: class is longer than 64 bytes")
	}
	if attempts < 0 {
		return fmt.Errorf("outbox: DeadLetter: attempts must not be negative, got %d", attempts)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return ErrBatchDone
	}
	i := b.find(ev.Position)
	if i < 0 {
		return fmt.Errorf("outbox: DeadLetter: event %s at %v: %w", ev.UUID, ev.Position, ErrPositionNotInBatch)
	}
	stored := b.events[i] // the event as read, whatever the caller changed in its copy
	dl := asStored(stored, reason)
	err := b.insertDeadLetter(ctx, dl, class, attempts)
	if err != nil {
		first := err
		dl = safeForm(stored, reason)
		if err = b.insertDeadLetter(ctx, dl, class, attempts); err != nil {
			return fmt.Errorf("outbox: DeadLetter: event uuid %q offset %d: as stored: %v; in safe form: %w",
				stored.UUID, stored.Position.offset, first, err)
		}
	}
	if stored.Position.Compare(b.deadLast) > 0 {
		b.deadLast = stored.Position
	}
	return nil
}

// deadLetterRow is what DeadLetter inserts.
type deadLetterRow struct {
	uuid, topic, key string
	payload          []byte
	metadata         any // string, or nil for NULL
	reason           string
	created          time.Time
}

// insertDeadLetter inserts dl inside a savepoint, which it rolls back to on failure
// so that the batch's transaction stays usable (PostgreSQL aborts a transaction at
// its first failed statement otherwise).
func (b *Batch) insertDeadLetter(ctx context.Context, dl deadLetterRow, class string, attempts int) error {
	cfg := b.r.cfg
	if _, err := b.tx.ExecContext(ctx, "SAVEPOINT millrace_dead_letter"); err != nil {
		return err
	}
	ph := make([]string, 9)
	for j := range ph {
		ph[j] = cfg.placeholder(j + 1)
	}
	q := "INSERT INTO " + cfg.deadLettersTable() +
		" (uuid, topic, partition_key, payload, metadata, reason, class, attempts, created_at) VALUES (" +
		strings.Join(ph, ", ") + ")"
	_, err := b.tx.ExecContext(ctx, q, dl.uuid, dl.topic, dl.key, dl.payload, dl.metadata, dl.reason, class, attempts, dl.created)
	if err != nil {
		if _, rerr := b.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT millrace_dead_letter"); rerr != nil {
			return errors.Join(err, fmt.Errorf("roll back to savepoint: %w", rerr))
		}
		return err
	}
	_, err = b.tx.ExecContext(ctx, "RELEASE SAVEPOINT millrace_dead_letter")
	return err
}

// asStored is the dead letter of ev as read.
func asStored(ev Event, reason error) deadLetterRow {
	dl := deadLetterRow{uuid: ev.UUID, topic: ev.Topic, key: ev.Key, payload: ev.Payload,
		reason: cleanText(truncateUTF8(reason.Error(), maxReasonBytes)), created: ev.CreatedAt}
	if ev.Err != nil {
		if ev.RawMetadata != nil {
			dl.metadata = string(ev.RawMetadata)
		}
	} else {
		md, _ := json.Marshal(ev.Metadata) // a map of strings always marshals
		dl.metadata = string(md)
	}
	return dl
}

// Metadata keys of a dead letter stored in safe form: the original values, base64
// (standard encoding) of their bytes. List restores them.
const (
	DeadLetterTopicBase64    = ReservedPrefix + "dead_letter_topic_base64"
	DeadLetterKeyBase64      = ReservedPrefix + "dead_letter_key_base64"
	DeadLetterMetadataBase64 = ReservedPrefix + "dead_letter_metadata_base64"
)

// safeForm is the dead letter of ev with every text column cleaned (valid UTF-8,
// no NUL, the topic cut to 249 characters) and the originals kept in metadata.
func safeForm(ev Event, reason error) deadLetterRow {
	md := map[string]string{}
	if ev.Err == nil {
		for k, v := range ev.Metadata {
			if cleanText(k) == k && cleanText(v) == v {
				md[k] = v
			}
		}
	}
	if ev.Err != nil || len(md) != len(ev.Metadata) {
		raw := ev.RawMetadata
		if ev.Err == nil {
			raw, _ = json.Marshal(ev.Metadata)
		}
		if raw != nil {
			md[DeadLetterMetadataBase64] = base64.StdEncoding.EncodeToString(raw)
		}
	}
	topic := cleanText(ev.Topic)
	if n := utf8.RuneCountInString(topic); n > 249 {
		topic = string([]rune(topic)[:249])
	}
	if topic != ev.Topic {
		md[DeadLetterTopicBase64] = base64.StdEncoding.EncodeToString([]byte(ev.Topic))
	}
	key := cleanText(ev.Key)
	if key != ev.Key {
		md[DeadLetterKeyBase64] = base64.StdEncoding.EncodeToString([]byte(ev.Key))
	}
	b, _ := json.Marshal(md)
	return deadLetterRow{uuid: cleanText(ev.UUID), topic: topic, key: key, payload: ev.Payload, metadata: string(b),
		reason: cleanText(truncateUTF8(reason.Error(), maxReasonBytes)) + " (stored in safe form: the original topic, key and metadata are in the " +
			ReservedPrefix + "dead_letter_*_base64 metadata keys)",
		created: ev.CreatedAt}
}

// cleanText makes s storable in any text column: invalid UTF-8 becomes U+FFFD and
// NUL becomes U+FFFD too.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// Commit records upTo as the consumer group's acked position and commits the batch
// with its dead letters. upTo is the position of the last event handled, which must
// be an event of this batch; events after it are read again by the next batch. The
// zero Position records no progress (and then no dead letter may have been written).
// Commit refuses, leaving the batch open, an upTo before a dead-lettered event, which
// would otherwise be both a dead letter and read again. After any database error the
// batch is rolled back and over.
func (b *Batch) Commit(ctx context.Context, upTo Position) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return ErrBatchDone
	}
	if !upTo.IsZero() && b.find(upTo) < 0 {
		return fmt.Errorf("outbox: Commit up to %v: %w", upTo, ErrPositionNotInBatch)
	}
	if !b.deadLast.IsZero() && upTo.Compare(b.deadLast) < 0 {
		return fmt.Errorf("outbox: Commit up to %v would leave dead-lettered event at %v unacked: commit up to it or roll back", upTo, b.deadLast)
	}
	b.done = true
	if !upTo.IsZero() {
		cfg := b.r.cfg
		var err error
		if cfg.Dialect == MySQL {
			_, err = b.tx.ExecContext(ctx, "UPDATE "+cfg.offsetsTable()+
				" SET seq_acked = ?, updated_at = CURRENT_TIMESTAMP(6) WHERE consumer_group = ?", upTo.seq, cfg.ConsumerGroup)
		} else {
			err = b.commitPostgres(ctx, upTo)
		}
		if err != nil {
			_ = b.tx.Rollback()
			return fmt.Errorf("outbox: Commit up to %v: %w", upTo, err)
		}
	}
	if err := b.tx.Commit(); err != nil {
		return fmt.Errorf("outbox: Commit up to %v: %w", upTo, err)
	}
	return nil
}

// Rollback abandons the batch: no progress and no dead letter is recorded, and the
// same events are read again. It returns nil when the batch is already over, so it
// can be deferred.
func (b *Batch) Rollback() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil
	}
	b.done = true
	if err := b.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("outbox: Rollback: %w", err)
	}
	return nil
}

// Stats is a snapshot of a consumer group's backlog.
type Stats struct {
	// Pending counts committed events after the group's acked position, including
	// those held back behind an open transaction (PostgreSQL) or not yet sequenced
	// (MySQL).
	Pending int64
	// OldestPending is the age of the oldest pending event by the database clock;
	// 0 when nothing is pending.
	OldestPending time.Duration
	// DeadLetters counts the rows of the dead letters table (all groups).
	DeadLetters int64
	// LastForwardedAt is when the group last committed progress; zero if never.
	LastForwardedAt time.Time
}

// Stats returns the backlog of the Reader's consumer group. It takes no lock and
// does not wait for an open batch.
func (r *Reader) Stats(ctx context.Context) (Stats, error) {
	var (
		s       Stats
		ageSecs float64
		fwd     dbTime
		err     error
	)
	cfg := r.cfg
	if cfg.Dialect == MySQL {
		var acked int64
		err = r.db.QueryRowContext(ctx, "SELECT seq_acked, updated_at FROM "+cfg.offsetsTable()+
			" WHERE consumer_group = ?", cfg.ConsumerGroup).Scan(&acked, &fwd)
		if errors.Is(err, sql.ErrNoRows) {
			err = nil
		}
		if err == nil {
			var ageMicros int64
			err = r.db.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(created_at), CURRENT_TIMESTAMP(6)), 0) FROM "+
				cfg.eventsTable()+" WHERE `seq` IS NULL OR `seq` > ?", acked).Scan(&s.Pending, &ageMicros)
			ageSecs = float64(ageMicros) / 1e6
		}
	} else {
		// Pending: rows of transactions not visible in the group's done snapshot,
		// less those of the open delta already handled.
		err = r.db.QueryRowContext(ctx, `WITH g AS (
	SELECT COALESCE(o.snapshot_done, '`+emptySnapshot+`'::pg_snapshot) AS done, o.snapshot_cur AS cur,
	       COALESCE(o.delta_pos, 0) AS pos, o.updated_at AS fwd
	FROM (SELECT 1) AS one LEFT JOIN `+cfg.offsetsTable()+` AS o ON o.consumer_group = $1
), p AS (
	SELECT count(*) AS n, min(e.created_at) AS oldest FROM g, (
		SELECT transaction_id, "offset", created_at FROM `+cfg.eventsTable()+` WHERE transaction_id >= pg_snapshot_xmax((SELECT done FROM g))
		UNION ALL
		SELECT transaction_id, "offset", created_at FROM `+cfg.eventsTable()+` WHERE transaction_id IN (SELECT pg_snapshot_xip((SELECT done FROM g)))
	) AS e
	WHERE NOT (g.cur IS NOT NULL AND e."offset" <= g.pos AND pg_visible_in_snapshot(e.transaction_id, g.cur))
)
SELECT p.n, COALESCE(EXTRACT(EPOCH FROM (now() - p.oldest)), 0)::float8, g.fwd FROM p, g`,
			cfg.ConsumerGroup).Scan(&s.Pending, &ageSecs, &fwd)
	}
	if err == nil {
		err = r.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+cfg.deadLettersTable()).Scan(&s.DeadLetters)
	}
	if err != nil {
		return Stats{}, fmt.Errorf("outbox: Stats: %w", err)
	}
	if ageSecs > 0 {
		s.OldestPending = time.Duration(ageSecs * float64(time.Second))
	}
	s.LastForwardedAt = fwd.t
	return s, nil
}

// dbTime scans a nullable time from either driver: a time.Time, or the text that
// go-sql-driver returns without parseTime=true (read as UTC, its default location).
type dbTime struct{ t time.Time }

func (d *dbTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		d.t = time.Time{}
	case time.Time:
		d.t = v
	case []byte:
		return d.parse(string(v))
	case string:
		return d.parse(v)
	default:
		return fmt.Errorf("cannot scan %T into a time", src)
	}
	return nil
}

func (d *dbTime) parse(s string) error {
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", s, time.UTC)
	if err != nil {
		return err
	}
	d.t = t
	return nil
}

// isLockBusy reports a lock that another transaction holds: PostgreSQL
// lock_not_available (lock_timeout expired), MySQL ER_LOCK_WAIT_TIMEOUT (MariaDB's
// answer to NOWAIT) or ER_LOCK_NOWAIT (MySQL 8's).
func isLockBusy(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "55P03"
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number == 1205 || myErr.Number == 3572
	}
	return false
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
