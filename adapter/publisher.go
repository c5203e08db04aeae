package adapter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cenkalti/backoff/v5"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// Publisher decorates a Watermill message.Publisher with error classification,
// retries with jittered exponential backoff inside a time budget, metrics, health and a
// graceful Close. It is safe for concurrent use.
//
// Delivery is at-least-once: a message whose attempt failed after reaching the broker
// (a lost answer, a timeout) is sent again, so consumers must tolerate duplicates,
// for example by de-duplicating on the Watermill message UUID.
type Publisher struct {
	next    message.Publisher
	results ResultPublisher // next, when it reports per-message results
	cfg     Config
	log     *zerolog.Logger // nil: no logs
	tracer  trace.Tracer
	stats   stats
	prom    *promMetrics // nil: no Prometheus
	health  health

	// mu guards closed; inflight counts the Publish calls admitted before Close.
	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
	// abort is closed when Close stops waiting for in-flight calls: their retries end.
	abort chan struct{}
	// attemptMu is held shared around every call of next, and exclusively by Close
	// before it closes next, so that next is never used after its Close: sarama's
	// producer panics on a send after close.
	attemptMu   sync.RWMutex
	innerClosed bool

	closeOnce sync.Once
	closeErr  error
}

// NewPublisher returns next decorated according to cfg. It fails when cfg is invalid
// (the error names the field) or when the Prometheus collectors cannot be registered.
func NewPublisher(next message.Publisher, cfg Config) (*Publisher, error) {
	if next == nil {
		return nil, errors.New("adapter: NewPublisher: next publisher is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Publisher{
		next:  next,
		cfg:   cfg,
		log:   cfg.Logger,
		abort: make(chan struct{}),
	}
	p.tracer = newTracer(cfg.TracerProvider) // see trace.go
	p.results, _ = next.(ResultPublisher)
	p.health.init(cfg.HealthWindow)
	if cfg.Registerer != nil {
		prom, err := newPromMetrics(cfg.Registerer)
		if err != nil {
			return nil, err
		}
		p.prom = prom
	}
	if cfg.BrokerCheck == nil {
		if pinger, ok := next.(Pinger); ok {
			p.cfg.BrokerCheck = pinger.Ping
		}
	}
	return p, nil
}

// Decorator returns a message.PublisherDecorator that wraps publishers with
// NewPublisher(pub, cfg), for use with a Watermill message.Router
// (Router.AddPublisherDecorators). The router calls it once per handler, so an
// invalid cfg surfaces when the router starts; check it first with cfg.Validate.
// The decorated publishers are not reachable from the router: give cfg a Registerer
// to observe them.
func Decorator(cfg Config) message.PublisherDecorator {
	return func(pub message.Publisher) (message.Publisher, error) {
		return NewPublisher(pub, cfg)
	}
}

// Publish publishes msgs to topic through the inner publisher.
//
// A retriable failure is retried with jittered exponential backoff until MaxRetries
// retries were made or MaxElapsedTime has passed; a permanent or fatal failure is
// returned at once. When the inner publisher implements ResultPublisher only the
// messages that failed are sent again; otherwise the whole call is repeated. Waits
// between attempts end early when the context of a message still pending ends
// (the error then matches context.Canceled or context.DeadlineExceeded) or when Close
// gives up waiting (the error matches ErrClosed).
//
// A failure is returned as *PublishError. After Close, Publish fails with an error
// matching ErrClosed.
//
// Each call is an OpenTelemetry producer span, "send <topic>", child of the span in
// the first message's context, with every attempt and retry as a span event and,
// on failure, the class in AttrErrorClass. Messages without a traceparent metadata
// entry get the W3C trace context (TraceParentMetadata, TraceStateMetadata) of the
// span: the publish span's, or their own context's when it holds another span.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if !p.enter() {
		return &PublishError{Topic: topic, Class: Fatal, Err: ErrClosed}
	}
	defer p.inflight.Done()
	p.stats.inFlight.Add(1)
	defer p.stats.inFlight.Add(-1)

	start := time.Now()
	if p.prom != nil {
		p.prom.begin(topic)
	}
	sp := p.startSpan(topic, msgs) // see trace.go
	attempts, failed := p.publish(topic, msgs, start, sp)
	elapsed := time.Since(start)

	published := len(msgs) - len(failed)
	p.stats.record(published, elapsed)
	if p.prom != nil {
		p.prom.end(topic, published, elapsed)
	}
	if len(failed) == 0 {
		if p.log != nil {
			p.logSuccess(topic, msgs, attempts, elapsed)
		}
		return sp.end(attempts, nil)
	}
	return sp.end(attempts, p.fail(topic, msgs, attempts, failed, elapsed))
}

// enter admits a Publish call unless the publisher is closed.
func (p *Publisher) enter() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	return true
}

// publish runs the attempts of one call and returns how many were made and the
// messages that finally failed.
func (p *Publisher) publish(topic string, msgs []*message.Message, start time.Time, sp publishSpan) (int, []FailedMessage) {
	var failed []FailedMessage
	// pending holds the indexes of the messages still to publish; nil means all of msgs.
	var pending []int
	for i, m := range msgs {
		if m == nil {
			failed = append(failed, FailedMessage{Index: i, Class: Permanent, Err: fmt.Errorf("message %d: %w", i, ErrNilMessage)})
			continue
		}
		if err := m.Context().Err(); err != nil {
			failed = append(failed, FailedMessage{Index: i, UUID: m.UUID, Class: Canceled, Err: err})
		}
	}
	if len(failed) > 0 {
		pending = make([]int, 0, len(msgs))
		for i, m := range msgs {
			if m != nil && m.Context().Err() == nil {
				pending = append(pending, i)
			}
		}
		if len(pending) == 0 {
			return 0, failed
		}
	}

	var (
		bo       backoff.ExponentialBackOff
		boInit   bool
		attempts int
		deadline time.Time
	)
	if p.cfg.MaxElapsedTime > 0 {
		deadline = start.Add(p.cfg.MaxElapsedTime)
	}
	for {
		attempts++
		retry, final := p.attempt(topic, msgs, pending)
		sp.attempt(attempts, len(msgs), pending, retry, final)
		failed = append(failed, final...)
		if len(retry) == 0 {
			return attempts, failed
		}
		giveUp := func(err error, class Class) (int, []FailedMessage) {
			for _, f := range retry {
				if err != nil {
					f.Err, f.Class = err, class
				}
				failed = append(failed, f)
			}
			return attempts, failed
		}
		if p.cfg.MaxRetries < 0 || attempts > p.cfg.MaxRetries {
			return giveUp(nil, Retriable)
		}
		if !boInit {
			bo = backoff.ExponentialBackOff{
				InitialInterval:     p.cfg.InitialInterval,
				RandomizationFactor: max(p.cfg.RandomizationFactor, 0),
				Multiplier:          p.cfg.Multiplier,
				MaxInterval:         p.cfg.MaxInterval,
			}
			bo.Reset()
			boInit = true
		}
		wait := bo.NextBackOff()
		if !deadline.IsZero() && time.Until(deadline) <= wait {
			// The budget ends before the next attempt could start: stop now rather
			// than sleep for nothing.
			return giveUp(nil, Retriable)
		}
		p.stats.retries.Add(int64(len(retry)))
		if p.prom != nil {
			p.prom.retries(topic, len(retry))
		}
		if p.log != nil {
			p.logRetry(topic, msgs, retry, attempts, wait)
		}
		sp.retry(attempts, len(retry), wait)
		if err, class := p.wait(wait, msgs, retry); err != nil {
			return giveUp(err, class)
		}
		pending = pending[:0:0]
		for _, f := range retry {
			pending = append(pending, f.Index)
		}
	}
}

// attempt makes one attempt for the pending messages (all of msgs when pending is
// nil) and returns those to retry and those that failed for good.
func (p *Publisher) attempt(topic string, msgs []*message.Message, pending []int) (retry, final []FailedMessage) {
	batch := msgs
	if pending != nil {
		batch = make([]*message.Message, len(pending))
		for j, i := range pending {
			batch[j] = msgs[i]
		}
	}
	index := func(j int) int {
		if pending != nil {
			return pending[j]
		}
		return j
	}

	p.attemptMu.RLock()
	if p.innerClosed {
		p.attemptMu.RUnlock()
		for j := range batch {
			final = append(final, FailedMessage{Index: index(j), UUID: batch[j].UUID, Class: Fatal, Err: ErrClosed})
		}
		return nil, final
	}
	var errs []error
	if p.results != nil {
		errs = p.results.PublishResults(topic, batch...)
	} else if err := p.next.Publish(topic, batch...); err != nil {
		errs = make([]error, len(batch))
		for j := range errs {
			errs[j] = err
		}
	}
	p.attemptMu.RUnlock()

	okCount, failCount := len(batch), 0
	var fatalErr error
	var byClass [numClasses]int
	for j, err := range errs {
		if err == nil {
			continue
		}
		okCount--
		failCount++
		f := FailedMessage{Index: index(j), UUID: batch[j].UUID, Class: p.cfg.Classifier(err), Err: err}
		if int(f.Class) < len(byClass) {
			byClass[f.Class]++
		}
		if f.Class == Retriable {
			retry = append(retry, f)
		} else {
			final = append(final, f)
			if f.Class == Fatal {
				fatalErr = err
			}
		}
	}
	if failCount > 0 {
		p.stats.attemptFailures.Add(int64(failCount))
		if p.prom != nil {
			for c, n := range byClass {
				if n > 0 {
					p.prom.attemptFailed(topic, Class(c), n)
				}
			}
		}
	}
	p.health.record(time.Now(), okCount, failCount)
	if fatalErr != nil {
		p.health.setFatal(fatalErr)
	}
	return retry, final
}

// wait sleeps d unless the context of a message still pending ends or Close gives
// up waiting, which it reports as the error that ends the call.
func (p *Publisher) wait(d time.Duration, msgs []*message.Message, pending []FailedMessage) (error, Class) {
	ctx := msgs[pending[0].Index].Context()
	var stops []func() bool
	for _, f := range pending[1:] {
		other := msgs[f.Index].Context()
		if other.Done() == ctx.Done() {
			continue
		}
		// Messages with different contexts: wake when any of them ends.
		merged, cancel := context.WithCancel(ctx)
		defer cancel()
		stops = append(stops, context.AfterFunc(other, cancel))
		ctx = merged
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()

	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil, Retriable
	case <-p.abort:
		return fmt.Errorf("retries stopped by Close: %w", ErrClosed), Fatal
	case <-ctx.Done():
		for _, f := range pending {
			if err := msgs[f.Index].Context().Err(); err != nil {
				return err, Canceled
			}
		}
		return ctx.Err(), Canceled
	}
}

// fail records and logs the final failures of a call and returns its error.
func (p *Publisher) fail(topic string, msgs []*message.Message, attempts int, failed []FailedMessage, elapsed time.Duration) error {
	worst := 0
	for i, f := range failed {
		p.stats.givenUp[f.Class].Add(1)
		if p.prom != nil {
			p.prom.gaveUp(topic, f.Class)
		}
		if severity(f.Class) > severity(failed[worst].Class) {
			worst = i
		}
	}
	if p.log != nil {
		p.logFailure(topic, msgs, attempts, failed, elapsed)
	}
	return &PublishError{
		Topic:    topic,
		Attempts: attempts,
		Class:    failed[worst].Class,
		Err:      failed[worst].Err,
		Failed:   failed,
	}
}

// Close stops accepting new Publish calls (they fail with ErrClosed), waits for the
// calls in flight up to CloseTimeout, then ends their remaining retries, closes the
// inner publisher once and logs the final metrics. It is idempotent: later calls
// return the result of the first.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() { p.closeErr = p.close() })
	return p.closeErr
}

func (p *Publisher) close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()

	drained := make(chan struct{})
	go func() {
		p.inflight.Wait()
		close(drained)
	}()
	timer := time.NewTimer(p.cfg.CloseTimeout)
	select {
	case <-drained:
		timer.Stop()
	case <-timer.C:
		if p.log != nil {
			p.log.Warn().Dur("close_timeout", p.cfg.CloseTimeout).
				Msg("close timeout: stopping retries of in-flight publishes")
		}
		close(p.abort)
	}

	// Wait for attempts inside the inner publisher to return, then close it.
	p.attemptMu.Lock()
	p.innerClosed = true
	p.attemptMu.Unlock()
	err := p.next.Close()

	if p.log != nil {
		m := p.Metrics()
		ev := p.log.Info()
		if err != nil {
			ev = p.log.Error().Err(err)
		}
		ev.Int64("messages_published", m.MessagesPublished).
			Int64("messages_given_up", m.MessagesGivenUp).
			Int64("attempt_failures", m.AttemptFailures).
			Int64("retries_total", m.RetriesTotal).
			Dur("avg_publish_time", m.AvgPublishTime).
			Msg("publisher closed")
	}
	if err != nil {
		return fmt.Errorf("adapter: close inner publisher: %w", err)
	}
	return nil
}

// Closed reports whether Close was called.
func (p *Publisher) Closed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}
