package outbox

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
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
	var uuid []byte
	dest := append([]any{&r.offset, &uuid, &r.payload, &r.metadata, &r.created}, extra...)
	if err := rows.Scan(dest...); err != nil {
		return fmt.Errorf("scan events row: %w", err)
	}
	r.uuid = string(uuid)
	return nil
}

// event decodes the row into an Event at pos. A row that cannot be decoded still
// becomes an Event, with Err set (wrapping ErrMalformedEvent, naming the row and
// the problem), RawMetadata holding the column as stored, and whatever topic and
// key could be recovered: it is to be set aside as a dead letter, never to stop the
// reading.
func (r *rawRow) event(pos Position) Event {
	ev := Event{Position: pos, UUID: r.uuid, Payload: r.payload, CreatedAt: r.created.t}
	stored, err := decodeMetadata(r.metadata)
	ev.Topic, ev.Key, ev.Metadata = splitMetadata(stored)
	ev.Trace = storedTrace(stored) // see trace.go
	if err == nil {
		err = checkTopic(ev.Topic)
	}
	if err != nil {
		ev.Err = fmt.Errorf("%w: row uuid %q offset %d: %v", ErrMalformedEvent, r.uuid, r.offset, err)
		ev.RawMetadata = r.metadata
	}
	return ev
}

// decodeMetadata decodes a metadata column. On error it returns the string-valued
// entries it could read, so that a dead letter keeps a recoverable topic and key.
func decodeMetadata(raw []byte) (map[string]string, error) {
	out := map[string]string{}
	if raw == nil {
		return out, fmt.Errorf("metadata is NULL, so there is no topic")
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return out, fmt.Errorf("metadata is not valid JSON: %v", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return out, fmt.Errorf("metadata is a JSON %s, not an object", jsonKind(v))
	}
	var bad []string
	for k, x := range obj {
		if s, ok := x.(string); ok {
			out[k] = s
		} else {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return out, fmt.Errorf("metadata key %s holds a JSON %s, not a string", quoteShort(bad[0]), jsonKind(obj[bad[0]]))
	}
	return out, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	default:
		return "object"
	}
}

// checkTopic reports why topic is not a valid Kafka topic name, or nil.
func checkTopic(topic string) error {
	if topic == "" {
		return fmt.Errorf("no topic (metadata key %q is missing or empty)", TopicMetadata)
	}
	if !kafkaTopicRe.MatchString(topic) || topic == "." || topic == ".." {
		return fmt.Errorf("topic %s is not a valid Kafka topic name (1-249 characters of [a-zA-Z0-9._-])", quoteShort(topic))
	}
	return nil
}

// quoteShort quotes s for an error message, cut to 80 bytes.
func quoteShort(s string) string {
	if len(s) <= 80 {
		return fmt.Sprintf("%q", s)
	}
	cut := 80
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:cut], len(s))
}
