package adapter

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is a snapshot of a Publisher's counters since it was created.
//
// Two counters count failures, and only one of them counts messages: an attempt
// that fails and is retried successfully adds to AttemptFailures and RetriesTotal,
// never to MessagesGivenUp. MessagesGivenUp counts the messages a Publish call
// returned as failed; whether they are lost is the caller's decision (the relay
// sends retriable ones again in its next batch and stores permanent ones as dead
// letters).
type Metrics struct {
	// MessagesPublished counts messages written by the inner publisher.
	MessagesPublished int64
	// MessagesGivenUp counts messages that a Publish call gave up on and returned in
	// its error, of all classes: retries exhausted or budget spent (retriable),
	// rejected (permanent), fatal, or canceled.
	MessagesGivenUp int64
	// GivenUpByClass splits MessagesGivenUp by class, indexed by Class; it prints
	// with the class names.
	GivenUpByClass ByClass
	// AttemptFailures counts failed attempts of one message, retried or not: a
	// message tried three times before it went through counts 2 here.
	AttemptFailures int64
	// RetriesTotal counts messages sent again after a retriable failure.
	RetriesTotal int64
	// PublishCalls counts completed Publish calls.
	PublishCalls int64
	// AvgPublishTime is the mean duration of a completed Publish call, retries and
	// waits included.
	AvgPublishTime time.Duration
	// InFlight is the number of Publish calls running now.
	InFlight int64
}

// ByClass holds one counter per Class, indexed by Class.
type ByClass [numClasses]int64

// String names each counter by its class: "retriable=0 permanent=1 fatal=0 canceled=0".
func (b ByClass) String() string {
	parts := make([]string, len(b))
	for c, n := range b {
		parts[c] = Class(c).String() + "=" + strconv.FormatInt(n, 10)
	}
	return strings.Join(parts, " ")
}

// GivenUp returns the number of messages given up on with class c.
func (m Metrics) GivenUp(c Class) int64 {
	if int(c) >= len(m.GivenUpByClass) {
		return 0
	}
	return m.GivenUpByClass[c]
}

// Metrics returns a snapshot of the publisher's counters.
func (p *Publisher) Metrics() Metrics {
	m := Metrics{
		MessagesPublished: p.stats.published.Load(),
		AttemptFailures:   p.stats.attemptFailures.Load(),
		RetriesTotal:      p.stats.retries.Load(),
		PublishCalls:      p.stats.calls.Load(),
		InFlight:          p.stats.inFlight.Load(),
	}
	for c := range m.GivenUpByClass {
		m.GivenUpByClass[c] = p.stats.givenUp[c].Load()
		m.MessagesGivenUp += m.GivenUpByClass[c]
	}
	if m.PublishCalls > 0 {
		m.AvgPublishTime = time.Duration(p.stats.durationNanos.Load() / m.PublishCalls)
	}
	return m
}

// stats holds the counters behind Metrics.
type stats struct {
	published       atomic.Int64
	givenUp         [numClasses]atomic.Int64
	attemptFailures atomic.Int64
	retries         atomic.Int64
	calls           atomic.Int64
	durationNanos   atomic.Int64
	inFlight        atomic.Int64
}

func (s *stats) record(published int, elapsed time.Duration) {
	s.published.Add(int64(published))
	s.calls.Add(1)
	s.durationNanos.Add(int64(elapsed))
}

// Prometheus metric names exported by a Publisher with a Registerer.
const (
	MetricPublished       = "millrace_publisher_messages_published_total"
	MetricGivenUp         = "millrace_publisher_messages_given_up_total"
	MetricAttemptFailures = "millrace_publisher_attempt_failures_total"
	MetricRetries         = "millrace_publisher_retries_total"
	MetricPublishDuration = "millrace_publisher_publish_duration_seconds"
	MetricInFlight        = "millrace_publisher_in_flight"
)

// promMetrics holds the Prometheus collectors of a publisher, with the children of
// each topic cached so the hot path does no label lookup.
type promMetrics struct {
	published *prometheus.CounterVec
	givenUp   *prometheus.CounterVec
	attempts  *prometheus.CounterVec // failed attempts
	retried   *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inFlight  *prometheus.GaugeVec

	topics sync.Map // topic -> *topicMetrics
}

type topicMetrics struct {
	published prometheus.Counter
	retries   prometheus.Counter
	duration  prometheus.Observer
	inFlight  prometheus.Gauge
	givenUp   [numClasses]prometheus.Counter
	attempts  [numClasses]prometheus.Counter
}

func newPromMetrics(reg prometheus.Registerer) (*promMetrics, error) {
	m := &promMetrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricPublished, Help: "Messages written by the inner publisher.",
		}, []string{"topic"}),
		givenUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricGivenUp,
			Help: "Messages a Publish call gave up on and returned as failed, by class; the caller decides whether they are lost (the relay sends retriable ones again and stores permanent ones as dead letters).",
		}, []string{"topic", "class"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricAttemptFailures,
			Help: "Failed attempts of one message, retried or not, by class; a retry that succeeds loses nothing.",
		}, []string{"topic", "class"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRetries, Help: "Messages sent again after a retriable failure.",
		}, []string{"topic"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricPublishDuration,
			Help:    "Duration of Publish calls, retries and waits included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120},
		}, []string{"topic"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricInFlight, Help: "Publish calls running now.",
		}, []string{"topic"}),
	}
	var err error
	if m.published, err = register(reg, m.published); err != nil {
		return nil, err
	}
	if m.givenUp, err = register(reg, m.givenUp); err != nil {
		return nil, err
	}
	if m.attempts, err = register(reg, m.attempts); err != nil {
		return nil, err
	}
	if m.retried, err = register(reg, m.retried); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.inFlight, err = register(reg, m.inFlight); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the equal collector already registered, so that
// several publishers can share one Registerer.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *promMetrics) topic(topic string) *topicMetrics {
	if t, ok := m.topics.Load(topic); ok {
		return t.(*topicMetrics)
	}
	t := &topicMetrics{
		published: m.published.WithLabelValues(topic),
		retries:   m.retried.WithLabelValues(topic),
		duration:  m.duration.WithLabelValues(topic),
		inFlight:  m.inFlight.WithLabelValues(topic),
	}
	for c := range t.givenUp {
		t.givenUp[c] = m.givenUp.WithLabelValues(topic, Class(c).String())
		t.attempts[c] = m.attempts.WithLabelValues(topic, Class(c).String())
	}
	actual, _ := m.topics.LoadOrStore(topic, t)
	return actual.(*topicMetrics)
}

func (m *promMetrics) begin(topic string) { m.topic(topic).inFlight.Inc() }

func (m *promMetrics) end(topic string, published int, elapsed time.Duration) {
	t := m.topic(topic)
	t.inFlight.Dec()
	t.published.Add(float64(published))
	t.duration.Observe(elapsed.Seconds())
}

func (m *promMetrics) retries(topic string, n int) { m.topic(topic).retries.Add(float64(n)) }

func (m *promMetrics) gaveUp(topic string, c Class) { m.topic(topic).givenUp[c].Inc() }

func (m *promMetrics) attemptFailed(topic string, c Class, n int) {
	m.topic(topic).attempts[c].Add(float64(n))
}
