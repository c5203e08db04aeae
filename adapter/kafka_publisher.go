package adapter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eapache/go-resiliency/breaker"
	"github.com/rcrowley/go-metrics"
)

// KafkaPublisher publishes Watermill messages to Kafka through sarama, wire
// compatible with watermill-kafka: its subscribers read the messages unchanged.
//
// Unlike watermill-kafka's publisher, which waits for one broker round trip per
// message, Publish hands all messages of a call to sarama's asynchronous producer at
// once and then waits for all their answers: they share a few produce requests, and
// the call reports which messages failed and why. It implements message.Publisher,
// ResultPublisher and Pinger, and is safe for concurrent use.
//
// Messages with the same partition key are written in the order of the call, also
// across sarama's internal retries (see KafkaConfig) and across the decorator's
// resends: the messages of one key are in flight one at a time (see send), so when
// one fails the later ones of its key are held back (ErrHeldBack) rather than
// written ahead of it. A call whose keys are all distinct, or that has no keys, is a
// single pipelined round; n messages of one key cost n rounds. Invalid messages (nil,
// too large, not marshallable) fail alone: the other messages of the call are sent.
type KafkaPublisher struct {
	cfg      KafkaConfig // defaults applied
	client   sarama.Client
	producer sarama.AsyncProducer
	pingConf *sarama.Config
	fast     fastMarshal
	maxBytes int // Producer.MaxMessageBytes of the final sarama config

	// mu is held shared while a call hands messages to the producer and exclusively by
	// Close to set closed: sarama panics on a send after its Close.
	mu     sync.RWMutex
	closed bool

	collected chan struct{} // closed when the collector has seen every answer
	closeOnce sync.Once
	closeErr  error

	// lookupErrs remembers, per topic, the last partition lookup failure, to explain
	// the "circuit breaker is open" errors sarama returns for the next 10 s.
	lookupMu   sync.Mutex
	lookupErrs map[string]error

	calls sync.Pool // of *kafkaCall
}

// fastMarshal says which built-in marshaler Publish can apply without calling the
// Marshaler interface once per message.
type fastMarshal struct {
	on  bool
	key string // metadata key of the partition key; "" for none
}

// NewKafkaPublisher connects to the cluster of cfg and returns a publisher. It fails
// when cfg is invalid (the error names the field) or no broker can be reached.
func NewKafkaPublisher(cfg KafkaConfig) (*KafkaPublisher, error) {
	sc, err := cfg.SaramaConfig()
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	// Ping opens connections of its own, with the same TLS and SASL settings, bounded
	// by PingTimeout, and metrics apart from the producer's.
	pingConf := *sc
	pingConf.Net.DialTimeout = min(sc.Net.DialTimeout, cfg.PingTimeout)
	pingConf.Net.ReadTimeout = min(sc.Net.ReadTimeout, cfg.PingTimeout)
	pingConf.Net.WriteTimeout = min(sc.Net.WriteTimeout, cfg.PingTimeout)
	pingConf.MetricRegistry = metrics.NewRegistry()

	client, err := sarama.NewClient(cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("adapter: kafka: connect to %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	producer, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("adapter: kafka: create producer: %w", err)
	}
	p := &KafkaPublisher{
		cfg:        cfg,
		client:     client,
		producer:   producer,
		pingConf:   &pingConf,
		maxBytes:   sc.Producer.MaxMessageBytes,
		collected:  make(chan struct{}),
		lookupErrs: make(map[string]error),
	}
	switch m := cfg.Marshaler.(type) {
	case kafka.DefaultMarshaler:
		p.fast = fastMarshal{on: true}
	case metadataKeyMarshaler:
		p.fast = fastMarshal{on: true, key: m.key}
	}
	p.calls.New = func() any { return &kafkaCall{done: make(chan struct{}, 1)} }
	go p.collect()
	return p, nil
}

// NewKafka returns a KafkaPublisher for kcfg decorated by NewPublisher with cfg: the
// publisher to use, with retries, metrics and health. Closing it closes the Kafka
// publisher.
func NewKafka(kcfg KafkaConfig, cfg Config) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kp, err := NewKafkaPublisher(kcfg)
	if err != nil {
		return nil, err
	}
	p, err := NewPublisher(kp, cfg)
	if err != nil {
		_ = kp.Close()
		return nil, err
	}
	return p, nil
}

// BatchError is the error of a Publish call in which some messages failed.
type BatchError struct {
	// Topic is the topic of the call.
	Topic string
	// Errors has one entry per message of the call, in order: nil for a message that
	// was written, its failure otherwise.
	Errors []error
}

// Error reports how many messages failed and the first failure.
func (e *BatchError) Error() string {
	failed, first := 0, error(nil)
	for _, err := range e.Errors {
		if err != nil {
			if first == nil {
				first = err
			}
			failed++
		}
	}
	return fmt.Sprintf("adapter: kafka: %d of %d messages to %q failed, first: %v", failed, len(e.Errors), e.Topic, first)
}

// Unwrap returns the failures, so that errors.Is and errors.As reach every one.
func (e *BatchError) Unwrap() []error {
	out := make([]error, 0, len(e.Errors))
	for _, err := range e.Errors {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// Publish publishes msgs to topic in one pipelined round per key repetition (one
// round when the keys are distinct) and returns when every
// message was written or failed: nil when all were written, otherwise a *BatchError
// whose Errors say which failed and why (errors.Is and errors.As reach sarama's
// errors). The messages that did not fail were written once. After Close it fails
// with errors matching ErrClosed.
func (p *KafkaPublisher) Publish(topic string, msgs ...*message.Message) error {
	errs := p.PublishResults(topic, msgs...)
	if errs == nil {
		return nil
	}
	return &BatchError{Topic: topic, Errors: errs}
}

// PublishResults is Publish reporting one error per message, in the order of msgs
// (nil for a message that was written), or a nil slice when every message was
// written.
//
// A message fails without being sent when it is nil (ErrNilMessage), when the topic
// is not a valid Kafka topic name (wrapping sarama.ErrInvalidTopic), when it is
// larger than MaxMessageBytes (wrapping sarama.ErrMessageSizeTooLarge), when the
// marshaler fails, or when its context has ended. The other messages of the call are
// sent all the same.
func (p *KafkaPublisher) PublishResults(topic string, msgs ...*message.Message) []error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ValidateTopic(topic); err != nil {
		return fill(make([]error, len(msgs)), err)
	}

	c := p.calls.Get().(*kafkaCall)
	c.prepare(len(msgs))
	if p.fast.on {
		p.marshalFast(c, topic, msgs)
	} else {
		p.marshalEach(c, topic, msgs)
	}

	if c.valid > 0 {
		p.send(c, msgs)
	}

	var errs []error
	if c.failed > 0 {
		errs = make([]error, len(msgs))
		var breakerCause error
		for i := range c.slots {
			s := &c.slots[i]
			if s.err == nil {
				continue
			}
			if s.pm != nil { // failed inside sarama
				s.err = p.explain(topic, msgs[i].UUID, s.err, &breakerCause)
			}
			errs[i] = s.err
		}
	}
	p.release(c)
	return errs
}

// ErrHeldBack is the failure of a message that was not sent because an earlier
// message of the same call with the same key failed: sending it would let it
// overtake that one. It is Retriable; the decorator resends it after the earlier one.
var ErrHeldBack = errors.New("adapter: kafka: held back behind a failed message with the same key")

// send hands the valid messages of c to sarama in waves and waits for the answers.
// Wave w carries the w-th message of every key (messages without a key are all in
// the first wave), so within one call the messages of a key are in flight one at a
// time: when one fails, the later ones of its key are not sent (ErrHeldBack) and
// cannot overtake it when it is resent. sarama's own retries keep order within a
// wave; this keeps it across the failures sarama returns. A call whose keys are all
// distinct is a single wave.
func (p *KafkaPublisher) send(c *kafkaCall, msgs []*message.Message) {
	waves := c.assignWaves()
	var failedKeys map[string]bool
	for w := 0; w < waves; w++ {
		// pending is set before the first send: the collector may answer before the
		// loop ends.
		n := 0
		for i := range c.slots {
			s := &c.slots[i]
			if s.pm == nil || s.wave != w {
				continue
			}
			if failedKeys != nil && failedKeys[string(s.key)] {
				s.pm = nil
				c.fail(i, fmt.Errorf("adapter: kafka: message %s not sent: %w", msgs[i].UUID, ErrHeldBack))
				continue
			}
			n++
		}
		if n == 0 {
			continue
		}
		c.pending = n
		p.mu.RLock()
		if p.closed {
			p.mu.RUnlock()
			for i := range c.slots {
				if s := &c.slots[i]; s.pm != nil && s.wave >= w {
					s.pm = nil
					c.fail(i, ErrClosed)
				}
			}
			return
		}
		in := p.producer.Input()
		for i := range c.slots {
			if s := &c.slots[i]; s.pm != nil && s.wave == w {
				in <- s.pm
			}
		}
		p.mu.RUnlock()
		<-c.done
		p.splitTooLarge(c, w)
		if w+1 < waves {
			for i := range c.slots {
				if s := &c.slots[i]; s.pm != nil && s.wave == w && s.err != nil && s.key != nil {
					if failedKeys == nil {
						failedKeys = make(map[string]bool)
					}
					failedKeys[string(s.key)] = true
				}
			}
		}
	}
}

// splitTooLarge sends again, each on its own, the messages of wave w that the broker
// rejected with MESSAGE_TOO_LARGE when there are several. A broker checks
// max.message.bytes against a whole record batch, so one oversized record fails the
// records that shared its batch; alone, the others go through and only the oversized
// one keeps its error. The Java producer splits batches the same way.
func (p *KafkaPublisher) splitTooLarge(c *kafkaCall, w int) {
	var idx []int
	for i := range c.slots {
		if s := &c.slots[i]; s.pm != nil && s.wave == w && errors.Is(s.err, sarama.ErrMessageSizeTooLarge) {
			idx = append(idx, i)
		}
	}
	if len(idx) < 2 {
		return
	}
	for _, i := range idx {
		s := &c.slots[i]
		// A fresh record: sarama may still read the one it answered for (see grow).
		old := s.pm
		s.pm = &sarama.ProducerMessage{Topic: old.Topic, Key: old.Key, Value: old.Value, Headers: old.Headers, Metadata: s}
		s.err = nil
		c.failed--
		c.pending = 1
		p.mu.RLock()
		if p.closed {
			p.mu.RUnlock()
			s.err = ErrClosed
			c.failed++
			continue
		}
		p.producer.Input() <- s.pm
		p.mu.RUnlock()
		<-c.done
	}
}

// assignWaves sets the wave of every message handed to sarama and returns the number
// of waves.
func (c *kafkaCall) assignWaves() int {
	var seen map[string]int
	waves := 1
	for i := range c.slots {
		s := &c.slots[i]
		s.wave, s.key = 0, nil
		if s.pm == nil || s.pm.Key == nil {
			continue
		}
		key, err := s.pm.Key.Encode()
		if err != nil || key == nil {
			continue
		}
		s.key = key
		if seen == nil {
			seen = make(map[string]int, len(c.slots))
		}
		s.wave = seen[string(key)]
		seen[string(key)] = s.wave + 1
		waves = max(waves, s.wave+1)
	}
	return waves
}

// explain wraps an error sarama returned for a message with the message and topic,
// and a "circuit breaker is open" with the partition lookup failure that opened it.
func (p *KafkaPublisher) explain(topic, uuid string, err error, cause *error) error {
	if errors.Is(err, breaker.ErrBreakerOpen) {
		if *cause == nil {
			p.lookupMu.Lock()
			*cause = p.lookupErrs[topic]
			p.lookupMu.Unlock()
		}
		if *cause != nil {
			return fmt.Errorf("adapter: kafka: publish message %s to %q: %w (sarama stopped looking up the topic's partitions for 10s after repeated failures; last: %w)",
				uuid, topic, err, *cause)
		}
	} else if isLookupError(err) {
		if *cause == nil {
			*cause = err
		}
		p.lookupMu.Lock()
		p.lookupErrs[topic] = err
		p.lookupMu.Unlock()
	}
	return fmt.Errorf("adapter: kafka: publish message %s to %q: %w", uuid, topic, err)
}

// isLookupError reports errors that sarama's topic breaker counts: metadata failures.
func isLookupError(err error) bool {
	return errors.Is(err, sarama.ErrUnknownTopicOrPartition) || errors.Is(err, sarama.ErrLeaderNotAvailable) ||
		errors.Is(err, sarama.ErrOutOfBrokers) || errors.Is(err, sarama.ErrTopicAuthorizationFailed)
}

// marshalEach marshals through the configured Marshaler.
func (p *KafkaPublisher) marshalEach(c *kafkaCall, topic string, msgs []*message.Message) {
	for i, m := range msgs {
		if !c.check(i, m) {
			continue
		}
		pm, err := p.cfg.Marshaler.Marshal(topic, m)
		if err != nil {
			c.fail(i, fmt.Errorf("adapter: kafka: cannot marshal message %s: %w", m.UUID, err))
			continue
		}
		if pm == nil {
			c.fail(i, fmt.Errorf("adapter: kafka: cannot marshal message %s: marshaler returned no message", m.UUID))
			continue
		}
		if pm.Topic == "" {
			pm.Topic = topic
		}
		p.admit(c, i, m, pm)
	}
}

// marshalFast writes what kafka.DefaultMarshaler (and KeyFromMetadata) write, into
// per-call slabs instead of several allocations per message: the UUID header first,
// one header per metadata entry, the payload as value, and the key when configured.
func (p *KafkaPublisher) marshalFast(c *kafkaCall, topic string, msgs []*message.Message) {
	// First pass: sizes, so that every slab is allocated once.
	nHeaders, nBytes := 0, 0
	for _, m := range msgs {
		if m == nil {
			continue
		}
		nHeaders += 1 + len(m.Metadata)
		nBytes += len(kafka.UUIDHeaderKey) + len(m.UUID)
		for k, v := range m.Metadata {
			nBytes += len(k) + len(v)
		}
	}
	c.grow(len(msgs), nHeaders, nBytes)

	for i, m := range msgs {
		if !c.check(i, m) {
			continue
		}
		if m.Metadata.Get(kafka.UUIDHeaderKey) != "" {
			c.fail(i, fmt.Errorf("adapter: kafka: cannot marshal message %s: metadata %s is reserved by watermill for message UUID", m.UUID, kafka.UUIDHeaderKey))
			continue
		}
		start := len(c.headers)
		c.headers = append(c.headers, sarama.RecordHeader{Key: c.bytes(kafka.UUIDHeaderKey), Value: c.bytes(m.UUID)})
		var key []byte
		for k, v := range m.Metadata {
			value := c.bytes(v)
			if v != "" && k == p.fast.key && p.fast.key != "" {
				key = value // the record shares the header's bytes
			}
			c.headers = append(c.headers, sarama.RecordHeader{Key: c.bytes(k), Value: value})
		}
		pm := &c.pms[i]
		*pm = sarama.ProducerMessage{Topic: topic, Headers: c.headers[start:len(c.headers):len(c.headers)]}
		// Pointers into the call's slabs: an Encoder interface holding a []byte would
		// allocate per message, a pointer does not.
		c.values[i] = sarama.ByteEncoder(m.Payload)
		pm.Value = &c.values[i]
		if key != nil {
			c.keys[i] = sarama.ByteEncoder(key)
			pm.Key = &c.keys[i]
		}
		p.admit(c, i, m, pm)
	}
}

// admit checks the size of a marshalled message and queues it for sending.
func (p *KafkaPublisher) admit(c *kafkaCall, i int, m *message.Message, pm *sarama.ProducerMessage) {
	// Record format v2 (Version >= 0.11 is enforced): the size sarama checks.
	if size := pm.ByteSize(2); size > p.maxBytes {
		c.fail(i, fmt.Errorf("adapter: kafka: message %s is too large: %d bytes, more than MaxMessageBytes (%d): %w",
			m.UUID, size, p.maxBytes, sarama.ErrMessageSizeTooLarge))
		return
	}
	s := &c.slots[i]
	s.pm = pm
	pm.Metadata = s
	c.valid++
}

// collect routes sarama's answers to the calls waiting for them, until the producer
// is closed.
func (p *KafkaPublisher) collect() {
	defer close(p.collected)
	successes, errs := p.producer.Successes(), p.producer.Errors()
	for successes != nil || errs != nil {
		select {
		case pm, ok := <-successes:
			if !ok {
				successes = nil
				continue
			}
			answer(pm, nil)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if pe != nil {
				answer(pe.Msg, pe.Err)
			}
		}
	}
}

// answer records the outcome of one message and wakes its call after its last one.
func answer(pm *sarama.ProducerMessage, err error) {
	if pm == nil {
		return
	}
	s, ok := pm.Metadata.(*kafkaSlot)
	if !ok {
		return
	}
	c := s.call
	if err != nil {
		s.err = err
		c.failed++
	}
	c.pending--
	if c.pending == 0 {
		c.done <- struct{}{}
	}
}

// Close flushes the messages handed to sarama, waits for their answers, and closes
// the producer and its connections. It is idempotent and safe to call concurrently
// with Publish: calls that have not handed their messages over yet fail with
// ErrClosed. Sarama does not cut a linger short on close, so Close may wait up to
// Flush.Frequency before the last messages leave, then for their answers.
func (p *KafkaPublisher) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.producer.AsyncClose()
		<-p.collected
		if err := p.client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
			p.closeErr = fmt.Errorf("adapter: kafka: close: %w", err)
		}
	})
	return p.closeErr
}

// Ping checks that a broker answers: it opens a new connection to the bootstrap
// brokers in turn (TLS and SASL included) and asks for the cluster metadata of no
// topic. It returns nil at the first broker that answers, and fails within
// PingTimeout, or earlier when ctx ends. After Close it returns ErrClosed.
func (p *KafkaPublisher) Ping(ctx context.Context) error {
	p.mu.RLock()
	closed := p.closed
	p.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("adapter: kafka ping: %w", err)
	}
	result := make(chan error, 1) // buffered: the pinger never blocks after we left
	go func() { result <- p.ping() }()
	timer := time.NewTimer(p.cfg.PingTimeout)
	defer timer.Stop()
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("adapter: kafka ping: %w", ctx.Err())
	case <-timer.C:
		return fmt.Errorf("adapter: kafka ping: no answer within %v: %w", p.cfg.PingTimeout, context.DeadlineExceeded)
	}
}

func (p *KafkaPublisher) ping() error {
	var errs []error
	for _, addr := range p.cfg.Brokers {
		b := sarama.NewBroker(addr)
		if err := b.Open(p.pingConf); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		// An empty topic list asks for no topic (nil would mean all of them).
		_, err := b.GetMetadata(sarama.NewMetadataRequest(p.pingConf.Version, []string{}))
		_ = b.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return fmt.Errorf("adapter: kafka ping: no broker answered: %w", errors.Join(errs...))
}

// KeyFromMetadata returns a marshaler that writes what kafka.DefaultMarshaler writes
// and uses the message's metadata value under key as the Kafka partition key, so that
// messages with the same value go to the same partition, in order. A message without
// that metadata gets no key, and sarama spreads such messages over the partitions.
// It is also an Unmarshaler (kafka.DefaultMarshaler's), for watermill-kafka
// subscribers.
func KeyFromMetadata(key string) kafka.MarshalerUnmarshaler {
	return metadataKeyMarshaler{key: key}
}

type metadataKeyMarshaler struct {
	kafka.DefaultMarshaler
	key string
}

// Marshal marshals msg as kafka.DefaultMarshaler does, with the partition key.
func (m metadataKeyMarshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	pm, err := m.DefaultMarshaler.Marshal(topic, msg)
	if err != nil {
		return nil, err
	}
	if k := msg.Metadata.Get(m.key); k != "" {
		pm.Key = sarama.StringEncoder(k)
	}
	return pm, nil
}

// maxTopicLen is Kafka's limit on topic names.
const maxTopicLen = 249

// ValidateTopic reports whether topic is a valid Kafka topic name: 1 to 249
// characters among ASCII letters, digits, '.', '_' and '-', and neither "." nor "..".
// The error wraps sarama.ErrInvalidTopic, which Classify reports as Permanent.
func ValidateTopic(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("adapter: kafka: empty topic name: %w", sarama.ErrInvalidTopic)
	case len(topic) > maxTopicLen:
		return fmt.Errorf("adapter: kafka: invalid topic name %q...: %d characters, more than %d: %w",
			topic[:32], len(topic), maxTopicLen, sarama.ErrInvalidTopic)
	case topic == "." || topic == "..":
		return fmt.Errorf("adapter: kafka: invalid topic name %q: %w", topic, sarama.ErrInvalidTopic)
	}
	for i := 0; i < len(topic); i++ {
		switch ch := topic[i]; {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '.', ch == '_', ch == '-':
		default:
			r, _ := utf8.DecodeRuneInString(topic[i:])
			return fmt.Errorf("adapter: kafka: invalid topic name %q: character %q at %d is not allowed (only ASCII letters, digits, '.', '_' and '-'): %w",
				topic, r, i, sarama.ErrInvalidTopic)
		}
	}
	return nil
}

func fill(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// kafkaCall is the state of one PublishResults call, pooled across calls. What the
// records point at (headers, bytes) lives in its slabs, which are reused only after
// sarama has answered for every message of the call; the records are fresh per call.
type kafkaCall struct {
	slots []kafkaSlot
	// pending, failed: written by the caller before the first send, then only by the
	// collector until done is signalled.
	pending int
	failed  int
	valid   int
	done    chan struct{}

	pms     []sarama.ProducerMessage
	values  []sarama.ByteEncoder
	keys    []sarama.ByteEncoder
	headers []sarama.RecordHeader
	arena   []byte
}

// kafkaSlot is one message of a call; the ProducerMessage's Metadata points at it.
type kafkaSlot struct {
	call *kafkaCall
	pm   *sarama.ProducerMessage // nil when the message was not handed to sarama
	err  error
	key  []byte // the record's key, nil without one
	wave int    // see send
}

// Bounds on what a pooled call keeps, so that one huge call does not pin memory.
const (
	maxPooledSlots = 1 << 14
	maxPooledArena = 4 << 20
)

func (c *kafkaCall) prepare(n int) {
	if cap(c.slots) < n {
		c.slots = make([]kafkaSlot, n)
	}
	c.slots = c.slots[:n]
	for i := range c.slots {
		c.slots[i] = kafkaSlot{call: c}
	}
	c.pending, c.failed, c.valid = 0, 0, 0
}

// grow sizes the slabs of the fast marshaler for n messages, h headers and b bytes.
func (c *kafkaCall) grow(n, h, b int) {
	// The records themselves are never reused: sarama may still read a record after
	// it answered for it (its partition producer reads msg.retries to back off after
	// returning an error), so each call gets fresh ones, one allocation per call.
	c.pms = make([]sarama.ProducerMessage, n)
	if cap(c.values) < n {
		c.values = make([]sarama.ByteEncoder, n)
		c.keys = make([]sarama.ByteEncoder, n)
	}
	c.values, c.keys = c.values[:n], c.keys[:n]
	if cap(c.headers) < h {
		c.headers = make([]sarama.RecordHeader, 0, h)
	}
	c.headers = c.headers[:0]
	if cap(c.arena) < b {
		c.arena = make([]byte, 0, b)
	}
	c.arena = c.arena[:0]
}

// bytes copies s into the arena, which grow sized for every string of the call.
func (c *kafkaCall) bytes(s string) []byte {
	start := len(c.arena)
	c.arena = append(c.arena, s...)
	return c.arena[start:len(c.arena):len(c.arena)]
}

// check fails message i when it is nil or its context has ended.
func (c *kafkaCall) check(i int, m *message.Message) bool {
	if m == nil {
		c.fail(i, fmt.Errorf("adapter: kafka: message %d: %w", i, ErrNilMessage))
		return false
	}
	if err := m.Context().Err(); err != nil {
		c.fail(i, fmt.Errorf("adapter: kafka: message %s not sent: %w", m.UUID, err))
		return false
	}
	return true
}

func (c *kafkaCall) fail(i int, err error) {
	c.slots[i].err = err
	c.failed++
}

// release clears the references of c to the caller's data and pools it.
func (p *KafkaPublisher) release(c *kafkaCall) {
	if cap(c.slots) > maxPooledSlots || cap(c.arena) > maxPooledArena {
		return
	}
	clear(c.slots)
	c.pms = nil // sarama may still read them; see grow
	clear(c.values)
	clear(c.keys)
	clear(c.headers[:cap(c.headers)])
	c.headers = c.headers[:0]
	c.arena = c.arena[:0]
	p.calls.Put(c)
}

// String describes the publisher by its configuration, without secrets.
func (p *KafkaPublisher) String() string {
	return "KafkaPublisher(" + strings.Join(p.cfg.Brokers, ",") + ", client " + strconv.Quote(p.cfg.ClientID) + ")"
}
