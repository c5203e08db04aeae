package adapter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/millrace/millrace/adapter"
)

// scripted is a fake inner publisher. Each call of Publish takes the next step of
// its script (the last step repeats); a step maps a message UUID to its failure, or
// fails every message with all. It panics when used after Close, like sarama.
type scripted struct {
	mu      sync.Mutex
	steps   []step
	calls   int
	sent    map[string]int // UUID -> times written
	batches [][]string     // UUIDs of each call
	closed  atomic.Bool
	closes  atomic.Int32
	block   chan struct{} // when set, Publish waits for it to be closed
	entered chan struct{} // when set, receives a value when Publish starts
}

type step struct {
	all    error
	byUUID map[string]error
}

func newScripted(steps ...step) *scripted {
	return &scripted{steps: steps, sent: map[string]int{}}
}

func (s *scripted) next(msgs []*message.Message) []error {
	if s.closed.Load() {
		panic("send on closed channel")
	}
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.block != nil {
		<-s.block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var st step
	if len(s.steps) > 0 {
		st = s.steps[min(s.calls, len(s.steps)-1)]
	}
	s.calls++
	ids := make([]string, len(msgs))
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		ids[i] = m.UUID
		switch {
		case st.all != nil:
			errs[i] = st.all
		case st.byUUID[m.UUID] != nil:
			errs[i] = st.byUUID[m.UUID]
		default:
			s.sent[m.UUID]++
		}
	}
	s.batches = append(s.batches, ids)
	return errs
}

func (s *scripted) Publish(topic string, msgs ...*message.Message) error {
	return errors.Join(s.next(msgs)...)
}

func (s *scripted) Close() error {
	s.closes.Add(1)
	s.closed.Store(true)
	return nil
}

func (s *scripted) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// results is a scripted publisher that reports per-message results.
type results struct{ *scripted }

func (r results) PublishResults(topic string, msgs ...*message.Message) []error {
	return r.next(msgs)
}

func msg(uuid string) *message.Message { return message.NewMessage(uuid, []byte("payload-"+uuid)) }

// fast is a Config with short waits for tests.
func fast() adapter.Config {
	return adapter.Config{
		InitialInterval:     time.Millisecond,
		MaxInterval:         5 * time.Millisecond,
		RandomizationFactor: -1,
		MaxElapsedTime:      5 * time.Second,
		CloseTimeout:        time.Second,
	}
}

func newPub(t *testing.T, inner message.Publisher, cfg adapter.Config) *adapter.Publisher {
	t.Helper()
	p, err := adapter.NewPublisher(inner, cfg)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

var (
	errRetriable = sarama.ErrNotEnoughReplicas
	errPermanent = sarama.ErrMessageSizeTooLarge
	errFatal     = sarama.ErrTopicAuthorizationFailed
)

func TestPublishScenarios(t *testing.T) {
	tests := []struct {
		name          string
		steps         []step
		maxRetries    int
		wantErr       error
		wantClass     adapter.Class
		wantCalls     int
		wantRetries   int64
		wantPublished int64
	}{
		{
			name:          "a retriable failure is retried until it succeeds",
			steps:         []step{{all: errRetriable}, {all: errRetriable}, {}},
			wantCalls:     3,
			wantRetries:   2,
			wantPublished: 1,
		},
		{
			name:        "running out of retries returns the last retriable error",
			steps:       []step{{all: errRetriable}},
			maxRetries:  2,
			wantErr:     errRetriable,
			wantClass:   adapter.Retriable,
			wantCalls:   3,
			wantRetries: 2,
		},
		{
			name:       "a negative MaxRetries makes one attempt only",
			steps:      []step{{all: errRetriable}},
			maxRetries: -1,
			wantErr:    errRetriable,
			wantClass:  adapter.Retriable,
			wantCalls:  1,
		},
		{
			name:      "a permanent failure returns after one attempt",
			steps:     []step{{all: errPermanent}, {}},
			wantErr:   errPermanent,
			wantClass: adapter.Permanent,
			wantCalls: 1,
		},
		{
			name:      "a fatal failure returns after one attempt",
			steps:     []step{{all: errFatal}, {}},
			wantErr:   errFatal,
			wantClass: adapter.Fatal,
			wantCalls: 1,
		},
		{
			name:          "success on the first attempt makes one call",
			steps:         []step{{}},
			wantCalls:     1,
			wantPublished: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := newScripted(tt.steps...)
			cfg := fast()
			cfg.MaxRetries = tt.maxRetries
			p := newPub(t, inner, cfg)

			err := p.Publish("orders", msg("m1"))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Publish: %v", err)
				}
			} else {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Publish error = %v, want it to match %v", err, tt.wantErr)
				}
				var pe *adapter.PublishError
				if !errors.As(err, &pe) {
					t.Fatalf("Publish error %T is not *PublishError", err)
				}
				if pe.Class != tt.wantClass || pe.Topic != "orders" || pe.Attempts != tt.wantCalls {
					t.Fatalf("PublishError = {Topic %q, Attempts %d, Class %v}, want {orders, %d, %v}",
						pe.Topic, pe.Attempts, pe.Class, tt.wantCalls, tt.wantClass)
				}
			}
			if got := inner.Calls(); got != tt.wantCalls {
				t.Errorf("inner publisher called %d times, want %d", got, tt.wantCalls)
			}
			m := p.Metrics()
			if m.RetriesTotal != tt.wantRetries || m.MessagesPublished != tt.wantPublished {
				t.Errorf("metrics = %+v, want RetriesTotal %d, MessagesPublished %d", m, tt.wantRetries, tt.wantPublished)
			}
			wantFailed := int64(0)
			if tt.wantErr != nil {
				wantFailed = 1
			}
			if m.MessagesGivenUp != wantFailed || (tt.wantErr != nil && m.GivenUp(tt.wantClass) != 1) {
				t.Errorf("metrics = %+v, want MessagesGivenUp %d of class %v", m, wantFailed, tt.wantClass)
			}
			// Every attempt but a successful last one failed.
			wantAttemptFailures := int64(tt.wantCalls)
			if tt.wantErr == nil {
				wantAttemptFailures--
			}
			if tt.wantErr != nil && tt.wantClass == adapter.Canceled && m.AttemptFailures < wantAttemptFailures {
				wantAttemptFailures = m.AttemptFailures // canceled during a wait, after the last failed attempt
			}
			if m.AttemptFailures != wantAttemptFailures {
				t.Errorf("AttemptFailures = %d, want %d", m.AttemptFailures, wantAttemptFailures)
			}
			if m.PublishCalls != 1 || m.AvgPublishTime <= 0 {
				t.Errorf("metrics = %+v, want one call with a positive average time", m)
			}
		})
	}
}

func TestPublishStopsWhenTheBudgetIsSpent(t *testing.T) {
	inner := newScripted(step{all: errRetriable})
	cfg := fast()
	cfg.MaxRetries = 1000
	cfg.InitialInterval = 10 * time.Millisecond
	cfg.MaxInterval = 10 * time.Millisecond
	cfg.MaxElapsedTime = 100 * time.Millisecond
	p := newPub(t, inner, cfg)

	start := time.Now()
	err := p.Publish("orders", msg("m1"))
	took := time.Since(start)
	if !errors.Is(err, errRetriable) {
		t.Fatalf("Publish error = %v, want the retriable cause", err)
	}
	if took > 150*time.Millisecond {
		t.Fatalf("Publish took %v, want it bounded by the 100ms budget", took)
	}
	// About 100ms / 10ms attempts; far fewer than MaxRetries.
	if calls := inner.Calls(); calls < 5 || calls > 11 {
		t.Fatalf("inner publisher called %d times within a 100ms budget at 10ms waits, want 5..11", calls)
	}
}

func TestPublishReturnsPromptlyWhenTheContextIsCanceledDuringBackoff(t *testing.T) {
	inner := newScripted(step{all: errRetriable})
	cfg := fast()
	cfg.InitialInterval = 10 * time.Second
	cfg.MaxInterval = 10 * time.Second
	cfg.MaxElapsedTime = time.Minute
	p := newPub(t, inner, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	m := msg("m1")
	m.SetContext(ctx)
	time.AfterFunc(20*time.Millisecond, cancel)

	start := time.Now()
	err := p.Publish("orders", m)
	took := time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish error = %v, want context.Canceled", err)
	}
	var pe *adapter.PublishError
	if !errors.As(err, &pe) || pe.Class != adapter.Canceled {
		t.Fatalf("Publish error = %#v, want class Canceled", err)
	}
	if took > 20*time.Millisecond+30*time.Millisecond {
		t.Fatalf("Publish returned %v after start, want within a few ms of the cancel at 20ms", took)
	}
	if m := p.Metrics(); m.GivenUp(adapter.Canceled) != 1 {
		t.Fatalf("metrics = %+v, want one canceled message", m)
	}
}

func TestPublishWithAnAlreadyCanceledContextMakesNoAttempt(t *testing.T) {
	inner := newScripted(step{})
	p := newPub(t, inner, fast())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := msg("m1")
	m.SetContext(ctx)
	if err := p.Publish("orders", m); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish error = %v, want context.Canceled", err)
	}
	if calls := inner.Calls(); calls != 0 {
		t.Fatalf("inner publisher called %d times, want 0", calls)
	}
}

func TestBackoffWaitsStayWithinTheirJitterBounds(t *testing.T) {
	var (
		mu    sync.Mutex
		times []time.Time
	)
	inner := newScripted(step{all: errRetriable})
	cfg := adapter.Config{
		MaxRetries:          4,
		InitialInterval:     20 * time.Millisecond,
		MaxInterval:         80 * time.Millisecond,
		Multiplier:          2,
		RandomizationFactor: 0.2,
	}
	rec := recordTimes{scripted: inner, mu: &mu, times: &times}
	p := newPub(t, rec, cfg)
	_ = p.Publish("orders", msg("m1"))

	// Waits: 20, 40, 80, 80 (capped) ms, each within ±20%. Timers never fire early;
	// allow 75ms of scheduling delay above the bound (2 busy cores under -race).
	want := []time.Duration{20, 40, 80, 80}
	if len(times) != len(want)+1 {
		t.Fatalf("got %d attempts, want %d", len(times), len(want)+1)
	}
	for i, w := range want {
		w *= time.Millisecond
		got := times[i+1].Sub(times[i])
		lo, hi := time.Duration(float64(w)*0.8), time.Duration(float64(w)*1.2)+75*time.Millisecond
		if got < lo || got > hi {
			t.Errorf("wait %d = %v, want within [%v, %v]", i+1, got, lo, hi)
		}
	}
}

type recordTimes struct {
	*scripted
	mu    *sync.Mutex
	times *[]time.Time
}

func (r recordTimes) Publish(topic string, msgs ...*message.Message) error {
	r.mu.Lock()
	*r.times = append(*r.times, time.Now())
	r.mu.Unlock()
	return r.scripted.Publish(topic, msgs...)
}

func TestOnlyTheFailedMessagesOfABatchAreResent(t *testing.T) {
	inner := results{newScripted(
		step{byUUID: map[string]error{"m2": errRetriable, "m3": errPermanent}},
		step{},
	)}
	p := newPub(t, inner, fast())

	err := p.Publish("orders", msg("m1"), msg("m2"), msg("m3"), msg("m4"))
	var pe *adapter.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("Publish error = %v, want *PublishError for m3", err)
	}
	if len(pe.Failed) != 1 || pe.Failed[0].UUID != "m3" || pe.Failed[0].Index != 2 || pe.Class != adapter.Permanent {
		t.Fatalf("Failed = %+v, want only m3 (index 2) permanent", pe.Failed)
	}
	if !errors.Is(err, errPermanent) {
		t.Fatalf("Publish error = %v, want it to match %v", err, errPermanent)
	}
	if got := inner.batches; len(got) != 2 || strings.Join(got[1], ",") != "m2" {
		t.Fatalf("batches = %v, want the second attempt to carry only m2", got)
	}
	for _, id := range []string{"m1", "m2", "m4"} {
		if inner.sent[id] != 1 {
			t.Errorf("%s written %d times, want once", id, inner.sent[id])
		}
	}
	if m := p.Metrics(); m.MessagesPublished != 3 || m.RetriesTotal != 1 || m.GivenUp(adapter.Permanent) != 1 {
		t.Fatalf("metrics = %+v, want 3 published, 1 retry, 1 permanent failure", m)
	}
}

func TestAPlainInnerPublisherGetsTheWholeBatchAgain(t *testing.T) {
	inner := newScripted(step{all: errRetriable}, step{})
	p := newPub(t, inner, fast())
	if err := p.Publish("orders", msg("m1"), msg("m2")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := inner.batches; len(got) != 2 || strings.Join(got[1], ",") != "m1,m2" {
		t.Fatalf("batches = %v, want the whole batch resent", got)
	}
}

func TestANilMessageFailsAloneAndTheOthersArePublished(t *testing.T) {
	inner := results{newScripted(step{})}
	p := newPub(t, inner, fast())
	err := p.Publish("orders", msg("m1"), nil, msg("m3"))
	var pe *adapter.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, adapter.ErrNilMessage) || pe.Class != adapter.Permanent {
		t.Fatalf("Publish error = %v, want a permanent ErrNilMessage", err)
	}
	if len(pe.Failed) != 1 || pe.Failed[0].Index != 1 {
		t.Fatalf("Failed = %+v, want index 1 only", pe.Failed)
	}
	if inner.sent["m1"] != 1 || inner.sent["m3"] != 1 {
		t.Fatalf("sent = %v, want m1 and m3 once", inner.sent)
	}
}

func TestAFatalFailureMarksThePublisherUnhealthyUntilASuccess(t *testing.T) {
	inner := newScripted(step{all: errFatal}, step{})
	p := newPub(t, inner, fast())
	ctx := context.Background()
	if err := p.HealthCheck(ctx); err != nil {
		t.Fatalf("HealthCheck of a new publisher: %v", err)
	}
	_ = p.Publish("orders", msg("m1"))
	err := p.HealthCheck(ctx)
	if !errors.Is(err, adapter.ErrUnhealthy) || !strings.Contains(err.Error(), "fatal") {
		t.Fatalf("HealthCheck after a fatal failure = %v, want unhealthy naming the fatal failure", err)
	}
	if err := p.Publish("orders", msg("m2")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := p.HealthCheck(ctx); err != nil {
		t.Fatalf("HealthCheck after a success = %v, want healthy", err)
	}
}

func TestAHighErrorRateMarksThePublisherUnhealthy(t *testing.T) {
	inner := newScripted(step{all: errRetriable})
	cfg := fast()
	cfg.MaxRetries = -1
	cfg.HealthMinSamples = 4
	cfg.HealthMaxErrorRate = 0.5
	p := newPub(t, inner, cfg)
	ctx := context.Background()
	for i := range 3 {
		_ = p.Publish("orders", msg("m"+string(rune('a'+i))))
	}
	if err := p.HealthCheck(ctx); err != nil {
		t.Fatalf("HealthCheck with 3 samples below HealthMinSamples 4 = %v, want healthy", err)
	}
	_ = p.Publish("orders", msg("md"))
	if err := p.HealthCheck(ctx); !errors.Is(err, adapter.ErrUnhealthy) || !strings.Contains(err.Error(), "error rate") {
		t.Fatalf("HealthCheck with 4 of 4 attempts failed = %v, want unhealthy by error rate", err)
	}
}

// After an outage, the first clean attempt makes the publisher healthy at once: the
// failures of the outage stop counting, although they are still in the window. A
// publisher that keeps failing part of each call stays unhealthy.
func TestACleanAttemptEndsTheErrorRateOfAnOutage(t *testing.T) {
	steps := make([]step, 20)
	for i := range steps {
		steps[i] = step{all: errRetriable}
	}
	inner := newScripted(append(steps, step{})...)
	cfg := fast()
	cfg.MaxRetries = -1
	cfg.HealthWindow = time.Hour // nothing leaves the window during the test
	p := newPub(t, inner, cfg)
	ctx := context.Background()
	for i := range 20 {
		_ = p.Publish("orders", msg(fmt.Sprint("m", i)))
	}
	if err := p.HealthCheck(ctx); !errors.Is(err, adapter.ErrUnhealthy) || !strings.Contains(err.Error(), "20 of 20") {
		t.Fatalf("HealthCheck during the outage = %v, want unhealthy with 20 of 20 attempts failed", err)
	}
	if err := p.Publish("orders", msg("ok")); err != nil {
		t.Fatal(err)
	}
	if err := p.HealthCheck(ctx); err != nil {
		t.Fatalf("HealthCheck after a clean attempt = %v, want healthy at once", err)
	}

	// Half of every call fails: no attempt is clean, the rate counts.
	partial := make([]step, 0, 40)
	for range 40 {
		partial = append(partial, step{byUUID: map[string]error{"b": errRetriable}})
	}
	cfg.HealthMaxErrorRate = 0.4
	q := newPub(t, results{newScripted(partial...)}, cfg)
	for range 10 {
		_ = q.Publish("orders", msg("a"), msg("b"))
	}
	if err := q.HealthCheck(ctx); !errors.Is(err, adapter.ErrUnhealthy) || !strings.Contains(err.Error(), "error rate 50%") {
		t.Fatalf("HealthCheck with half of each call failing = %v, want unhealthy at 50%%", err)
	}
}

func TestHealthCheckIncludesTheBrokerCheck(t *testing.T) {
	cfg := fast()
	broken := errors.New("dial tcp 127.0.0.1:9: connection refused")
	cfg.BrokerCheck = func(context.Context) error { return broken }
	p := newPub(t, newScripted(), cfg)
	if err := p.HealthCheck(context.Background()); !errors.Is(err, broken) || !errors.Is(err, adapter.ErrUnhealthy) {
		t.Fatalf("HealthCheck = %v, want the broker failure", err)
	}
}

func TestHealthHandlersAnswerJSONWithTheReason(t *testing.T) {
	inner := newScripted(step{all: errFatal})
	p := newPub(t, inner, fast())

	get := func(h http.Handler) (int, adapter.HealthStatus) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var st adapter.HealthStatus
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatalf("body %q is not JSON: %v", rec.Body.String(), err)
		}
		return rec.Code, st
	}
	if code, st := get(p.ReadinessHandler()); code != 200 || st.Status != "ok" {
		t.Fatalf("readiness = %d %+v, want 200 ok", code, st)
	}
	_ = p.Publish("orders", msg("m1"))
	if code, st := get(p.ReadinessHandler()); code != 503 || st.Status != "unavailable" || !strings.Contains(st.Reason, "authoriz") {
		t.Fatalf("readiness = %d %+v, want 503 with the authorization failure", code, st)
	}
	if code, _ := get(p.LivenessHandler()); code != 200 {
		t.Fatalf("liveness = %d, want 200 while open", code)
	}
	_ = p.Close()
	if code, _ := get(p.LivenessHandler()); code != 503 {
		t.Fatalf("liveness after Close = %d, want 503", code)
	}
}

func TestPublishAfterCloseFailsWithErrClosed(t *testing.T) {
	inner := newScripted(step{})
	p := newPub(t, inner, fast())
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Publish("orders", msg("m1")); !errors.Is(err, adapter.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	if n := inner.closes.Load(); n != 1 {
		t.Fatalf("inner Close called %d times, want once", n)
	}
}

func TestCloseWaitsForInFlightPublishes(t *testing.T) {
	inner := newScripted(step{})
	inner.block = make(chan struct{})
	inner.entered = make(chan struct{}, 1)
	p := newPub(t, inner, fast())

	published := make(chan error, 1)
	go func() { published <- p.Publish("orders", msg("m1")) }()
	<-inner.entered

	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a publish was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	if inner.closes.Load() != 0 {
		t.Fatal("inner publisher closed while a publish was in flight")
	}
	close(inner.block)
	if err := <-published; err != nil {
		t.Fatalf("in-flight Publish: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if inner.closes.Load() != 1 || inner.sent["m1"] != 1 {
		t.Fatalf("closes %d, sent %v: want the message written, then one Close", inner.closes.Load(), inner.sent)
	}
}

func TestCloseTimeoutStopsRetriesOfInFlightPublishes(t *testing.T) {
	inner := newScripted(step{all: errRetriable})
	inner.entered = make(chan struct{}, 1)
	cfg := fast()
	cfg.InitialInterval = 10 * time.Second
	cfg.MaxInterval = 10 * time.Second
	cfg.MaxElapsedTime = time.Minute
	cfg.CloseTimeout = 50 * time.Millisecond
	p := newPub(t, inner, cfg)

	published := make(chan error, 1)
	go func() { published <- p.Publish("orders", msg("m1")) }()
	<-inner.entered

	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(start); took < 50*time.Millisecond || took > 500*time.Millisecond {
		t.Fatalf("Close took %v, want about the 50ms CloseTimeout", took)
	}
	select {
	case err := <-published:
		if !errors.Is(err, adapter.ErrClosed) {
			t.Fatalf("in-flight Publish = %v, want ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("in-flight Publish still waiting after Close")
	}
	if inner.closes.Load() != 1 {
		t.Fatalf("inner Close called %d times, want once", inner.closes.Load())
	}
}

func TestPublishRacingCloseNeverPanics(t *testing.T) {
	for range 20 {
		inner := newScripted(step{all: errRetriable}, step{})
		p, err := adapter.NewPublisher(inner, fast())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					err := p.Publish("orders", msg(watermill.NewShortUUID()))
					if err != nil && !errors.Is(err, adapter.ErrClosed) {
						t.Errorf("goroutine %d publish %d: %v", g, i, err)
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}

func TestInvalidConfigsAreRejectedNamingTheField(t *testing.T) {
	tests := []struct {
		field string
		cfg   adapter.Config
	}{
		{"InitialInterval", adapter.Config{InitialInterval: -time.Second}},
		{"MaxInterval", adapter.Config{MaxInterval: -time.Second}},
		{"MaxInterval", adapter.Config{InitialInterval: time.Second, MaxInterval: time.Millisecond}},
		{"Multiplier", adapter.Config{Multiplier: 0.5}},
		{"RandomizationFactor", adapter.Config{RandomizationFactor: 1.5}},
		{"CloseTimeout", adapter.Config{CloseTimeout: -1}},
		{"HealthWindow", adapter.Config{HealthWindow: -1}},
		{"HealthMaxErrorRate", adapter.Config{HealthMaxErrorRate: 2}},
		{"HealthMinSamples", adapter.Config{HealthMinSamples: -1}},
		{"BrokerCheckTimeout", adapter.Config{BrokerCheckTimeout: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			_, err := adapter.NewPublisher(newScripted(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), "Config."+tt.field) {
				t.Fatalf("NewPublisher error = %v, want one naming Config.%s", err, tt.field)
			}
		})
	}
	if _, err := adapter.NewPublisher(nil, adapter.Config{}); err == nil {
		t.Fatal("NewPublisher(nil) succeeded, want an error")
	}
	if _, err := adapter.NewPublisher(newScripted(), adapter.Config{}); err != nil {
		t.Fatalf("NewPublisher with the zero Config: %v", err)
	}
}

func TestPrometheusCountersFollowTheOutcomes(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	inner := results{newScripted(step{byUUID: map[string]error{"m2": errRetriable, "m3": errPermanent}}, step{})}
	cfg := fast()
	cfg.Registerer = reg
	p := newPub(t, inner, cfg)
	// A second publisher on the same registerer shares the collectors.
	if _, err := adapter.NewPublisher(newScripted(), cfg); err != nil {
		t.Fatalf("second publisher on one Registerer: %v", err)
	}

	_ = p.Publish("orders", msg("m1"), msg("m2"), msg("m3"))

	want := `
# HELP millrace_publisher_messages_given_up_total Messages a Publish call gave up on and returned as failed, by class; the caller decides whether they are lost (the relay sends retriable ones again and stores permanent ones as dead letters).
# TYPE millrace_publisher_messages_given_up_total counter
millrace_publisher_messages_given_up_total{class="canceled",topic="orders"} 0
millrace_publisher_messages_given_up_total{class="fatal",topic="orders"} 0
millrace_publisher_messages_given_up_total{class="permanent",topic="orders"} 1
millrace_publisher_messages_given_up_total{class="retriable",topic="orders"} 0
# HELP millrace_publisher_attempt_failures_total Failed attempts of one message, retried or not, by class; a retry that succeeds loses nothing.
# TYPE millrace_publisher_attempt_failures_total counter
millrace_publisher_attempt_failures_total{class="canceled",topic="orders"} 0
millrace_publisher_attempt_failures_total{class="fatal",topic="orders"} 0
millrace_publisher_attempt_failures_total{class="permanent",topic="orders"} 1
millrace_publisher_attempt_failures_total{class="retriable",topic="orders"} 1
# HELP millrace_publisher_messages_published_total Messages written by the inner publisher.
# TYPE millrace_publisher_messages_published_total counter
millrace_publisher_messages_published_total{topic="orders"} 2
# HELP millrace_publisher_retries_total Messages sent again after a retriable failure.
# TYPE millrace_publisher_retries_total counter
millrace_publisher_retries_total{topic="orders"} 1
# HELP millrace_publisher_in_flight Publish calls running now.
# TYPE millrace_publisher_in_flight gauge
millrace_publisher_in_flight{topic="orders"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		adapter.MetricGivenUp, adapter.MetricAttemptFailures, adapter.MetricPublished, adapter.MetricRetries, adapter.MetricInFlight); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, adapter.MetricPublishDuration); n != 1 {
		t.Fatalf("duration histogram has %d series, want 1", n)
	}
}

func TestLogsCarryTheFieldsButNeverThePayload(t *testing.T) {
	var buf bytes.Buffer
	logger := zerolog.New(&buf).Level(zerolog.DebugLevel)
	inner := newScripted(step{all: errRetriable}, step{all: errPermanent}, step{})
	cfg := fast()
	cfg.Logger = &logger
	p := newPub(t, inner, cfg)

	m := message.NewMessage("uuid-1", []byte("secret-payload"))
	_ = p.Publish("orders", m)
	_ = p.Publish("orders", message.NewMessage("uuid-2", []byte("other-secret")))

	out := buf.String()
	if strings.Contains(out, "secret") {
		t.Fatalf("logs contain the payload:\n%s", out)
	}
	var levels []string
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		levels = append(levels, ev["level"].(string))
		if ev["message"] == "publish gave up on a message" {
			for _, f := range []string{"topic", "message_uuid", "attempts", "duration", "size", "class", "error"} {
				if _, ok := ev[f]; !ok {
					t.Errorf("error event lacks field %q: %s", f, line)
				}
			}
		}
	}
	// warn for the retry, warn for the permanent failure (the caller decides what it
	// means: the relay logs a dead letter at error), debug for the success.
	if got := strings.Join(levels, ","); got != "warn,warn,debug" {
		t.Fatalf("log levels = %s, want warn,warn,debug", got)
	}
}

// A message given up on is logged at error only when the failure is fatal: a
// retriable one (the budget ran out) and a permanent one are the caller's to retry
// or set aside, and a retried attempt is a warning. Nothing reads "error" while
// nothing is lost.
func TestLogLevelsFollowTheClass(t *testing.T) {
	for _, tt := range []struct {
		name   string
		steps  []step
		levels string
	}{
		{"retried then published", []step{{all: errRetriable}, {}}, "warn"},
		{"retries exhausted", []step{{all: errRetriable}, {all: errRetriable}, {all: errRetriable}, {all: errRetriable}}, "warn,warn,warn,warn"},
		{"permanent", []step{{all: errPermanent}}, "warn"},
		{"fatal", []step{{all: errFatal}}, "error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := zerolog.New(&buf).Level(zerolog.InfoLevel)
			cfg := fast()
			cfg.Logger = &logger
			p := newPub(t, newScripted(tt.steps...), cfg)
			_ = p.Publish("orders", msg("m1"))
			var levels []string
			for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
				var ev map[string]any
				if err := json.Unmarshal([]byte(line), &ev); err == nil {
					levels = append(levels, ev["level"].(string))
				}
			}
			if got := strings.Join(levels, ","); got != tt.levels {
				t.Errorf("levels %s, want %s:\n%s", got, tt.levels, buf.String())
			}
		})
	}
}
