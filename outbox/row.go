package outbox

import (
	"database/sql"
	"encoding/json"
	"fmt"
)

// rawRow is an events row as stored, before decoding.
type rawRow struct {
	offset   int64
	uuid     string
	payload  []byte
	metadata []byte // nil when the column is NULL
	created  dbTime
}

// scan reads the columns "offset", uuid, payload, metadata, created_at, then extra.
func (r *rawRow) scan(rows *sql.Rows, extra ...any) error {
	var md []byte
	dest := append([]any{&r.offset, &r.uuid, &r.payload, &md, &r.created}, extra...)
	if err := rows.Scan(dest...); err != nil {
		return fmt.Errorf("scan events row: %w", err)
	}
	r.metadata = md
	return nil
}

// event decodes the row into an Event at pos. The error names the row (uuid and
// offset) and what is wrong with it.
func (r *rawRow) event(pos Position) (Event, error) {
	ev := Event{Position: pos, UUID: r.uuid, Payload: r.payload, CreatedAt: r.created.t}
	stored := map[string]string{}
	if r.metadata != nil {
		if err := json.Unmarshal(r.metadata, &stored); err != nil {
			return ev, fmt.Errorf("event %s at offset %d: metadata is not a JSON object of strings: %w", r.uuid, r.offset, err)
		}
	}
	ev.Topic, ev.Key, ev.Metadata = splitMetadata(stored)
	ev.Trace = storedTrace(stored) // see trace.go
	return ev, nil
}
