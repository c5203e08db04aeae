// Package dbtest opens the real databases that integration tests run against.
//
// Tests find PostgreSQL and MySQL/MariaDB through environment variables with local
// defaults. When a database cannot be reached the test is skipped, unless the CI
// environment variable is set, in which case it fails: in CI a missing service is a
// broken build, never a silently green one.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	// Database drivers used by the tests: pgx registers "pgx", go-sql-driver "mysql".
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// Default DSNs of the local test databases of the development machine.
const (
	DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultMySQLDSN    = "root@tcp(127.0.0.1:3306)/test?parseTime=true&multiStatements=true"
)

// PostgresDSN returns POSTGRES_DSN or DefaultPostgresDSN.
func PostgresDSN() string { return envOr("POSTGRES_DSN", DefaultPostgresDSN) }

// MySQLDSN returns MYSQL_DSN or DefaultMySQLDSN (go-sql-driver format).
func MySQLDSN() string { return envOr("MYSQL_DSN", DefaultMySQLDSN) }

// Postgres opens the PostgreSQL test database and closes it when the test ends.
func Postgres(tb testing.TB) *sql.DB { return open(tb, "pgx", PostgresDSN()) }

// PostgresDatabase opens another database of the PostgreSQL test server (the
// database of PostgresDSN replaced by name) and closes it when the test ends.
func PostgresDatabase(tb testing.TB, name string) *sql.DB {
	tb.Helper()
	u, err := url.Parse(PostgresDSN())
	if err != nil {
		tb.Fatalf("POSTGRES_DSN is not a URL: %v", err)
	}
	u.Path = "/" + name
	return open(tb, "pgx", u.String())
}

// MySQL opens the MySQL/MariaDB test database and closes it when the test ends.
func MySQL(tb testing.TB) *sql.DB { return open(tb, "mysql", MySQLDSN()) }

// Unavailable skips the test, or fails it when CI is set, because a service it needs
// is missing.
func Unavailable(tb testing.TB, service string, err error) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s is required in CI but unavailable: %v", service, err)
	}
	tb.Skipf("%s unavailable (set CI to make this a failure): %v", service, err)
}

// UniqueName returns prefix followed by a random suffix, usable as a table or topic
// name, so that tests sharing one database or broker never see each other's rows.
func UniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

func open(tb testing.TB, driver, dsn string) *sql.DB {
	tb.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		tb.Fatalf("open %s: %v", driver, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		Unavailable(tb, driver+" database", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
