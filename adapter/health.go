package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// ErrUnhealthy is matched by every error HealthCheck returns because of the
// publisher's own state (a fatal failure, a high error rate, an unreachable broker).
var ErrUnhealthy = errors.New("adapter: publisher unhealthy")

// HealthCheck reports whether the publisher can be expected to publish. It fails
// after Close (ErrClosed), after a fatal failure until a publish succeeds again, when
// the share of failed attempts exceeds HealthMaxErrorRate with at least
// HealthMinSamples attempts counted, and when the broker check (Config.BrokerCheck or
// the inner publisher's Ping) fails within BrokerCheckTimeout.
//
// The error rate counts the attempts of the last HealthWindow made since the last
// clean attempt (one in which every message went through): a clean attempt shows
// that the publisher works again, so the failures of an outage that has ended stop
// counting at once. A publisher that keeps failing part of its messages never makes
// a clean attempt, and its rate counts over the whole window.
func (p *Publisher) HealthCheck(ctx context.Context) error {
	if p.Closed() {
		return ErrClosed
	}
	if err := p.health.fatal(); err != nil {
		return fmt.Errorf("%w: fatal failure: %v", ErrUnhealthy, err)
	}
	if total, failed := p.health.counts(time.Now()); total >= p.cfg.HealthMinSamples && total > 0 {
		if rate := float64(failed) / float64(total); rate > p.cfg.HealthMaxErrorRate {
			return fmt.Errorf("%w: error rate %.0f%% over the last %v (%d of %d attempts failed, limit %.0f%%)",
				ErrUnhealthy, rate*100, p.cfg.HealthWindow, failed, total, p.cfg.HealthMaxErrorRate*100)
		}
	}
	if p.cfg.BrokerCheck != nil {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.BrokerCheckTimeout)
		defer cancel()
		if err := p.cfg.BrokerCheck(ctx); err != nil {
			return fmt.Errorf("%w: broker unreachable: %w", ErrUnhealthy, err)
		}
	}
	return nil
}

// LivenessHandler answers Kubernetes liveness probes: 200 while the publisher is open,
// 503 once it is closed. It does not depend on the broker, so a broker outage does
// not restart the process.
func (p *Publisher) LivenessHandler() http.Handler {
	return HealthHandler(func(context.Context) error {
		if p.Closed() {
			return ErrClosed
		}
		return nil
	})
}

// ReadinessHandler answers Kubernetes readiness probes with HealthCheck: 200 when
// healthy, 503 with the reason otherwise.
func (p *Publisher) ReadinessHandler() http.Handler { return HealthHandler(p.HealthCheck) }

// HealthStatus is the JSON body of the health handlers.
type HealthStatus struct {
	Status string `json:"status"`           // "ok" or "unavailable"
	Reason string `json:"reason,omitempty"` // why it is unavailable
}

// HealthHandler returns an http.Handler that runs check with the request's context
// and answers JSON: 200 {"status":"ok"}, or 503 {"status":"unavailable","reason":...}.
func HealthHandler(check func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, code := HealthStatus{Status: "ok"}, http.StatusOK
		if err := check(r.Context()); err != nil {
			st, code = HealthStatus{Status: "unavailable", Reason: err.Error()}, http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(st)
	})
}

// healthBuckets is the number of buckets of the error-rate window.
const healthBuckets = 10

// health keeps the outcomes of recent attempts in a ring of time buckets, emptied
// by a clean attempt, and the last fatal failure until a success clears it.
type health struct {
	mu       sync.Mutex
	width    time.Duration
	buckets  [healthBuckets]healthBucket
	fatalErr error
}

type healthBucket struct {
	slot     int64 // which period of width this bucket counts
	ok, fail int
}

func (h *health) init(window time.Duration) {
	h.width = max(window/healthBuckets, time.Millisecond)
}

func (h *health) record(now time.Time, ok, fail int) {
	slot := now.UnixNano() / int64(h.width)
	h.mu.Lock()
	if ok > 0 && fail == 0 {
		// A clean attempt: the failures before it no longer describe the publisher.
		h.buckets = [healthBuckets]healthBucket{}
	}
	b := &h.buckets[slot%healthBuckets]
	if b.slot != slot {
		*b = healthBucket{slot: slot}
	}
	b.ok += ok
	b.fail += fail
	if ok > 0 {
		h.fatalErr = nil
	}
	h.mu.Unlock()
}

func (h *health) counts(now time.Time) (total, failed int) {
	slot := now.UnixNano() / int64(h.width)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.buckets {
		if b.slot > slot-healthBuckets && b.slot <= slot {
			total += b.ok + b.fail
			failed += b.fail
		}
	}
	return total, failed
}

func (h *health) setFatal(err error) {
	h.mu.Lock()
	h.fatalErr = err
	h.mu.Unlock()
}

func (h *health) fatal() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fatalErr
}
