package outbox

import (
	"fmt"
	"regexp"
	"time"
)

// Dialect selects the SQL dialect of an outbox. Its zero value is invalid, so a
// Config that forgets to set it fails validation instead of guessing.
type Dialect int

const (
	// Postgres is PostgreSQL 13 or newer (xid8 and pg_current_xact_id are needed).
	Postgres Dialect = iota + 1
	// MySQL is MySQL 8.0.1+ or MariaDB 10.3+ with InnoDB (FOR UPDATE NOWAIT is
	// needed).
	MySQL
)

// String returns "postgres", "mysql" or "Dialect(n)" for an invalid value.
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	default:
		return fmt.Sprintf("Dialect(%d)", int(d))
	}
}

// Defaults of the Config fields.
const (
	DefaultName             = "outbox"
	DefaultConsumerGroup    = "relay"
	DefaultMaxEventBytes    = 1 << 20
	DefaultLockPollInterval = 250 * time.Millisecond
)

// maxNameLen keeps every derived name (the longest is Name+"_dead_letters_failed_idx")
// within PostgreSQL's 63-byte and MySQL's 64-character identifier limits.
const maxNameLen = 32

var (
	identifierRe    = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	consumerGroupRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,255}$`)
)

// Config describes one outbox: its tables, its consumer group and its limits. It is
// passed by value; every constructor and function of the package applies the defaults
// to zero fields and then validates it, and the error names the offending field.
type Config struct {
	// Dialect is the SQL dialect of the database. Required: the zero value is invalid.
	Dialect Dialect

	// Name is the name of the events table; the other tables derive their names from
	// it (Name+"_offsets", Name+"_dead_letters" and, on MySQL, Name+"_sequence").
	// It must be a lower-case SQL identifier ([a-z_][a-z0-9_]*) of at most 32
	// characters, because it is written into SQL statements. Defaults to "outbox".
	Name string

	// ConsumerGroup names the reader's position in the offsets table. Readers of one
	// group share a position and serialise on it (one works, the others stand by);
	// readers of different groups each see every event. 1-255 characters of
	// [A-Za-z0-9._-]. Defaults to "relay".
	ConsumerGroup string

	// NotifyChannel is the PostgreSQL LISTEN/NOTIFY channel that Publish notifies and
	// Listen listens on. Same rules as Name. Ignored on MySQL. Defaults to Name.
	NotifyChannel string

	// MaxEventBytes is the largest event Publish accepts, counted as the payload plus
	// every metadata key and value. A larger event is rejected with ErrInvalidEvent
	// before it reaches the table, so it never becomes a dead letter at the broker.
	// Set a negative value to accept any size. Defaults to 1 MiB (Kafka's default
	// maximum message size is about the same).
	MaxEventBytes int

	// LockPollInterval bounds how long a standby reader waits for the consumer
	// group's lock in one attempt before it checks its context and tries again, so a
	// cancelled standby returns within about this time even with a driver that cannot
	// interrupt a lock wait. PostgreSQL waits on an advisory lock with lock_timeout set
	// to this value; MySQL tries FOR UPDATE NOWAIT and sleeps this long between tries.
	// Must not be negative. Defaults to 250ms.
	LockPollInterval time.Duration
}

// withDefaults returns c with the defaults applied to zero fields.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.ConsumerGroup == "" {
		c.ConsumerGroup = DefaultConsumerGroup
	}
	if c.NotifyChannel == "" {
		c.NotifyChannel = c.Name
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = DefaultMaxEventBytes
	}
	if c.LockPollInterval == 0 {
		c.LockPollInterval = DefaultLockPollInterval
	}
	return c
}

// Validate applies the defaults to a copy of c and reports the first invalid field.
// The returned error wraps ErrInvalidConfig and starts with the field's name.
func (c Config) Validate() error {
	_, err := c.normalize()
	return err
}

// normalize applies the defaults and validates; every entry point calls it.
func (c Config) normalize() (Config, error) {
	c = c.withDefaults()
	if c.Dialect != Postgres && c.Dialect != MySQL {
		return c, configError("Dialect", "must be outbox.Postgres or outbox.MySQL, got %v", c.Dialect)
	}
	if err := validIdentifier(c.Name); err != nil {
		return c, configError("Name", "%v", err)
	}
	if !consumerGroupRe.MatchString(c.ConsumerGroup) {
		return c, configError("ConsumerGroup", "%q must be 1-255 characters of [A-Za-z0-9._-]", c.ConsumerGroup)
	}
	if err := validIdentifier(c.NotifyChannel); err != nil {
		return c, configError("NotifyChannel", "%v", err)
	}
	if c.LockPollInterval < 0 {
		return c, configError("LockPollInterval", "must not be negative, got %v", c.LockPollInterval)
	}
	return c, nil
}

func validIdentifier(s string) error {
	if len(s) > maxNameLen {
		return fmt.Errorf("%q is longer than %d characters", s, maxNameLen)
	}
	if !identifierRe.MatchString(s) {
		return fmt.Errorf("%q is not a safe SQL identifier: use lower-case letters, digits and underscores, not starting with a digit", s)
	}
	return nil
}

func configError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

// Table names, quoted for the dialect. The names are validated identifiers, so the
// quoting is for keywords, not for injection.
func (c Config) quote(ident string) string {
	if c.Dialect == MySQL {
		return "`" + ident + "`"
	}
	return `"` + ident + `"`
}

func (c Config) eventsTable() string      { return c.quote(c.Name) }
func (c Config) offsetsTable() string     { return c.quote(c.Name + "_offsets") }
func (c Config) deadLettersTable() string { return c.quote(c.Name + "_dead_letters") }
func (c Config) sequenceTable() string    { return c.quote(c.Name + "_sequence") }

// placeholder returns the n-th (1-based) bind parameter marker of the dialect.
func (c Config) placeholder(n int) string {
	if c.Dialect == MySQL {
		return "?"
	}
	return fmt.Sprintf("$%d", n)
}
