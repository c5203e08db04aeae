package router

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/millrace/millrace/outbox"
)

// LockHolder identifies the forwarder that holds a consumer group's lock: the
// active one, which forwards while the others stand by.
//
// On PostgreSQL every field is known: the holder writes them into its lock
// connection's application_name. On MySQL/MariaDB a connection carries no such
// label: Host is the client address the server sees (when the database user may
// read other connections in information_schema.PROCESSLIST), PID and Since are
// unknown (zero), and Connection names the connection.
type LockHolder struct {
	Host       string    `json:"host,omitempty"`
	PID        int       `json:"pid,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	Connection string    `json:"connection"` // the database's name for the holder's connection
}

// String describes h in one line: "host web-1 pid 4242 since 2026-01-02T03:04:05Z".
func (h LockHolder) String() string {
	var parts []string
	if h.Host != "" {
		parts = append(parts, "host "+h.Host)
	}
	if h.PID != 0 {
		parts = append(parts, "pid "+strconv.Itoa(h.PID))
	}
	if !h.Since.IsZero() {
		parts = append(parts, "since "+h.Since.UTC().Format(time.RFC3339))
	}
	if len(parts) == 0 {
		parts = append(parts, h.Connection)
	}
	return strings.Join(parts, " ")
}

// ReadLockHolder returns the forwarder holding the lock of cfg's consumer group,
// or nil when none does (no forwarder runs). It takes no lock.
func ReadLockHolder(ctx context.Context, db *sql.DB, cfg outbox.Config) (*LockHolder, error) {
	r, err := outbox.NewReader(db, cfg) // for the defaults of cfg
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	cfg = r.Config()
	if cfg.Dialect == outbox.MySQL {
		return mysqlHolder(ctx, db, leaderLockName(cfg))
	}
	var app, pid string
	err = db.QueryRowContext(ctx, `
SELECT coalesce(a.application_name, ''), a.pid::text
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND ((l.classid::bigint << 32) | l.objid::bigint) = $1`, leaderLockKey(cfg)).Scan(&app, &pid)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("router: reading the holder of the group lock: %w", err)
	}
	h := parseApplicationName(app)
	h.Connection = "postgres backend " + pid
	return &h, nil
}

func mysqlHolder(ctx context.Context, db *sql.DB, name string) (*LockHolder, error) {
	var id sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT IS_USED_LOCK(?)`, name).Scan(&id); err != nil {
		return nil, fmt.Errorf("router: reading the holder of the group lock: %w", err)
	}
	if !id.Valid {
		return nil, nil
	}
	h := &LockHolder{Connection: "mysql connection " + strconv.FormatInt(id.Int64, 10)}
	var host sql.NullString
	err := db.QueryRowContext(ctx, `SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = ?`, id.Int64).Scan(&host)
	if err == nil && host.Valid {
		h.Host = host.String
		if i := strings.LastIndexByte(h.Host, ':'); i > 0 {
			h.Host = h.Host[:i] // the client's port says nothing about the process
		}
	}
	return h, nil // without the PROCESS privilege another connection is not listed
}

// Names of the leadership lock: derived from the outbox and consumer group, distinct
// from the batch lock of outbox.Reader.
func leaderLockKey(cfg outbox.Config) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("millrace/leader/" + cfg.Name + "/" + cfg.ConsumerGroup))
	return int64(h.Sum64())
}

func leaderLockName(cfg outbox.Config) string {
	return fmt.Sprintf("millrace-leader-%016x", uint64(leaderLockKey(cfg)))
}

// applicationName is the label of the holder's lock connection on PostgreSQL:
// "millrace pid=4242 t=1767322800 host=web-1", cut to PostgreSQL's 63 bytes (the
// host name goes last, so only it can be cut).
func applicationName(host string, pid int, since time.Time) string {
	s := fmt.Sprintf("millrace pid=%d t=%d host=%s", pid, since.Unix(), host)
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

func parseApplicationName(s string) LockHolder {
	var h LockHolder
	rest, ok := strings.CutPrefix(s, "millrace ")
	if !ok {
		return h
	}
	if i := strings.Index(rest, "host="); i >= 0 {
		h.Host, rest = rest[i+len("host="):], rest[:i]
	}
	for _, f := range strings.Fields(rest) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "pid":
			h.PID, _ = strconv.Atoi(v)
		case "t":
			if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
				h.Since = time.Unix(sec, 0).UTC()
			}
		}
	}
	return h
}

// leader is a forwarder's hold on its consumer group's leadership: a session lock
// (PostgreSQL pg_try_advisory_lock, MySQL GET_LOCK) on a connection of its own,
// kept for as long as the forwarder runs. Standbys try to take it every
// LockPollInterval and read nothing meanwhile; when the holder stops, or its
// connection breaks, the database releases the lock and a standby takes over. The
// batch lock of outbox.Reader still guards every batch: two forwarders that both
// believe they lead (a connection lost unnoticed, or a pooler such as PgBouncer
// in transaction mode, which cannot keep a session lock) still never interleave.
type leader struct {
	db      *sql.DB
	cfg     outbox.Config
	host    string
	pid     int
	conn    *sql.Conn // holds the lock; nil when not held
	since   time.Time // when the lock was taken
	checked time.Time // when conn was last seen alive
}

// leaderCheckInterval is how often the holder checks that its lock connection is
// alive (a ping), and so that it still holds the lock.
const leaderCheckInterval = time.Second

func newLeader(db *sql.DB, cfg outbox.Config) *leader {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return &leader{db: db, cfg: cfg, host: host, pid: os.Getpid()}
}

// ensure takes the lock if it is free and reports whether this forwarder holds it.
// lost is true when a lock held before was lost (its connection broke).
func (l *leader) ensure(ctx context.Context) (held, lost bool, err error) {
	if l.conn != nil {
		if time.Since(l.checked) < leaderCheckInterval {
			return true, false, nil
		}
		if err := l.conn.PingContext(ctx); err != nil {
			if ctx.Err() != nil {
				return true, false, ctx.Err()
			}
			l.release()
			return false, true, nil
		}
		l.checked = time.Now()
		return true, false, nil
	}
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return false, false, err
	}
	var ok bool
	if l.cfg.Dialect == outbox.MySQL {
		var got sql.NullInt64
		err = conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, 0)`, leaderLockName(l.cfg)).Scan(&got)
		ok = got.Valid && got.Int64 == 1
	} else {
		err = conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, leaderLockKey(l.cfg)).Scan(&ok)
	}
	if err == nil && ok && l.cfg.Dialect == outbox.Postgres {
		_, err = conn.ExecContext(ctx, `SELECT set_config('application_name', $1, false)`,
			applicationName(l.host, l.pid, time.Now()))
	}
	if err != nil || !ok {
		discard(conn)
		return false, false, err
	}
	l.conn, l.since, l.checked = conn, time.Now(), time.Now()
	return true, false, nil
}

// release gives the lock up. The connection is closed rather than returned to the
// pool, which releases a session lock whatever state the connection is in.
func (l *leader) release() {
	if l.conn != nil {
		discard(l.conn)
		l.conn, l.since = nil, time.Time{}
	}
}

// discard closes conn's underlying connection instead of returning it to the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// leading keeps or takes the consumer group's leadership before a batch and
// reports whether this forwarder leads. When it does not, it has waited: a
// standby LockPollInterval, after a database failure retryWait (which doubles up
// to RetryMax). It returns false at once when ctx ends.
func (f *Forwarder) leading(ctx context.Context, retryWait *time.Duration) bool {
	held, lost, err := f.lead.ensure(ctx)
	if ctx.Err() != nil {
		return false
	}
	f.mu.Lock()
	was, enteringStandby := f.active, !held && err == nil && f.state != StateStandby
	f.mu.Unlock()
	var holder *LockHolder
	if held != was || enteringStandby {
		// A change of role: name the new holder at once, with the role, rather
		// than at the next StatsInterval.
		holder, _ = ReadLockHolder(ctx, f.cfg.DB, f.cfg.Outbox)
	}
	f.mu.Lock()
	f.active, f.activeSince = held, f.lead.since
	if holder != nil {
		f.holder = holder
	}
	f.mu.Unlock()
	switch {
	case err != nil:
		err = fmt.Errorf("take the group lock: %w", err)
		f.failed(StateRetrying, err)
		wait := *retryWait
		*retryWait = min(*retryWait*2, f.cfg.RetryMax)
		f.log.Warn().Err(err).Dur("retry_in", wait).Msg("cannot reach the database for the group lock, retrying")
		sleep(ctx, wait)
		return false
	case held:
		if !was {
			f.log.Info().Str("consumer_group", f.cfg.Outbox.ConsumerGroup).Msg("active: this forwarder holds the group lock")
		}
		return true
	}
	if lost {
		f.log.Warn().Msg("lost the group lock (its connection broke): standing by")
	}
	if f.State() != StateStandby {
		f.recovered()
		f.setState(StateStandby)
		ev := f.log.Info().Str("consumer_group", f.cfg.Outbox.ConsumerGroup)
		if h := f.Stats().Holder; h != nil {
			ev = ev.Str("holder", h.String())
		}
		ev.Msg("standby: another forwarder holds the group lock")
	}
	sleep(ctx, f.cfg.Outbox.LockPollInterval)
	return false
}

// State returns what the forwarder is doing now.
func (f *Forwarder) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

// stepDown releases the leadership when Run returns.
func (f *Forwarder) stepDown() {
	f.lead.release()
	f.mu.Lock()
	f.active, f.activeSince = false, time.Time{}
	f.mu.Unlock()
}
