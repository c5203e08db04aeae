package outbox

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// DefaultFilterLimit is the number of dead letters List, Replay and Purge handle
// when Filter.Limit is zero.
const DefaultFilterLimit = 1000

// DeadLetter is an event that was set aside by Batch.DeadLetter.
type DeadLetter struct {
	ID       int64
	UUID     string
	Topic    string
	Key      string
	Payload  []byte
	Metadata map[string]string // user metadata only
	// RawMetadata is the metadata as the malformed row held it (see
	// ErrMalformedEvent), nil for the dead letter of a well-formed event.
	RawMetadata []byte
	Reason      string // the error text
	Class       string
	Attempts    int
	CreatedAt   time.Time // when the event was first written to the outbox
	FailedAt    time.Time // when it was set aside, by the database clock
}

// Filter selects dead letters. Criteria combine with AND; the zero Filter selects
// every dead letter for List, while Replay and Purge require a criterion or All.
type Filter struct {
	// IDs selects these dead letter ids only (nil: any id).
	IDs []int64
	// Topic selects one destination topic ("": any).
	Topic string
	// Class selects one failure class ("": any).
	Class string
	// Before selects dead letters set aside before this instant (zero: any time).
	Before time.Time
	// Limit caps how many dead letters one call handles, oldest id first; call
	// again for the rest. Must not be negative. Defaults to DefaultFilterLimit.
	Limit int
	// All must be set for Replay and Purge to act on every dead letter when no other
	// criterion is set, so that a forgotten field does not purge everything.
	All bool
}

func (f Filter) hasCriterion() bool {
	return f.IDs != nil || f.Topic != "" || f.Class != "" || !f.Before.IsZero()
}

func (f Filter) normalize() (Filter, error) {
	if f.Limit < 0 {
		return f, fmt.Errorf("%w: Limit must not be negative, got %d", ErrInvalidFilter, f.Limit)
	}
	if f.Limit == 0 {
		f.Limit = DefaultFilterLimit
	}
	return f, nil
}

// where renders the filter's WHERE clause (possibly empty) and its arguments.
func (f Filter) where(cfg Config) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, strings.Replace(cond, "?", cfg.placeholder(len(args)), 1))
	}
	if f.IDs != nil {
		if len(f.IDs) == 0 {
			conds = append(conds, "1 = 0")
		} else {
			ph := make([]string, len(f.IDs))
			for i, id := range f.IDs {
				args = append(args, id)
				ph[i] = cfg.placeholder(len(args))
			}
			conds = append(conds, "id IN ("+strings.Join(ph, ", ")+")")
		}
	}
	if f.Topic != "" {
		add("topic = ?", f.Topic)
	}
	if f.Class != "" {
		add("class = ?", f.Class)
	}
	if !f.Before.IsZero() {
		add("failed_at < ?", f.Before)
	}
	if len(conds) == 0 {
		return "", args
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

const deadLetterColumns = "id, uuid, topic, partition_key, payload, metadata, reason, class, attempts, created_at, failed_at"

// List returns the dead letters selected by f, oldest id first. Use it to inspect
// them; it never logs payloads.
func List(ctx context.Context, db *sql.DB, cfg Config, f Filter) ([]DeadLetter, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if f, err = f.normalize(); err != nil {
		return nil, err
	}
	dls, err := selectDeadLetters(ctx, db, cfg, f, false)
	if err != nil {
		return nil, fmt.Errorf("outbox: List: %w", err)
	}
	return dls, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func selectDeadLetters(ctx context.Context, q querier, cfg Config, f Filter, forUpdate bool) ([]DeadLetter, error) {
	where, args := f.where(cfg)
	query := "SELECT " + deadLetterColumns + " FROM " + cfg.deadLettersTable() + where +
		fmt.Sprintf(" ORDER BY id LIMIT %d", f.Limit)
	if forUpdate {
		query += " FOR UPDATE"
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var (
			d                DeadLetter
			md               []byte
			created, failed  dbTime
			payload, uuidRaw []byte
		)
		if err := rows.Scan(&d.ID, &uuidRaw, &d.Topic, &d.Key, &payload, &md, &d.Reason, &d.Class, &d.Attempts,
			&created, &failed); err != nil {
			return nil, err
		}
		d.UUID = string(uuidRaw)
		d.Payload = payload
		d.CreatedAt, d.FailedAt = created.t, failed.t
		restore(&d, md)
		out = append(out, d)
	}
	return out, rows.Err()
}

// restore fills d's metadata from the stored column md, and puts back the original
// topic, key and metadata of a dead letter stored in safe form (see
// Batch.DeadLetter). Metadata that is not a JSON object of strings (a malformed
// row's) is kept in RawMetadata.
func restore(d *DeadLetter, md []byte) {
	d.Metadata = map[string]string{}
	if md == nil {
		return
	}
	if err := json.Unmarshal(md, &d.Metadata); err != nil {
		d.Metadata = map[string]string{}
		d.RawMetadata = md
		return
	}
	original := func(key string) ([]byte, bool) {
		b, err := base64.StdEncoding.DecodeString(d.Metadata[key])
		if _, ok := d.Metadata[key]; !ok || err != nil {
			return nil, false
		}
		delete(d.Metadata, key)
		return b, true
	}
	if b, ok := original(DeadLetterTopicBase64); ok {
		d.Topic = string(b)
	}
	if b, ok := original(DeadLetterKeyBase64); ok {
		d.Key = string(b)
	}
	if b, ok := original(DeadLetterMetadataBase64); ok {
		var orig map[string]string
		if json.Unmarshal(b, &orig) == nil && d.RawMetadata == nil {
			d.Metadata = orig
		} else {
			d.RawMetadata = b
		}
	}
}

// Replay puts the dead letters selected by f back into the outbox and deletes them
// from the dead letters table, in one transaction: each becomes a new event with
// the same UUID, topic, key, payload and metadata, written through NewPublisher, so
// it is read after every event already pending. It returns how many were replayed.
// f needs a criterion or All. Dead letters of malformed rows (RawMetadata set, or no
// valid topic) are left in place: replayed, they would only be set aside again; fix
// them with SQL or Purge them.
func Replay(ctx context.Context, db *sql.DB, cfg Config, f Filter) (n int, err error) {
	cfg, err = cfg.normalize()
	if err != nil {
		return 0, err
	}
	if f, err = f.normalize(); err != nil {
		return 0, err
	}
	if !f.hasCriterion() && !f.All {
		return 0, fmt.Errorf("%w: Replay needs IDs, Topic, Class, Before or All", ErrInvalidFilter)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("outbox: Replay: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	dls, err := selectDeadLetters(ctx, tx, cfg, f, true)
	if err != nil {
		return 0, fmt.Errorf("outbox: Replay: %w", err)
	}
	if len(dls) == 0 {
		return 0, tx.Commit()
	}
	pub, err := NewPublisher(tx, cfg)
	if err != nil {
		return 0, fmt.Errorf("outbox: Replay: %w", err)
	}
	ids := make([]int64, 0, len(dls))
	for _, d := range dls {
		if d.RawMetadata != nil || checkTopic(d.Topic) != nil {
			// A malformed row: published again it would only come back here.
			continue
		}
		msg := message.NewMessage(d.UUID, d.Payload)
		for k, v := range d.Metadata {
			msg.Metadata[k] = v
		}
		SetKey(msg, d.Key)
		msg.SetContext(ctx)
		if err := pub.Publish(d.Topic, msg); err != nil {
			return 0, fmt.Errorf("outbox: Replay: dead letter %d: %w", d.ID, err)
		}
		ids = append(ids, d.ID)
	}
	if len(ids) == 0 {
		return 0, tx.Commit()
	}
	if _, err := deleteDeadLetters(ctx, tx, cfg, ids); err != nil {
		return 0, fmt.Errorf("outbox: Replay: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("outbox: Replay: %w", err)
	}
	return len(ids), nil
}

// Purge deletes the dead letters selected by f for good and returns how many. f
// needs a criterion or All.
func Purge(ctx context.Context, db *sql.DB, cfg Config, f Filter) (int, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return 0, err
	}
	if f, err = f.normalize(); err != nil {
		return 0, err
	}
	if !f.hasCriterion() && !f.All {
		return 0, fmt.Errorf("%w: Purge needs IDs, Topic, Class, Before or All", ErrInvalidFilter)
	}
	where, args := f.where(cfg)
	var query string
	if cfg.Dialect == MySQL {
		query = "DELETE FROM " + cfg.deadLettersTable() + where + fmt.Sprintf(" ORDER BY id LIMIT %d", f.Limit)
	} else {
		query = "DELETE FROM " + cfg.deadLettersTable() + " WHERE id IN (SELECT id FROM " + cfg.deadLettersTable() +
			where + fmt.Sprintf(" ORDER BY id LIMIT %d)", f.Limit)
	}
	res, err := db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("outbox: Purge: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("outbox: Purge: %w", err)
	}
	return int(n), nil
}

func deleteDeadLetters(ctx context.Context, tx *sql.Tx, cfg Config, ids []int64) (int64, error) {
	f := Filter{IDs: ids}
	where, args := f.where(cfg)
	res, err := tx.ExecContext(ctx, "DELETE FROM "+cfg.deadLettersTable()+where, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err == nil && n != int64(len(ids)) {
		err = errors.New("dead letters changed during replay")
	}
	return n, err
}
