package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/millrace/millrace/outbox"
)

// Stats is a snapshot of a Forwarder.
type Stats struct {
	// State is what the forwarder is doing now.
	State State
	// LastError is the failure behind StateRetrying or StateFatal, "" otherwise.
	LastError string
	// FailingSince is when the current run of failures started; zero when healthy.
	FailingSince time.Time
	// EventsForwarded counts events written to Kafka by this forwarder (an event
	// sent again after an interrupted batch counts again).
	EventsForwarded int64
	// Batches counts the non-empty batches handled.
	Batches int64
	// DeadLetters counts events this forwarder set aside as dead letters.
	DeadLetters int64
	// BatchFailures counts batches stopped by a failure and tried again. A batch
	// failure loses nothing: the events not acknowledged by Kafka are read and sent
	// again by the next batch.
	BatchFailures int64
	// Backlog is the outbox's backlog as last read (every StatsInterval).
	Backlog outbox.Stats
	// Active reports whether this forwarder holds the consumer group's lock: it
	// forwards, while the others stand by (State is StateStandby). ActiveSince is
	// when it took the lock.
	Active      bool
	ActiveSince time.Time
	// Holder is the forwarder holding the group's lock as last read (every
	// StatsInterval): this one when Active, nil when none holds it.
	Holder *LockHolder
}

// Stats returns a snapshot of the forwarder's counters and of the backlog as last
// read from the database.
func (f *Forwarder) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Stats{
		State:           f.state,
		FailingSince:    f.failingSince,
		EventsForwarded: f.forwarded.Load(),
		Batches:         f.batches.Load(),
		DeadLetters:     f.deadLetters.Load(),
		BatchFailures:   f.failures.Load(),
		Backlog:         f.backlog,
		Active:          f.active,
		ActiveSince:     f.activeSince,
		Holder:          f.holder,
	}
	if f.lastErr != nil {
		s.LastError = f.lastErr.Error()
	}
	return s
}

// ErrUnhealthy is matched by every error HealthCheck returns.
var ErrUnhealthy = errors.New("router: forwarder unhealthy")

// HealthCheck reports whether the forwarder is doing its job. A change of its answer
// is logged once: at error when it turns bad (with every reason), at info when it
// is good again; a check whose ctx ended is not taken as a change.
//
// It fails while halted
// by a fatal failure, when retriable failures have lasted longer than
// UnhealthyAfter, when the database does not answer a ping within
// HealthCheckTimeout, when the oldest pending event is older than MaxLag, and when
// the publisher's own HealthCheck fails (the adapter decorator's checks the broker
// and its error rate). The error names every reason. Each rule ends with its cause:
// a batch that goes through ends the run of failures, and the decorator's error
// rate forgets an outage at its first clean attempt.
func (f *Forwarder) HealthCheck(ctx context.Context) error {
	f.mu.Lock()
	state, lastErr, since, backlog, backlogErr := f.state, f.lastErr, f.failingSince, f.backlog, f.backlogErr
	f.mu.Unlock()

	var errs []error
	if state == StateFatal && lastErr != nil {
		errs = append(errs, fmt.Errorf("halted by a fatal failure: %w", lastErr))
	} else if !since.IsZero() && time.Since(since) > f.cfg.UnhealthyAfter && lastErr != nil {
		errs = append(errs, fmt.Errorf("failing for %v: %w", time.Since(since).Round(time.Second), lastErr))
	}
	pingCtx, cancel := context.WithTimeout(ctx, f.cfg.HealthCheckTimeout)
	defer cancel()
	if err := f.cfg.DB.PingContext(pingCtx); err != nil {
		errs = append(errs, fmt.Errorf("database unreachable: %w", err))
	} else if backlogErr != nil {
		errs = append(errs, fmt.Errorf("reading the backlog: %w", backlogErr))
	}
	if f.cfg.MaxLag > 0 && backlog.OldestPending > f.cfg.MaxLag {
		errs = append(errs, fmt.Errorf("lag %v exceeds %v (%d events pending)",
			backlog.OldestPending.Round(time.Second), f.cfg.MaxLag, backlog.Pending))
	}
	if f.health != nil {
		if err := f.health.HealthCheck(ctx); err != nil {
			errs = append(errs, fmt.Errorf("publisher: %w", err))
		}
	}
	var err error
	if len(errs) > 0 {
		err = fmt.Errorf("%w: %w", ErrUnhealthy, errors.Join(errs...))
	}
	if ctx.Err() == nil {
		f.noteHealth(err)
	}
	return err
}

// noteHealth logs a change of the answer of HealthCheck.
func (f *Forwarder) noteHealth(err error) {
	f.mu.Lock()
	was := f.unhealthy
	f.unhealthy = err != nil
	f.mu.Unlock()
	switch {
	case err != nil && !was:
		f.log.Error().Err(err).Msg("forwarder unhealthy")
	case err == nil && was:
		f.log.Info().Msg("forwarder healthy again")
	}
}

// Alive reports whether Run is running: the liveness of a forwarding process. It
// does not depend on the database or the broker, so an outage does not restart the
// process.
func (f *Forwarder) Alive() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.running {
		return errors.New("router: forwarder is not running")
	}
	return nil
}

// statsLoop reads the backlog every StatsInterval.
func (f *Forwarder) statsLoop(ctx context.Context) {
	t := time.NewTicker(f.cfg.StatsInterval)
	defer t.Stop()
	for {
		st, err := f.reader.Stats(ctx)
		if ctx.Err() != nil {
			return
		}
		holder, herr := ReadLockHolder(ctx, f.cfg.DB, f.cfg.Outbox)
		if ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		f.backlogErr = err
		if err == nil {
			f.backlog = st
		}
		if herr == nil {
			f.holder = holder
		}
		f.mu.Unlock()
		if herr != nil {
			f.log.Debug().Err(herr).Msg("reading the holder of the group lock failed")
		}
		if err != nil {
			f.log.Warn().Err(err).Msg("reading the backlog failed")
		} else if f.prom != nil {
			f.prom.backlog(st)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// retentionLoop deletes forwarded events older than Retention every
// RetentionInterval.
func (f *Forwarder) retentionLoop(ctx context.Context) {
	t := time.NewTicker(f.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := outbox.Cleanup(ctx, f.cfg.DB, f.cfg.Outbox, f.cfg.Retention, f.cfg.RetentionBatch)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			f.log.Warn().Err(err).Msg("deleting forwarded events failed")
		} else if n > 0 {
			f.log.Debug().Int("deleted", n).Dur("retention", f.cfg.Retention).Msg("deleted forwarded events")
		}
	}
}
