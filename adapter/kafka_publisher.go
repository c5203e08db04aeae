package adapter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaRecordMarshaler turns a Watermill message into a franz-go record for topic.
// The record's Topic defaults to topic when left empty; Partition is ignored (keys
// choose partitions, see KafkaConfig.Marshaler). KeyFromMetadata and
// router.Marshaler implement it.
type KafkaRecordMarshaler interface {
	MarshalRecord(topic string, msg *message.Message) (*kgo.Record, error)
}

// KafkaPublisher publishes Watermill messages to Kafka through franz-go, wire
// compatible with watermill-kafka: its subscribers read the messages unchanged. It
// implements message.Publisher, ResultPublisher and Pinger, and is safe for
// concurrent use.
//
// Calls are group-committed in rounds: the records of every call waiting when a round
// starts are handed to franz-go together, then flushed at once, and each call returns
// when all of its records are written or failed. A round costs about one round trip
// to each broker involved, whatever the number of keys or of messages per key (up to
// the batch size, MaxMessageBytes per partition); calls that arrive during a round
// share the next one.
//
// Order per key: messages with the same partition key are written in the order of
// their call, also across franz-go's retries (idempotent producer, same sequence
// numbers). Nothing is produced between the start of a round's flush and its last
// answer, and when a record fails franz-go fails every record buffered behind it in
// its partition, so a key's failed messages are always a suffix of its messages in
// the round: the decorator resends that suffix, in order, before anything later of
// that key is produced. A record that fails because of a neighbour (a batch rejected
// as a whole) is reported with ErrHeldBack, which is Retriable, whenever its own
// error would otherwise be Permanent: a good message is never dead-lettered for
// sharing a batch with a bad one. To find the bad one, records of a partition that
// failed together with a permanent error are sent again in halves, in order, until
// each failure is alone.
//
// Invalid messages (nil, too large, not marshallable, context ended) fail alone,
// without being sent; the other messages of the call are sent.
type KafkaPublisher struct {
	cfg     KafkaConfig // defaults applied
	cl      *kgo.Client
	marshal func(topic string, m *message.Message) (*kgo.Record, error) // nil: the built-in path
	keyMeta string                                                      // built-in path: metadata key of the partition key

	mu     sync.Mutex
	closed bool
	queue  []*kafkaCall
	wake   chan struct{} // capacity 1: a call is queued or Close was called
	done   chan struct{} // closed when the round loop has returned

	// unreachable is closed, and replaced, whenever a connection to a broker cannot
	// be opened; dialErr is that failure. Calls waiting for a round give up then.
	unreachable chan struct{}
	dialErr     error

	closeOnce sync.Once
	closeErr  error
}

// NewKafkaPublisher validates cfg (the error names the field), creates the franz-go
// client and checks that a broker answers within PingTimeout (TLS and SASL
// included). It fails when cfg is invalid or no broker can be reached.
func NewKafkaPublisher(cfg KafkaConfig) (*KafkaPublisher, error) {
	opts, err := cfg.kgoOpts()
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &KafkaPublisher{cfg: cfg, wake: make(chan struct{}, 1), done: make(chan struct{}), unreachable: make(chan struct{})}
	opts = append(opts, kgo.WithHooks(dialHook{p}))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("adapter: kafka: client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.PingTimeout)
	err = cl.Ping(ctx)
	cancel()
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("adapter: kafka: connect to %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	p.cl = cl
	switch m := cfg.Marshaler.(type) {
	case kafka.DefaultMarshaler:
	case metadataKeyMarshaler:
		p.keyMeta = m.key
	default:
		p.marshal = saramaMarshal(m)
	}
	if rm, ok := cfg.Marshaler.(KafkaRecordMarshaler); ok && p.marshal != nil {
		p.marshal = rm.MarshalRecord
	}
	if cfg.RecordMarshaler != nil {
		p.marshal = cfg.RecordMarshaler.MarshalRecord
	}
	go p.loop()
	return p, nil
}

// NewKafka returns a KafkaPublisher for kcfg decorated by NewPublisher with cfg: the
// publisher to use, with retries, metrics and health. Closing it closes the Kafka
// publisher. kcfg.DeliveryTimeout is lowered to a quarter of cfg.MaxElapsedTime when
// that is shorter (but not below 1s, franz-go's minimum), so that franz-go gives
// failures back while the decorator still has budget to retry them.
func NewKafka(kcfg KafkaConfig, cfg Config) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if budget := cfg.withDefaults().MaxElapsedTime; budget > 0 && kcfg.DeliveryTimeout >= 0 {
		kcfg.DeliveryTimeout = min(kcfg.withDefaults().DeliveryTimeout, max(budget/4, minDeliveryTimeout))
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

// Publish publishes msgs to topic in one round (see KafkaPublisher) and returns when
// every message was written or failed: nil when all were written, otherwise a
// *BatchError whose Errors say which failed and why (errors.Is and errors.As reach
// franz-go's errors, and a broker error code also matches sarama's KError of the same
// code). The messages that did not fail were written once. After Close it fails with
// errors matching ErrClosed.
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
// When a broker cannot be reached while the call waits, PublishResults returns at once:
// the messages sent fail with the dial error (Retriable), although franz-go keeps
// them and may still write them when the broker is back; a resend queues behind
// them. Likewise after DeliveryTimeout (kgo.ErrRecordTimeout).
//
// When the context of the messages ends before the round answers (a broker that
// accepted a request and does not answer holds the round until DeliveryTimeout, or
// until it answers), PublishResults returns at once: the messages sent fail with
// the context's error, although the broker may still write them.
//
// A message fails without being sent when it is nil (ErrNilMessage), when the topic
// is not a valid Kafka topic name (wrapping kerr.InvalidTopicException), when the
// marshaler fails, or when its context has ended; when it is larger than
// MaxMessageBytes franz-go fails it before sending (kerr.MessageTooLarge). The other
// messages of the call are sent all the same.
func (p *KafkaPublisher) PublishResults(topic string, msgs ...*message.Message) []error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ValidateTopic(topic); err != nil {
		return fill(make([]error, len(msgs)), err)
	}
	c := &kafkaCall{topic: topic, msgs: msgs, errs: make([]error, len(msgs)), done: make(chan struct{})}
	if p.marshal == nil {
		p.marshalBuiltIn(c)
	} else {
		p.marshalEach(c)
	}
	if c.valid > 0 {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			for i, r := range c.recs {
				if r != nil {
					c.errs[i] = ErrClosed
				}
			}
		} else {
			p.queue = append(p.queue, c)
			p.mu.Unlock()
			select {
			case p.wake <- struct{}{}:
			default:
			}
			p.mu.Lock()
			unreachable := p.unreachable
			p.mu.Unlock()
			var timeout <-chan time.Time
			if wait := p.answerWait(); wait > 0 {
				t := time.NewTimer(wait)
				defer t.Stop()
				timeout = t.C
			}
			select {
			case <-c.done:
			case <-timeout:
				// The round holds records franz-go sent and the broker has not
				// answered (an outage): franz-go keeps them until it does. Give the
				// caller a retriable failure; its resend queues behind them, in
				// order, and a call not produced yet is dropped from the queue.
				return p.abandon(c, fmt.Errorf("no answer from the broker within %v, it may still be written: %w", p.answerWait(), kgo.ErrRecordTimeout))
			case <-unreachable:
				// A broker cannot be reached: franz-go keeps the records and retries,
				// but the caller hears of the outage now, as with a producer that
				// fails fast, and its resend queues behind them, in order.
				p.mu.Lock()
				err := p.dialErr
				p.mu.Unlock()
				return p.abandon(c, fmt.Errorf("a broker cannot be reached, the message may still be written when it can: %w", err))
			case <-c.ctxDone():
				// The caller gave up (its messages' context ended) while the round
				// is still waiting, typically for a broker that does not answer.
				// The records stay with franz-go: whether they are written is not
				// known, which the error says (Canceled).
				return p.abandon(c, nil)
			}
		}
	}
	for _, err := range c.errs {
		if err != nil {
			return c.errs
		}
	}
	return nil
}

// answerWait is how long a call waits for its round before giving up: franz-go
// fails a record it could not send after DeliveryTimeout, but keeps one it sent until
// the broker answers, which in an outage can be long. The round's Linger comes on
// top. 0 (no limit) without a DeliveryTimeout.
func (p *KafkaPublisher) answerWait() time.Duration {
	if p.cfg.DeliveryTimeout <= 0 {
		return 0
	}
	return p.cfg.DeliveryTimeout + p.cfg.Linger
}

// dialHook tells waiting calls when a connection to a broker cannot be opened.
type dialHook struct{ p *KafkaPublisher }

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h dialHook) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil || meta.NodeID < 0 {
		// A bootstrap address (negative ids) that fails says nothing about the
		// brokers that lead partitions.
		return
	}
	h.p.mu.Lock()
	h.p.dialErr = err
	close(h.p.unreachable)
	h.p.unreachable = make(chan struct{})
	h.p.mu.Unlock()
}

// abandon gives up waiting for c's round and returns its results: each message
// sent fails with cause, or with its context's error when cause is nil. A call the
// round loop has not taken yet is dropped from the queue.
func (p *KafkaPublisher) abandon(c *kafkaCall, cause error) []error {
	p.mu.Lock()
	for i, q := range p.queue {
		if q == c {
			p.queue = append(p.queue[:i:i], p.queue[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	errs := make([]error, len(c.msgs))
	for i, r := range c.recs {
		if r == nil {
			errs[i] = c.errs[i]
			continue
		}
		err := cause
		if err == nil {
			err = fmt.Errorf("gave up waiting for the broker's answer, it may still be written: %w", c.msgs[i].Context().Err())
		}
		errs[i] = fmt.Errorf("adapter: kafka: message %s: %w", c.msgs[i].UUID, err)
	}
	return errs
}

// kafkaCall is one PublishResults call waiting for its round.
type kafkaCall struct {
	topic string
	msgs  []*message.Message
	recs  []*kgo.Record // nil where the message failed before sending
	errs  []error
	valid int
	done  chan struct{} // closed by the round loop when errs is final
}

// ctxDone returns the Done channel shared by the contexts of the call's messages
// sent, or nil (wait for the round) when they do not share one.
func (c *kafkaCall) ctxDone() <-chan struct{} {
	var done <-chan struct{}
	for i, r := range c.recs {
		if r == nil {
			continue
		}
		d := c.msgs[i].Context().Done()
		if done == nil {
			done = d
		} else if d != done {
			return nil
		}
	}
	return done
}

// check fails message i when it is nil or its context has ended.
func (c *kafkaCall) check(i int, m *message.Message) bool {
	if m == nil {
		c.errs[i] = fmt.Errorf("adapter: kafka: message %d: %w", i, ErrNilMessage)
		return false
	}
	if err := m.Context().Err(); err != nil {
		c.errs[i] = fmt.Errorf("adapter: kafka: message %s not sent: %w", m.UUID, err)
		return false
	}
	return true
}

// marshalEach marshals through the configured marshaler.
func (p *KafkaPublisher) marshalEach(c *kafkaCall) {
	c.recs = make([]*kgo.Record, len(c.msgs))
	for i, m := range c.msgs {
		if !c.check(i, m) {
			continue
		}
		r, err := p.marshal(c.topic, m)
		if err == nil && r == nil {
			err = errors.New("marshaler returned no record")
		}
		if err != nil {
			c.errs[i] = fmt.Errorf("adapter: kafka: cannot marshal message %s: %w", m.UUID, err)
			continue
		}
		if r.Topic == "" {
			r.Topic = c.topic
		}
		c.recs[i] = r
		c.valid++
	}
}

// marshalBuiltIn writes what kafka.DefaultMarshaler (and KeyFromMetadata) write, into
// three allocations per call: the UUID header first, one header per metadata entry,
// the payload as value, and the key when configured.
func (p *KafkaPublisher) marshalBuiltIn(c *kafkaCall) {
	nHeaders, nBytes := 0, 0
	for _, m := range c.msgs {
		if m == nil {
			continue
		}
		nHeaders += 1 + len(m.Metadata)
		nBytes += len(m.UUID)
		for _, v := range m.Metadata {
			nBytes += len(v)
		}
	}
	slab := make([]kgo.Record, len(c.msgs))
	headers := make([]kgo.RecordHeader, 0, nHeaders)
	arena := make([]byte, 0, nBytes)
	bytes := func(s string) []byte {
		start := len(arena)
		arena = append(arena, s...)
		return arena[start:len(arena):len(arena)]
	}
	c.recs = make([]*kgo.Record, len(c.msgs))
	for i, m := range c.msgs {
		if !c.check(i, m) {
			continue
		}
		if m.Metadata.Get(kafka.UUIDHeaderKey) != "" {
			c.errs[i] = fmt.Errorf("adapter: kafka: cannot marshal message %s: metadata %s is reserved by watermill for message UUID", m.UUID, kafka.UUIDHeaderKey)
			continue
		}
		start := len(headers)
		headers = append(headers, kgo.RecordHeader{Key: kafka.UUIDHeaderKey, Value: bytes(m.UUID)})
		var key []byte
		for k, v := range m.Metadata {
			value := bytes(v)
			if v != "" && p.keyMeta != "" && k == p.keyMeta {
				key = value // the record shares the header's bytes
			}
			headers = append(headers, kgo.RecordHeader{Key: k, Value: value})
		}
		r := &slab[i]
		r.Topic, r.Key, r.Value = c.topic, key, m.Payload
		r.Headers = headers[start:len(headers):len(headers)]
		c.recs[i] = r
		c.valid++
	}
}

// saramaMarshal adapts a watermill-kafka marshaler: the *sarama.ProducerMessage it
// returns becomes a franz-go record with the same topic, key, value, headers and
// timestamp.
func saramaMarshal(m kafka.Marshaler) func(string, *message.Message) (*kgo.Record, error) {
	return func(topic string, msg *message.Message) (*kgo.Record, error) {
		pm, err := m.Marshal(topic, msg)
		if err != nil {
			return nil, err
		}
		if pm == nil {
			return nil, nil
		}
		return recordFromSarama(pm)
	}
}

func recordFromSarama(pm *sarama.ProducerMessage) (*kgo.Record, error) {
	r := &kgo.Record{Topic: pm.Topic, Timestamp: pm.Timestamp}
	var err error
	if pm.Key != nil {
		if r.Key, err = pm.Key.Encode(); err != nil {
			return nil, fmt.Errorf("encode key: %w", err)
		}
	}
	if pm.Value != nil {
		if r.Value, err = pm.Value.Encode(); err != nil {
			return nil, fmt.Errorf("encode value: %w", err)
		}
	}
	if len(pm.Headers) > 0 {
		r.Headers = make([]kgo.RecordHeader, len(pm.Headers))
		for i, h := range pm.Headers {
			r.Headers[i] = kgo.RecordHeader{Key: string(h.Key), Value: h.Value}
		}
	}
	return r, nil
}

// Close waits for the rounds of the calls already queued (their answers are
// reported), then closes the client and its connections. Calls that were not queued
// yet fail with ErrClosed. It is idempotent and safe to call concurrently with
// Publish. When a round is still waiting after DeliveryTimeout (a broker that
// accepted a request and never answered), the client is closed under it and its
// records fail with kgo.ErrClientClosed.
func (p *KafkaPublisher) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		select {
		case p.wake <- struct{}{}:
		default:
		}
		wait := p.cfg.DeliveryTimeout
		if wait <= 0 {
			wait = DefaultKafkaDeliveryTimeout
		}
		t := time.NewTimer(wait + time.Second)
		defer t.Stop()
		select {
		case <-p.done:
			p.cl.Close()
		case <-t.C:
			p.cl.Close()
			<-p.done
			p.closeErr = fmt.Errorf("adapter: kafka: close: a round did not finish within %v; its records failed", wait)
		}
	})
	return p.closeErr
}

// Ping checks that a broker answers a metadata request for no topic (TLS and SASL
// included), asking the known brokers then the bootstrap addresses in turn. It fails
// within PingTimeout, or earlier when ctx ends. After Close it returns ErrClosed.
func (p *KafkaPublisher) Ping(ctx context.Context) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("adapter: kafka ping: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.PingTimeout)
	defer cancel()
	if err := p.cl.Ping(ctx); err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return fmt.Errorf("adapter: kafka ping: no broker answered within %v: %w", p.cfg.PingTimeout, err)
	}
	return nil
}

// KeyFromMetadata returns a marshaler that writes what kafka.DefaultMarshaler writes
// and uses the message's metadata value under key as the Kafka partition key, so that
// messages with the same value go to the same partition, in order. A message without
// that metadata gets no key, and such messages are spread over the partitions. It is
// also an Unmarshaler (kafka.DefaultMarshaler's), for watermill-kafka subscribers,
// and a KafkaRecordMarshaler.
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

// MarshalRecord is Marshal producing a franz-go record.
func (m metadataKeyMarshaler) MarshalRecord(topic string, msg *message.Message) (*kgo.Record, error) {
	pm, err := m.Marshal(topic, msg)
	if err != nil {
		return nil, err
	}
	return recordFromSarama(pm)
}

// maxTopicLen is Kafka's limit on topic names.
const maxTopicLen = 249

// ValidateTopic reports whether topic is a valid Kafka topic name: 1 to 249
// characters among ASCII letters, digits, '.', '_' and '-', and neither "." nor "..".
// The error wraps kerr.InvalidTopicException (and matches sarama.ErrInvalidTopic),
// which Classify reports as Permanent.
func ValidateTopic(topic string) error {
	invalid := brokerError(kerr.InvalidTopicException)
	switch {
	case topic == "":
		return fmt.Errorf("adapter: kafka: empty topic name: %w", invalid)
	case len(topic) > maxTopicLen:
		return fmt.Errorf("adapter: kafka: invalid topic name %q...: %d characters, more than %d: %w",
			topic[:32], len(topic), maxTopicLen, invalid)
	case topic == "." || topic == "..":
		return fmt.Errorf("adapter: kafka: invalid topic name %q: %w", topic, invalid)
	}
	for i := 0; i < len(topic); i++ {
		switch ch := topic[i]; {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '.', ch == '_', ch == '-':
		default:
			r, _ := utf8.DecodeRuneInString(topic[i:])
			return fmt.Errorf("adapter: kafka: invalid topic name %q: character %q at %d is not allowed (only ASCII letters, digits, '.', '_' and '-'): %w",
				topic, r, i, invalid)
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

// String describes the publisher by its configuration, without secrets.
func (p *KafkaPublisher) String() string {
	return "KafkaPublisher(" + strings.Join(p.cfg.Brokers, ",") + ", client " + strconv.Quote(p.cfg.ClientID) + ")"
}
