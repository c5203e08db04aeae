package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
)

// State is what a Forwarder is doing.
type State string

// States of a Forwarder.
const (
	StateStarting   State = "starting"
	StateStandby    State = "standby"    // waiting for the consumer group's lock
	StateIdle       State = "idle"       // nothing to forward; waiting for new events
	StateForwarding State = "forwarding" // publishing a batch
	StateRetrying   State = "retrying"   // backing off after a retriable failure
	StateFatal      State = "fatal"      // halted by a fatal failure; retrying slowly
	StateStopped    State = "stopped"
)

var allStates = []State{StateStarting, StateStandby, StateIdle, StateForwarding, StateRetrying, StateFatal, StateStopped}

// ErrAlreadyRunning is returned by Run while another Run of the same Forwarder runs.
var ErrAlreadyRunning = errors.New("router: forwarder already running")

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("router: forwarder closed")

// Forwarder forwards the events of an outbox to Kafka. Create it with NewForwarder
// and start it with Run; it is safe for concurrent use.
type Forwarder struct {
	cfg    Config
	reader *outbox.Reader
	log    zerolog.Logger
	prom   *promMetrics
	health interface {
		HealthCheck(context.Context) error
	} // the publisher's, when it has one

	forwarded   atomic.Int64
	batches     atomic.Int64
	deadLetters atomic.Int64
	failures    atomic.Int64

	mu           sync.Mutex
	state        State
	lastErr      error     // the failure that put the forwarder in StateRetrying or StateFatal
	failingSince time.Time // start of the current run of failures; zero when healthy
	halted       bool      // the current run of failures was logged as a fatal halt
	unhealthy    bool      // the last HealthCheck failed (its transitions are logged)
	backlog      outbox.Stats
	backlogErr   error
	running      bool
	inBatch      bool
	waitingLock  bool      // in reader.Begin: see runBatch
	lead         *leader   // used by Run's goroutine only
	active       bool      // holds the group's leadership lock (leader.go)
	activeSince  time.Time // when it took it
	holder       *LockHolder
	closed       bool
	cancel       context.CancelFunc // cancels the running Run
	done         chan struct{}      // closed when the running Run returns
}

// NewForwarder returns a Forwarder for cfg. It validates cfg (errors name the
// field); it does not touch the database until Run.
func NewForwarder(cfg Config) (*Forwarder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	reader, err := outbox.NewReader(cfg.DB, cfg.Outbox)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	f := &Forwarder{cfg: cfg, reader: reader, state: StateStarting, log: zerolog.Nop()}
	f.cfg.Outbox = reader.Config()
	f.lead = newLeader(cfg.DB, f.cfg.Outbox)
	if cfg.Logger != nil {
		f.log = cfg.Logger.With().Str("component", "router").Str("outbox", f.cfg.Outbox.Name).Logger()
	}
	if hc, ok := cfg.Publisher.(interface {
		HealthCheck(context.Context) error
	}); ok {
		f.health = hc
	}
	if cfg.Registerer != nil {
		prom, err := newPromMetrics(cfg.Registerer, f)
		if err != nil {
			return nil, err
		}
		f.prom = prom
	}
	return f, nil
}

// Run forwards events until ctx ends or Close is called, and then returns nil. An
// error is returned only when the forwarder cannot run at all (already running,
// closed). Failures while forwarding are retried, never returned: see the package
// documentation. When ctx ends in the middle of a batch, the batch is abandoned
// (rolled back) and its events are sent again by the next Run; Close instead lets
// the batch finish.
func (f *Forwarder) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.mu.Lock()
	switch {
	case f.closed:
		f.mu.Unlock()
		return ErrClosed
	case f.running:
		f.mu.Unlock()
		return ErrAlreadyRunning
	}
	f.running, f.cancel, f.done = true, cancel, make(chan struct{})
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running = false
		close(f.done)
		f.mu.Unlock()
		f.setState(StateStopped)
		f.log.Info().Int64("events_forwarded", f.forwarded.Load()).Int64("batches", f.batches.Load()).
			Int64("dead_letters", f.deadLetters.Load()).Msg("forwarder stopped")
	}()

	defer f.stepDown()

	var notify <-chan struct{}
	if f.cfg.Outbox.Dialect == outbox.Postgres && !f.cfg.DisableNotify {
		ch, err := outbox.Listen(ctx, f.cfg.DB, f.cfg.Outbox)
		if err != nil {
			f.log.Warn().Err(err).Msg("LISTEN/NOTIFY unavailable: polling only")
		} else {
			notify = ch
		}
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // stop the background loops before waiting for them
	wg.Go(func() { f.statsLoop(ctx) })
	if f.cfg.Retention > 0 {
		wg.Go(func() { f.retentionLoop(ctx) })
	}

	f.log.Info().Int("batch_size", f.cfg.BatchSize).Dur("poll_interval", f.cfg.PollInterval).
		Bool("notify", notify != nil).Str("consumer_group", f.cfg.Outbox.ConsumerGroup).Msg("forwarder started")

	retryWait := f.cfg.RetryInitial
	var recheck time.Duration // see idle
	for {
		if !f.leading(ctx, &retryWait) {
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		if !f.enterBatch(ctx) {
			return nil
		}
		n, class, err := f.runBatch(ctx)
		f.leaveBatch()
		if ctx.Err() != nil {
			return nil
		}

		var wait time.Duration
		switch {
		case err == nil && n == 0:
			f.recovered()
			f.setState(StateIdle)
			if !f.idle(ctx, notify, &recheck) {
				return nil
			}
			continue
		case err == nil:
			f.recovered()
			retryWait = f.cfg.RetryInitial
			continue
		case class == adapter.Fatal:
			wait = f.cfg.FatalRetryInterval
			// Error once, when forwarding halts; each later try that fails again is a warning.
			if f.failed(StateFatal, err) {
				f.log.Error().Err(err).Dur("retry_in", wait).Msg("forwarding halted by a fatal failure")
			} else {
				f.log.Warn().Err(err).Dur("retry_in", wait).Msg("forwarding still halted by a fatal failure")
			}
		default:
			f.failed(StateRetrying, err)
			wait = retryWait
			retryWait = min(retryWait*2, f.cfg.RetryMax)
			// Nothing is lost: the batch is read and sent again.
			f.log.Warn().Err(err).Str("class", class.String()).Dur("retry_in", wait).Msg("batch failed, retrying")
		}
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// enterBatch marks the start of a batch, unless the forwarder is closing.
func (f *Forwarder) enterBatch(ctx context.Context) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || ctx.Err() != nil {
		return false
	}
	f.inBatch = true
	return true
}

func (f *Forwarder) leaveBatch() {
	f.mu.Lock()
	f.inBatch = false
	closed := f.closed
	f.mu.Unlock()
	if closed {
		f.cancel()
	}
}

// idle waits for a notification, the poll interval, or the end of ctx.
//
// A notification says that a transaction committed events, but on PostgreSQL they
// may still be held back behind an older transaction that is open, and nothing
// notifies when that one ends. So after a notification the forwarder re-checks
// quickly (recheck: 25ms doubling up to PollInterval) while batches come back
// empty, instead of waiting a whole PollInterval.
func (f *Forwarder) idle(ctx context.Context, notify <-chan struct{}, recheck *time.Duration) bool {
	wait := f.cfg.PollInterval
	if *recheck > 0 {
		wait = min(*recheck, wait)
		if *recheck *= 2; *recheck >= f.cfg.PollInterval {
			*recheck = 0
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-notify:
		*recheck = 25 * time.Millisecond
	}
	return true
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runBatch reads one batch, forwards it and records the progress. It returns how
// many events the batch read and, when the batch stopped short, the class and the
// failure that stopped it.
func (f *Forwarder) runBatch(ctx context.Context) (_ int, class adapter.Class, err error) {
	// Standby only when the lock is not had at once: another forwarder holds it.
	f.mu.Lock()
	f.waitingLock = true
	f.mu.Unlock()
	standby := time.AfterFunc(2*f.cfg.Outbox.LockPollInterval, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.waitingLock {
			f.setStateLocked(StateStandby)
		}
	})
	batch, err := f.reader.Begin(ctx, f.cfg.BatchSize)
	standby.Stop()
	f.mu.Lock()
	f.waitingLock = false
	f.mu.Unlock()
	if err != nil {
		return 0, adapter.Retriable, fmt.Errorf("read outbox: %w", err)
	}
	defer func() { _ = batch.Rollback() }()
	events := batch.Events()
	if len(events) == 0 {
		return 0, 0, batch.Rollback()
	}
	f.setState(StateForwarding)
	ctx, span := f.startBatchSpan(ctx, events) // see trace.go
	defer func() { span.end(class, err) }()
	start := time.Now()
	res := f.publishWellFormed(ctx, batch, events)

	// Progress covers the longest prefix of events that were published or are to be
	// dead-lettered; what follows is read and sent again by the next batch.
	upTo := -1
	for i := range events {
		if !res.published[i] && res.permanent[i] == nil {
			break
		}
		upTo = i
	}
	dead := 0
	for i := 0; i <= upTo; i++ {
		if p := res.permanent[i]; p != nil && p.stored {
			dead++
		} else if p != nil {
			if err := batch.DeadLetter(ctx, events[i], p.Err, p.Class.String(), p.attempts); err != nil {
				return len(events), adapter.Retriable, f.keepProgress(ctx, batch, events, res, i, dead, fmt.Errorf("store dead letter: %w", err))
			}
			dead++
			f.log.Error().Str("event_uuid", events[i].UUID).Str("topic", events[i].Topic).
				Str("class", p.Class.String()).Int("attempts", p.attempts).Err(p.Err).
				Msg("event set aside as a dead letter")
		}
	}
	if upTo >= 0 {
		if err := batch.Commit(ctx, events[upTo].Position); err != nil {
			return len(events), adapter.Retriable, fmt.Errorf("record progress: %w", err)
		}
	}
	forwarded := 0
	for _, ok := range res.published {
		if ok {
			forwarded++
		}
	}
	f.forwarded.Add(int64(forwarded))
	f.batches.Add(1)
	f.deadLetters.Add(int64(dead))
	if f.prom != nil {
		f.prom.batch(len(events), forwarded, dead)
	}
	f.log.Debug().Int("events", len(events)).Int("forwarded", forwarded).Int("dead_letters", dead).
		Int("acked", upTo+1).Int("calls", res.calls).Dur("duration", time.Since(start)).Msg("batch forwarded")
	if res.err != nil {
		f.failures.Add(1)
		if f.prom != nil {
			f.prom.failure(res.class)
		}
		return len(events), res.class, res.err
	}
	return len(events), 0, nil
}

// failure is a permanent failure of one event.
type failure struct {
	adapter.FailedMessage
	attempts int
	stored   bool // already stored as a dead letter (a malformed event)
}

type publishResult struct {
	published []bool
	permanent []*failure
	calls     int
	class     adapter.Class // of err
	err       error         // the failure that stopped the batch, nil if none did
}

// publish sends events in one round: one Publish call per topic of the batch, all
// calls at once, each holding its topic's events in batch order. The Kafka
// publisher (adapter.KafkaPublisher) group-commits concurrent calls, so a batch
// costs about one round trip whatever its keys; it keeps each key's events in call
// order and reports a key's failed events as a suffix, which the decorator resends
// in order. The earliest blocking failure (retriable after the publisher's budget,
// fatal, canceled) stops the batch: progress is committed only up to it.
func (f *Forwarder) publish(ctx context.Context, events []outbox.Event) publishResult {
	res := publishResult{
		published: make([]bool, len(events)),
		permanent: make([]*failure, len(events)),
	}
	type topicCall struct {
		topic string
		idx   []int
		msgs  []*message.Message
		block *blockingFailure
	}
	var calls []*topicCall
	byTopic := make(map[string]*topicCall)
	for i, ev := range events {
		c := byTopic[ev.Topic]
		if c == nil {
			c = &topicCall{topic: ev.Topic}
			byTopic[ev.Topic] = c
			calls = append(calls, c)
		}
		m := ev.Message()
		m.SetContext(ctx)
		c.idx = append(c.idx, i)
		c.msgs = append(c.msgs, m)
	}
	res.calls = len(calls)
	if len(calls) == 1 {
		calls[0].block = f.call(calls[0].topic, calls[0].idx, calls[0].msgs, &res)
	} else {
		// The calls write res only at their own events' indexes.
		var wg sync.WaitGroup
		for _, c := range calls {
			wg.Go(func() { c.block = f.call(c.topic, c.idx, c.msgs, &res) })
		}
		wg.Wait()
	}
	var first *blockingFailure
	for _, c := range calls {
		if c.block != nil && (first == nil || c.block.event < first.event) {
			first = c.block
		}
	}
	if first != nil {
		res.class, res.err = first.class, first.err
	}
	return res
}

// blockingFailure is the earliest failure of a call that stops the batch.
type blockingFailure struct {
	event int // index in the batch
	class adapter.Class
	err   error
}

// call publishes msgs (the events at idx) and records the outcome in res, at the
// indexes idx only. It returns the earliest failure that stops the batch, nil if
// none does.
func (f *Forwarder) call(topic string, idx []int, msgs []*message.Message, res *publishResult) *blockingFailure {
	err := f.cfg.Publisher.Publish(topic, msgs...)
	if err == nil {
		for _, i := range idx {
			res.published[i] = true
		}
		return nil
	}
	var pe *adapter.PublishError
	if !errors.As(err, &pe) || len(pe.Failed) == 0 {
		// A publisher without per-message results: the whole call failed.
		class := adapter.Classify(err)
		pe = &adapter.PublishError{Topic: topic, Attempts: 1, Class: class, Err: err}
		for j := range msgs {
			pe.Failed = append(pe.Failed, adapter.FailedMessage{Index: j, UUID: msgs[j].UUID, Class: class, Err: err})
		}
	}
	failed := make(map[int]bool, len(pe.Failed))
	var block *adapter.FailedMessage // the earliest failure that stops the batch
	for k := range pe.Failed {
		fm := &pe.Failed[k]
		failed[fm.Index] = true
		if fm.Class == adapter.Permanent {
			res.permanent[idx[fm.Index]] = &failure{FailedMessage: *fm, attempts: pe.Attempts}
			continue
		}
		if block == nil || idx[fm.Index] < idx[block.Index] {
			block = fm
		}
	}
	for j, i := range idx {
		if !failed[j] {
			res.published[i] = true
		}
	}
	if block == nil {
		return nil
	}
	return &blockingFailure{
		event: idx[block.Index],
		class: block.Class,
		err:   fmt.Errorf("publish to %q: event %s: %w", topic, block.UUID, block.Err),
	}
}

// Close stops the forwarder gracefully: a batch in flight is finished (up to
// CloseTimeout, then abandoned and its events sent again later), no new batch is
// started, and Run returns. Close does not close the Publisher or the DB, which
// belong to the caller. It is idempotent.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	running, inBatch, done, cancel := f.running, f.inBatch, f.done, f.cancel
	f.mu.Unlock()
	if !running {
		return nil
	}
	if !inBatch {
		cancel()
	}
	select {
	case <-done:
	case <-time.After(f.cfg.CloseTimeout):
		f.log.Warn().Dur("close_timeout", f.cfg.CloseTimeout).Msg("close timeout: abandoning the batch in flight")
		cancel()
		<-done
	}
	return nil
}

func (f *Forwarder) setState(s State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setStateLocked(s)
}

// setStateLocked sets the state; f.mu is held, which also orders the gauge updates.
func (f *Forwarder) setStateLocked(s State) {
	f.state = s
	if f.prom != nil {
		f.prom.setState(s)
	}
}

// failed records a failure that leaves the forwarder in state s. It reports whether
// the failure is the first fatal one of the current run of failures, for the caller
// to log at error once.
func (f *Forwarder) failed(s State, err error) (newlyHalted bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setStateLocked(s)
	f.lastErr = err
	if f.failingSince.IsZero() {
		f.failingSince = time.Now()
	}
	if s == StateFatal && !f.halted {
		f.halted, newlyHalted = true, true
	}
	return newlyHalted
}

// recovered records a batch that went through. The end of a run of failures is
// logged at info.
func (f *Forwarder) recovered() {
	f.mu.Lock()
	since := f.failingSince
	f.lastErr, f.failingSince, f.halted = nil, time.Time{}, false
	f.mu.Unlock()
	if !since.IsZero() {
		f.log.Info().Dur("failed_for", time.Since(since)).Msg("forwarding recovered")
	}
}
