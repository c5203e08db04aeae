package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/millrace/millrace/outbox"
)

// defaultDatabaseURL is the local PostgreSQL of a development machine.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// database is an open database and what the demo needs to know about it.
type database struct {
	*sql.DB
	dialect outbox.Dialect
	display string // the URL without its password, for messages
}

// openDatabase opens rawURL: postgres://... (or any pgx connection string) with the
// pgx driver, whose LISTEN/NOTIFY wakes the router at each commit, or
// mysql://user:pass@host:port/db for MySQL 8 / MariaDB, converted to a go-sql-driver
// configuration with parseTime=true. It checks that the database answers.
func openDatabase(ctx context.Context, rawURL string) (*database, error) {
	d := &database{dialect: outbox.Postgres, display: redactURL(rawURL)}
	if strings.HasPrefix(rawURL, "mysql://") {
		mc, err := mysqlConfig(rawURL)
		if err != nil {
			return nil, fmt.Errorf("DATABASE_URL %s: %w", d.display, err)
		}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, fmt.Errorf("DATABASE_URL %s: %w", d.display, err)
		}
		d.DB, d.dialect = sql.OpenDB(conn), outbox.MySQL
	} else {
		db, err := sql.Open("pgx", rawURL)
		if err != nil {
			return nil, fmt.Errorf("DATABASE_URL %s: %w", d.display, err)
		}
		d.DB = db
	}
	// The writers, the router's batch, its backlog reader, LISTEN and the health
	// check each hold a connection at times: enough for the default 4 writers.
	d.SetMaxOpenConns(20)
	d.SetMaxIdleConns(20)

	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.PingContext(pingCtx); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("database %s does not answer (is it running? set DATABASE_URL): %w", d.display, err)
	}
	return d, nil
}

// mysqlConfig converts mysql://user:pass@host:port/db?params into a go-sql-driver
// configuration (user:pass@tcp(host:port)/db?params&parseTime=true).
func mysqlConfig(rawURL string) (*mysql.Config, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "3306")
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if u.Hostname() == "" || dbName == "" || u.User == nil {
		return nil, errors.New("want mysql://user:pass@host:port/db")
	}
	q := u.Query()
	if !q.Has("parseTime") {
		q.Set("parseTime", "true") // DATETIME and TIMESTAMP columns scan into time.Time
	}
	// ParseDSN applies the parameters as the driver documents them; the user and
	// password are set on the result, never written into a DSN string.
	mc, err := mysql.ParseDSN("tcp(" + host + ")/" + dbName + "?" + q.Encode())
	if err != nil {
		return nil, err
	}
	mc.User = u.User.Username()
	mc.Passwd, _ = u.User.Password()
	return mc, nil
}

// redactURL returns rawURL with its password replaced by "xxxxx".
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return "(DATABASE_URL)" // not a URL: it may hold a password anywhere
	}
	return u.Redacted()
}

// createOrdersTable creates the order service's own table: the business data that
// each transaction writes together with its event.
func createOrdersTable(ctx context.Context, db *database, table string) error {
	q := `CREATE TABLE IF NOT EXISTS ` + table + ` (
	id VARCHAR(36) NOT NULL PRIMARY KEY,
	customer VARCHAR(64) NOT NULL,
	amount_cents BIGINT NOT NULL,
	placed_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
)`
	if db.dialect == outbox.MySQL {
		q = `CREATE TABLE IF NOT EXISTS ` + table + ` (
	id VARCHAR(36) NOT NULL PRIMARY KEY,
	customer VARCHAR(64) NOT NULL,
	amount_cents BIGINT NOT NULL,
	placed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB`
	}
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	return nil
}

// dropTables drops the orders table and the outbox tables.
func dropTables(ctx context.Context, db *database, ocfg outbox.Config, ordersTable string) error {
	_, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+ordersTable)
	return errors.Join(err, outbox.DropSchema(ctx, db.DB, ocfg))
}
