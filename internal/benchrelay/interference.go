package benchrelay

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// interference watches the server for transactions of other sessions that hold a
// transaction id. Both paths read only events of transactions older than the oldest
// one still running on the whole PostgreSQL server (pg_snapshot_xmin), so such a
// transaction, even in another database, holds back every event committed after it
// started: on a shared server it shows up as latency that neither relay causes.
type interference struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	maxAge time.Duration
	what   string
	err    error
}

// interferenceEvery is the sampling period.
const interferenceEvery = 50 * time.Millisecond

func watchInterference(db *sql.DB) *interference {
	ctx, cancel := context.WithCancel(context.Background())
	w := &interference{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(interferenceEvery)
		defer t.Stop()
		for {
			var (
				age       float64
				app, what string
			)
			err := db.QueryRowContext(ctx, `SELECT EXTRACT(EPOCH FROM now() - xact_start)::float8,
	COALESCE(application_name, ''), COALESCE(datname, '') || ': ' || COALESCE(left(regexp_replace(query, '\s+', ' ', 'g'), 60), '')
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND COALESCE(application_name, '') <> $1
ORDER BY xact_start LIMIT 1`, applicationName).Scan(&age, &app, &what)
			w.mu.Lock()
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				if ctx.Err() == nil && w.err == nil {
					w.err = err
				}
			default:
				if d := time.Duration(age * float64(time.Second)); d > w.maxAge {
					w.maxAge = d
					w.what = fmt.Sprintf("application %q, %s", app, what)
				}
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// stop ends the watch and returns the age of the oldest foreign transaction seen,
// and what it was running.
func (w *interference) stop() (time.Duration, string, error) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxAge, w.what, w.err
}
