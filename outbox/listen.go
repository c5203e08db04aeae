package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// Reconnection backoff of Listen.
const (
	listenMinBackoff = 100 * time.Millisecond
	listenMaxBackoff = 5 * time.Second
)

// Listen wakes a reader when events are committed (PostgreSQL only). It takes a
// dedicated connection from db, which must use the pgx stdlib driver ("pgx"), runs
// LISTEN on Config.NotifyChannel and returns a channel that receives a signal after
// each notification. Signals are coalesced: the channel has a buffer of one and a
// signal is dropped when one is already waiting, so a reader drains the outbox
// after every receive rather than counting signals. A rolled-back transaction sends
// nothing.
//
// The first connection is made before Listen returns, and its error is returned.
// After a connection error Listen reconnects with backoff (100ms doubling up to 5s)
// and sends a signal once listening again, because notifications may have been
// missed meanwhile. When ctx ends the connection is discarded (never returned to the
// pool still listening) and then the channel is closed.
//
// On MySQL it returns ErrNotSupported: readers poll there.
func Listen(ctx context.Context, db *sql.DB, cfg Config) (<-chan struct{}, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if cfg.Dialect != Postgres {
		return nil, fmt.Errorf("outbox: Listen on %v: %w", cfg.Dialect, ErrNotSupported)
	}
	if db == nil {
		return nil, errors.New("outbox: Listen: db is nil")
	}
	l := &listener{db: db, channel: cfg.NotifyChannel, c: make(chan struct{}, 1)}
	conn, err := l.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("outbox: Listen on %q: %w", cfg.NotifyChannel, err)
	}
	go l.run(ctx, conn)
	return l.c, nil
}

type listener struct {
	db      *sql.DB
	channel string
	c       chan struct{}
}

func (l *listener) signal() {
	select {
	case l.c <- struct{}{}:
	default:
	}
}

// connect takes a connection from the pool and runs LISTEN on it.
func (l *listener) connect(ctx context.Context) (*sql.Conn, error) {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("driver connection is %T, want the pgx stdlib driver", dc)
		}
		_, err := sc.Conn().Exec(ctx, `LISTEN "`+l.channel+`"`)
		return err
	})
	if err != nil {
		discard(conn)
		return nil, err
	}
	return conn, nil
}

func (l *listener) run(ctx context.Context, conn *sql.Conn) {
	defer close(l.c)
	backoff := listenMinBackoff
	for {
		if conn != nil {
			_ = conn.Raw(func(dc any) error {
				pc := dc.(*stdlib.Conn).Conn()
				for {
					if _, err := pc.WaitForNotification(ctx); err != nil {
						return err
					}
					backoff = listenMinBackoff
					l.signal()
				}
			})
			// Whether ctx ended or the connection broke, the connection is either
			// interrupted mid-wait or still listening: never reuse it.
			discard(conn)
			conn = nil
		}
		if ctx.Err() != nil {
			return
		}
		if sleepCtx(ctx, backoff) != nil {
			return
		}
		backoff = min(2*backoff, listenMaxBackoff)
		c, err := l.connect(ctx)
		if err != nil {
			continue
		}
		conn = c
		l.signal() // notifications may have been missed while disconnected
	}
}

// discard closes the connection instead of returning it to the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}
