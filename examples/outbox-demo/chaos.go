package main

import (
	"context"
	"sync"
	"time"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/router"
)

// Sizes of the poison event and of the limit it breaks.
const (
	// topicMaxMessageBytes is the demo topic's max.message.bytes: the broker
	// refuses a larger record batch with MESSAGE_TOO_LARGE, a permanent failure.
	// Orders are a few hundred bytes, and a batch to one partition carries at most
	// one event per customer (the router sends a customer's events in successive
	// calls), so ordinary batches stay far below it.
	topicMaxMessageBytes = 64 << 10
	// poisonBytes is the size of the poison event: above the topic's limit, below
	// the producer's own limit (adapter.KafkaConfig.MaxMessageBytes, 1 MiB), so that
	// it reaches the broker and the broker refuses it.
	poisonBytes = 128 << 10
)

// chaos injects the demo's two failures, at fixed points of the writing period:
// the broker outage centred on the middle, and the poison event before it (at a
// quarter, or halfway to the outage if that comes earlier).
type chaos struct {
	con    *console
	svc    *orderService
	kafka  *inProcessKafka // nil against KAFKA_BROKERS: no outage
	pub    *adapter.Publisher
	fwd    *router.Forwarder
	poison bool          // write the poison event
	outage time.Duration // how long the broker is cut; 0: no outage
	period time.Duration // the writing period the schedule is relative to

	mu     sync.Mutex
	result chaosResult
}

// chaosResult is what chaos did and saw.
type chaosResult struct {
	PoisonUUID     string        // "" when no poison event was written
	OutageDone     bool          // the broker was cut and restored
	Cut            bool          // the broker is cut now
	Retries        int64         // publisher retries from the cut until recovery
	FailedBatches  int64         // router batches failed in the same time
	RecoveredAfter time.Duration // from the restore to the first forwarded event
	CutAt          time.Time     // when the broker was cut
	RecoveredAt    time.Time     // when the router forwarded again after the restore
}

// run carries out the schedule. When stop is closed (the writers stopped), what
// has not started is skipped; when ctx ends, run restores the broker if it is cut
// and returns.
func (ch *chaos) run(ctx context.Context, stop <-chan struct{}) {
	start := time.Now()
	wait := func(at time.Duration) bool {
		t := time.NewTimer(time.Until(start.Add(at)))
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		}
	}

	cutAt := max(ch.period/2-ch.outage/2, 0)
	if ch.poison {
		if !wait(min(ch.period/4, cutAt/2)) {
			return
		}
		id, err := ch.svc.placePoison(ctx, poisonBytes)
		if err != nil {
			ch.con.Printf("chaos: could not write the poison event: %v", err)
		} else {
			ch.mu.Lock()
			ch.result.PoisonUUID = id
			ch.mu.Unlock()
			ch.con.Printf("chaos: wrote poison event %s: %d random bytes, over the topic's max.message.bytes (%d)",
				id, poisonBytes, topicMaxMessageBytes)
		}
	}

	if ch.kafka == nil || ch.outage <= 0 {
		return
	}
	if !wait(cutAt) {
		return
	}
	if !ch.whileForwarding(ctx, stop) {
		ch.con.Printf("chaos: no outage: the router had nothing to send before the writers stopped")
		return
	}
	retries, failures := ch.pub.Metrics().RetriesTotal, ch.fwd.Stats().BatchFailures
	ch.kafka.Cut()
	ch.setCut(true)
	ch.mu.Lock()
	ch.result.CutAt = time.Now()
	ch.mu.Unlock()
	ch.con.Printf("chaos: broker unreachable for %v (the proxy in front of it refuses connections)", ch.outage)
	t := time.NewTimer(ch.outage)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	if err := ch.kafka.Restore(); err != nil {
		ch.con.Printf("chaos: %v", err)
		return
	}
	ch.setCut(false)
	restored := time.Now()
	ch.con.Printf("chaos: broker reachable again")

	// Recovery: the router forwards again. It retries with backoff (router.Config
	// RetryInitial..RetryMax), so it notices the broker within about RetryMax.
	forwarded := ch.fwd.Stats().EventsForwarded
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// Recovered: no failure since a batch succeeded, and that batch forwarded
		// events, or found none to forward.
		st := ch.fwd.Stats()
		if st.FailingSince.IsZero() && (st.EventsForwarded > forwarded || st.State == router.StateIdle) {
			break
		}
		if time.Since(restored) > time.Minute {
			ch.con.Printf("chaos: the router has not recovered a minute after the restore (state %s)", st.State)
			return
		}
	}
	ch.mu.Lock()
	ch.result.OutageDone = true
	ch.result.Retries = ch.pub.Metrics().RetriesTotal - retries
	ch.result.FailedBatches = ch.fwd.Stats().BatchFailures - failures
	ch.result.RecoveredAfter = time.Since(restored)
	ch.result.RecoveredAt = time.Now()
	r := ch.result
	ch.mu.Unlock()
	ch.con.Printf("chaos: the router forwards again, %v after the restore (during the outage: %d publisher retries, %d failed batches to read again)",
		r.RecoveredAfter.Round(10*time.Millisecond), r.Retries, r.FailedBatches)
}

// whileForwarding waits until the router is publishing, so that the cut
// interrupts a publish call and the decorator's retries show. That is usually at
// once; but on PostgreSQL a transaction left open by any program on the same server
// holds the outbox back, and the router may have nothing to forward for a while.
// It returns false when stop is closed (the writers stopped) or ctx ends first.
func (ch *chaos) whileForwarding(ctx context.Context, stop <-chan struct{}) bool {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for ch.pub.Metrics().InFlight == 0 {
		select {
		case <-tick.C:
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func (ch *chaos) setCut(cut bool) {
	ch.mu.Lock()
	ch.result.Cut = cut
	ch.mu.Unlock()
}

// Result returns what chaos did so far.
func (ch *chaos) Result() chaosResult {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.result
}
