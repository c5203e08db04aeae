package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/rs/zerolog"

	"github.com/millrace/millrace/outbox"
)

// errMissingSchema is returned when the outbox tables do not exist.
var errMissingSchema = errors.New("the outbox tables do not exist: run 'relay migrate' first (or start run with RELAY_MIGRATE=true)")

// openDB opens the database of the settings and waits until it answers, for at most
// RELAY_CONNECT_TIMEOUT: a database that is still starting is waited for, while a
// refused login or an unknown database fails at once. Errors name the database by
// its masked URL.
func openDB(ctx context.Context, cfg *config, log zerolog.Logger) (*sql.DB, error) {
	d := cfg.database
	var db *sql.DB
	switch d.driver {
	case "mysql":
		conn, err := mysql.NewConnector(d.mysql)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", d.masked, err)
		}
		db = sql.OpenDB(conn)
	default:
		var err error
		if db, err = sql.Open(d.driver, d.dsn); err != nil {
			return nil, fmt.Errorf("database %s: %w", d.masked, err)
		}
	}
	// A batch holds one connection, the backlog reader, the retention job, LISTEN
	// and the health check one each: ten is plenty, and bounds the relay's share of
	// the database's connections.
	db.SetMaxOpenConns(10)
	db.SetMaxIdleConns(5)
	db.SetConnMaxIdleTime(5 * time.Minute)

	deadline := time.Now().Add(cfg.DB.ConnectTimeout)
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return db, nil
		}
		if permanentDBError(err) {
			_ = db.Close()
			return nil, fmt.Errorf("database %s refused the connection: %w", d.masked, err)
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			_ = db.Close()
			return nil, fmt.Errorf("database %s unreachable after %v (RELAY_CONNECT_TIMEOUT): %w",
				d.masked, cfg.DB.ConnectTimeout, err)
		}
		log.Warn().Err(err).Str("database", d.masked).Int("attempt", attempt).Dur("retry_in", wait).
			Msg("database unreachable, retrying")
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// permanentDBError reports whether err is an answer of the database that waiting
// cannot change.
func permanentDBError(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "28"): // invalid authorization: wrong user or password
			return true
		case pe.Code == "3D000": // the database does not exist
			return true
		case pe.Code == "42501": // insufficient privilege, e.g. no CONNECT on the database
			return true
		default: // starting up (57P03), too many connections (53300), ...: wait
			return false
		}
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1044, 1045, 1698: // access denied to the database, wrong user or password
			return true
		case 1049: // unknown database
			return true
		default: // too many connections (1040), server shutting down (1053), ...: wait
			return false
		}
	}
	return false // network errors: the database may be starting
}

// isMissingTable reports whether err says that a table does not exist.
func isMissingTable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "42P01" // undefined_table
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1146 // ER_NO_SUCH_TABLE
	}
	return false
}

// backlog reads the outbox's backlog, and says when the tables are missing.
func backlog(ctx context.Context, db *sql.DB, ocfg outbox.Config) (outbox.Stats, error) {
	r, err := outbox.NewReader(db, ocfg)
	if err != nil {
		return outbox.Stats{}, err
	}
	st, err := r.Stats(ctx)
	if err != nil && isMissingTable(err) {
		return st, fmt.Errorf("outbox %q: %w", ocfg.Name, errMissingSchema)
	}
	return st, err
}

// connect opens the database of cfg for the command name, printing a failure on
// standard error; it returns nil and the exit code when it fails.
func (a *app) connect(ctx context.Context, cfg *config, log zerolog.Logger, name string) (*sql.DB, int) {
	db, err := openDB(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(a.stderr, "relay %s: %v\n", name, err)
		return nil, exitFailure
	}
	return db, exitOK
}
