package adapter

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is a snapshot of a Publisher's counters since it was created.
type Metrics struct {
	// MessagesPublished counts messages written by the inner publisher.
	MessagesPublished int64
	// MessagesFailed counts messages that Publish finally gave up on, of all classes.
	MessagesFailed int64
	// FailedByClass splits MessagesFailed by class, indexed by Class.
	FailedByClass [numClasses]int64
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

// Failed returns the number of messages that finally failed with class c.
func (m Metrics) Failed(c Class) int64 {
	if int(c) >= len(m.FailedByClass) {
		return 0
	}
	return m.FailedByClass[c]
}

// Metrics returns a snapshot of the publisher's counters.
func (p *Publisher) Metrics() Metrics {
	m := Metrics{
		MessagesPublished: p.stats.published.Load(),
		RetriesTotal:      p.stats.retries.Load(),
		PublishCalls:      p.stats.calls.Load(),
		InFlight:          p.stats.inFlight.Load(),
	}
	for c := range m.FailedByClass {
		m.FailedByClass[c] = p.stats.failed[c].Load()
		m.MessagesFailed += m.FailedByClass[c]
	}
	if m.PublishCalls > 0 {
		m.AvgPublishTime = time.Duration(p.stats.durationNanos.Load() / m.PublishCalls)
	}
	return m
}

// stats holds the counters behind Metrics.
type stats struct {
	published     atomic.Int64
	failed        [numClasses]atomic.Int64
	retries       atomic.Int64
	calls         atomic.Int64
	durationNanos atomic.Int64
	inFlight      atomic.Int64
}

func (s *stats) record(published int, elapsed time.Duration) {
	s.published.Add(int64(published))
	s.calls.Add(1)
	s.durationNanos.Add(int64(elapsed))
}

// Prometheus metric names exported by a Publisher with a Registerer.
const (
	MetricPublished       = "millrace_publisher_messages_published_total"
	MetricFailed          = "millrace_publisher_messages_failed_total"
	MetricRetries         = "millrace_publisher_retries_total"
	MetricPublishDuration = "millrace_publisher_publish_duration_seconds"
	MetricInFlight        = "millrace_publisher_in_flight"
)

// promMetrics holds the Prometheus collectors of a publisher, with the children of
// each topic cached so the hot path does no label lookup.
type promMetrics struct {
	published *prometheus.CounterVec
	failedVec *prometheus.CounterVec
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
	failed    [numClasses]prometheus.Counter
}

func newPromMetrics(reg prometheus.Registerer) (*promMetrics, error) {
	m := &promMetrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricPublished, Help: "Messages written by the inner publisher.",
		}, []string{"topic"}),
		failedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricFailed, Help: "Messages that Publish finally gave up on, by failure class.",
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
	if m.failedVec, err = register(reg, m.failedVec); err != nil {
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
	for c := range t.failed {
		t.failed[c] = m.failedVec.WithLabelValues(topic, Class(c).String())
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

func (m *promMetrics) failed(topic string, c Class) { m.topic(topic).failed[c].Inc() }
