package router

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace/millrace/outbox"
)

// Prometheus metric names exported by a Forwarder with a Registerer.
const (
	MetricEventsForwarded   = "millrace_router_events_forwarded_total"
	MetricBatches           = "millrace_router_batches_total"
	MetricBatchSize         = "millrace_router_batch_size"
	MetricDeadLetters       = "millrace_router_dead_letters_total"
	MetricBatchFailures     = "millrace_router_batch_failures_total"
	MetricPending           = "millrace_router_pending_events"
	MetricLag               = "millrace_router_lag_seconds"
	MetricDeadLettersStored = "millrace_router_dead_letters_stored"
	MetricLastForwarded     = "millrace_router_last_forwarded_timestamp_seconds"
	MetricState             = "millrace_router_state"
)

type promMetrics struct {
	forwarded   prometheus.Counter
	batches     prometheus.Counter
	batchSize   prometheus.Histogram
	deadLetters prometheus.Counter
	failures    *prometheus.CounterVec
	pending     prometheus.Gauge
	lag         prometheus.Gauge
	stored      prometheus.Gauge
	lastFwd     prometheus.Gauge
	state       *prometheus.GaugeVec
}

func newPromMetrics(reg prometheus.Registerer, f *Forwarder) (*promMetrics, error) {
	labels := prometheus.Labels{"outbox": f.cfg.Outbox.Name}
	m := &promMetrics{
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricEventsForwarded, ConstLabels: labels,
			Help: "Events written to Kafka (an event resent after an interrupted batch counts again)."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricBatches, ConstLabels: labels,
			Help: "Non-empty batches handled."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricBatchSize, ConstLabels: labels,
			Help: "Events read per non-empty batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricDeadLetters, ConstLabels: labels,
			Help: "Events set aside as dead letters."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricBatchFailures, ConstLabels: labels,
			Help: "Batches stopped by a failure and tried again, by class; nothing is lost (unacknowledged events are sent again)."}, []string{"class"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricPending, ConstLabels: labels,
			Help: "Committed events not yet forwarded."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricLag, ConstLabels: labels,
			Help: "Age of the oldest pending event in seconds (0 when none is pending)."}),
		stored: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricDeadLettersStored, ConstLabels: labels,
			Help: "Rows in the dead letters table."}),
		lastFwd: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricLastForwarded, ConstLabels: labels,
			Help: "Unix time the consumer group last recorded progress."}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricState, ConstLabels: labels,
			Help: "1 for the forwarder's current state, 0 for the others."}, []string{"state"}),
	}
	for _, c := range []prometheus.Collector{m.forwarded, m.batches, m.batchSize, m.deadLetters, m.failures,
		m.pending, m.lag, m.stored, m.lastFwd, m.state} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("router: metrics of this outbox are already registered: use one Registerer per forwarder of an outbox")
			}
			return nil, err
		}
	}
	m.setState(StateStarting)
	return m, nil
}

func (m *promMetrics) batch(size, forwarded, dead int) {
	m.batches.Inc()
	m.batchSize.Observe(float64(size))
	m.forwarded.Add(float64(forwarded))
	m.deadLetters.Add(float64(dead))
}

func (m *promMetrics) failure(class interface{ String() string }) {
	m.failures.WithLabelValues(class.String()).Inc()
}

func (m *promMetrics) backlog(st outbox.Stats) {
	m.pending.Set(float64(st.Pending))
	m.lag.Set(st.OldestPending.Seconds())
	m.stored.Set(float64(st.DeadLetters))
	if !st.LastForwardedAt.IsZero() {
		m.lastFwd.Set(float64(st.LastForwardedAt.UnixNano()) / 1e9)
	}
}

func (m *promMetrics) setState(s State) {
	for _, st := range allStates {
		v := 0.0
		if st == s {
			v = 1
		}
		m.state.WithLabelValues(string(st)).Set(v)
	}
}
