package adapter

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
)

// Defaults of KafkaConfig. Each is explained on the field it applies to.
const (
	DefaultKafkaClientID        = "millrace"
	DefaultKafkaMaxMessageBytes = 1 << 20 // 1 MiB
	DefaultKafkaDialTimeout     = 10 * time.Second
	DefaultKafkaReadTimeout     = 30 * time.Second
	DefaultKafkaWriteTimeout    = 30 * time.Second
	DefaultKafkaProduceTimeout  = 10 * time.Second
	DefaultKafkaMetadataRefresh = 5 * time.Minute
	DefaultKafkaRetryMax        = 3
	DefaultKafkaRetryBackoff    = 100 * time.Millisecond
	DefaultKafkaPingTimeout     = 5 * time.Second
	DefaultKafkaLinger          = time.Millisecond
)

// DefaultKafkaVersion is the Kafka protocol version KafkaConfig assumes when Version is
// zero. See KafkaConfig.Version.
var DefaultKafkaVersion = sarama.V3_6_0_0

// Acks is how many brokers must have written a message before the producer counts it
// as written (Kafka's acks). Its values are not Kafka's wire values: the zero value is
// AcksAll, so that a config that leaves the field out keeps the strongest guarantee.
type Acks int8

const (
	// AcksAll waits for every in-sync replica (Kafka acks=all): a written message
	// survives the loss of the leader. Required by the idempotent producer. The zero
	// value, and the default.
	AcksAll Acks = iota
	// AcksLeader waits for the partition leader only (acks=1): a message is lost when
	// the leader dies before its followers copied it. Needs DisableIdempotence.
	AcksLeader
	// AcksNone does not wait for any answer (acks=0, fire and forget): nothing tells
	// a lost message from a written one, and offsets are not reported. Needs
	// DisableIdempotence.
	AcksNone
)

// String returns "all", "leader" or "none".
func (a Acks) String() string {
	switch a {
	case AcksAll:
		return "all"
	case AcksLeader:
		return "leader"
	case AcksNone:
		return "none"
	default:
		return "Acks(" + strconv.Itoa(int(a)) + ")"
	}
}

func (a Acks) sarama() sarama.RequiredAcks {
	switch a {
	case AcksLeader:
		return sarama.WaitForLocal
	case AcksNone:
		return sarama.NoResponse
	default:
		return sarama.WaitForAll
	}
}

// Compression is the codec of the record batches the producer writes. Consumers
// decompress transparently. The zero value is CompressionSnappy, the default (see
// KafkaConfig.Compression); CompressionNone turns compression off.
type Compression int8

const (
	// CompressionSnappy is Snappy, the zero value and the default: the cheapest codec
	// in CPU, understood by every Kafka broker and client since 0.8.
	CompressionSnappy Compression = iota
	// CompressionNone sends records uncompressed.
	CompressionNone
	// CompressionLZ4 is LZ4 (Kafka >= 0.10).
	CompressionLZ4
	// CompressionZSTD is Zstandard (Kafka >= 2.1): the best ratio, more CPU.
	CompressionZSTD
	// CompressionGZIP is gzip: a good ratio, the most CPU.
	CompressionGZIP
)

// String returns the codec's name as Kafka spells it (compression.type).
func (c Compression) String() string {
	switch c {
	case CompressionSnappy:
		return "snappy"
	case CompressionNone:
		return "none"
	case CompressionLZ4:
		return "lz4"
	case CompressionZSTD:
		return "zstd"
	case CompressionGZIP:
		return "gzip"
	default:
		return "Compression(" + strconv.Itoa(int(c)) + ")"
	}
}

func (c Compression) sarama() sarama.CompressionCodec {
	switch c {
	case CompressionNone:
		return sarama.CompressionNone
	case CompressionLZ4:
		return sarama.CompressionLZ4
	case CompressionZSTD:
		return sarama.CompressionZSTD
	case CompressionGZIP:
		return sarama.CompressionGZIP
	default:
		return sarama.CompressionSnappy
	}
}

// KafkaConfig configures a KafkaPublisher. It is passed by value; a zero field means
// its default, and NewKafkaPublisher rejects invalid values with an error naming the
// field. No zero value weakens delivery.
//
// Delivery and ordering: by default the producer is idempotent (acks=all, one request
// in flight per broker connection, sarama's internal retries de-duplicated by the
// broker), so messages with the same partition key stay in order on their partition,
// also across sarama's internal retries. With DisableIdempotence the producer still
// keeps a single request in flight per connection, which keeps that order; raising
// Net.MaxOpenRequests through OverwriteSaramaConfig without idempotence gives it up.
//
// Retries happen at two levels. Sarama retries the errors it knows to be transient
// (leader changes, timeouts, not enough replicas: see Retry) inside one Publish call,
// and with the idempotent producer those retries never duplicate a message. The
// Publisher decorator retries what is still failing after that, with backoff and a
// time budget; such a resend is a new record, so it can duplicate. Keep Retry small:
// every decorator attempt includes up to Retry.Max+1 sarama attempts.
type KafkaConfig struct {
	// Brokers are the bootstrap addresses (host:port) of the cluster. Required.
	Brokers []string

	// Marshaler turns a Watermill message into a Kafka record. Defaults to
	// watermill-kafka's kafka.DefaultMarshaler{}, so that watermill-kafka subscribers
	// read the messages unchanged (UUID in the _watermill_message_uuid header, one
	// header per metadata entry, no key). Use KeyFromMetadata, or watermill-kafka's
	// kafka.NewWithPartitioningMarshaler, to set a partition key. DefaultMarshaler and
	// KeyFromMetadata take an allocation-free path; other marshalers are called once
	// per message, and the Metadata field of the sarama.ProducerMessage they return is
	// overwritten (the publisher tracks the message with it).
	Marshaler kafka.Marshaler

	// ClientID is sent with every request, for the broker's logs, quotas and ACLs.
	// Defaults to "millrace", rather than sarama's "sarama", so brokers can tell this
	// library's traffic apart.
	ClientID string

	// RequiredAcks is how many replicas must have written a message before it counts as
	// written. Defaults to AcksAll (the zero value): anything weaker can lose
	// acknowledged messages, and the idempotent producer requires it.
	RequiredAcks Acks

	// DisableIdempotence turns the idempotent producer off. Defaults to false
	// (idempotent): the broker then de-duplicates sarama's internal retries and keeps
	// their order. It must be set to use AcksLeader or AcksNone. Ordering per
	// partition is still kept (one request in flight per connection), but an internal
	// retry of a request whose answer was lost can duplicate messages.
	DisableIdempotence bool

	// Compression is the codec of the record batches. Defaults to CompressionSnappy
	// (the zero value): the cheapest codec in CPU, supported by every broker and
	// client, and it cuts the bytes of JSON-like events on the network and on the
	// brokers' disks several times over. With 1000-message calls on the in-process
	// test broker it measured about as fast as no compression, often faster (that
	// broker shares the CPU and copies fewer bytes); the cost is producer CPU. Set
	// CompressionNone to turn it off.
	Compression Compression

	// MaxMessageBytes is the largest record, as sarama measures it (payload, key,
	// headers and record overhead), that Publish accepts; a larger message fails at
	// once, permanently, without being sent. It is also the largest batch sarama builds
	// for one partition. Defaults to 1 MiB (1048576), just under Kafka's default
	// message.max.bytes (1048588), so that a default broker never rejects what the
	// producer accepted. Raise it only together with the topic's max.message.bytes.
	MaxMessageBytes int

	// Flush controls how sarama groups messages into produce requests. Defaults to a
	// linger of 1ms: see KafkaFlush.
	Flush KafkaFlush

	// DialTimeout bounds opening a connection to a broker, TLS and SASL included.
	// Defaults to 10s (sarama: 30s): an unreachable broker is reported early enough
	// for the decorator's retries and time budget to matter.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for a broker's answer. It must be longer than
	// ProduceTimeout, or the client gives up on requests the broker is still allowed to
	// answer. Defaults to 30s (sarama's, and Kafka's request.timeout.ms).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a request to a broker. Defaults to 30s (sarama's).
	WriteTimeout time.Duration
	// ProduceTimeout is how long the broker waits for the in-sync replicas to
	// acknowledge a produce request under AcksAll (sarama's Producer.Timeout). Defaults
	// to 10s (sarama's); the broker then answers REQUEST_TIMED_OUT, which sarama
	// retries.
	ProduceTimeout time.Duration
	// MetadataRefresh is how often the cluster metadata is refreshed in the background,
	// to learn of new partitions and brokers. A negative value disables it. Defaults to
	// 5m, like Kafka's metadata.max.age.ms (sarama: 10m).
	MetadataRefresh time.Duration

	// Retry controls sarama's internal retries. Defaults: 3 retries, 100ms apart.
	Retry KafkaRetry

	// PingTimeout bounds Ping when its context has no earlier deadline. Defaults to 5s,
	// the decorator's BrokerCheckTimeout.
	PingTimeout time.Duration

	// TLS configures encryption. Off unless one of its fields is set.
	TLS KafkaTLS

	// SASL configures authentication. Off unless Mechanism or User is set.
	SASL KafkaSASL

	// Version is the Kafka protocol version the producer assumes. It must be at least
	// 0.11 (record headers, which carry the message UUID, and the idempotent
	// producer). Sarama negotiates each request's version down to what the broker
	// supports (ApiVersions), so a newer value is safe with older brokers. Defaults to
	// DefaultKafkaVersion (3.6), which the in-process test broker and current clusters
	// support; sarama's own default is 2.8.
	Version sarama.KafkaVersion

	// OverwriteSaramaConfig, when set, is called with the sarama configuration built
	// from the fields above, just before it is validated: the escape hatch for any
	// sarama setting not exposed here. Producer.Return.Successes and
	// Producer.Return.Errors must stay true. Beware of shortening Metadata.Retry:
	// after three failed partition lookups sarama's producer opens a circuit breaker
	// for 10s, so a short outage can then delay recovery by 10s.
	OverwriteSaramaConfig func(*sarama.Config)
}

// KafkaFlush controls batching (sarama's Producer.Flush). Sarama sends a produce
// request per broker whenever the previous one was answered (one request in flight
// per connection) and Flush says when what has arrived since is worth sending.
//
// The default is a linger of 1 ms: a request leaves at most 1 ms after its first
// message. Without it, sarama sends the first messages of a call in a small request
// and the rest follows in several more, one round trip each. Measured with
// 1000-message calls through a proxy adding 1 ms each way, the linger doubled
// throughput (about 48k to 95k messages/s); without added latency it changed
// nothing. Its cost is about 1 ms more for a call of a single message. A longer
// linger (Kafka 4's default linger.ms is 5) measured slower here and delays single
// messages more.
type KafkaFlush struct {
	// Frequency is the longest a message waits for more to join its request (Kafka's
	// linger.ms). A negative value sends as soon as possible. Defaults to 1ms.
	Frequency time.Duration
	// Messages sends a request once this many messages are waiting, before Frequency
	// has passed. Needs a positive Frequency. Defaults to 0: unset.
	Messages int
	// Bytes sends a request once this many bytes are waiting, before Frequency has
	// passed. Needs a positive Frequency. Defaults to 0: unset.
	Bytes int
	// MaxMessages caps the messages of one request. Defaults to 0: no cap other than
	// MaxMessageBytes per partition and sarama's MaxRequestSize.
	MaxMessages int
}

// KafkaRetry controls sarama's retries inside one Publish call of the errors it knows
// to be transient (see KafkaConfig on the interaction with the decorator's retries).
type KafkaRetry struct {
	// Max is how many times sarama resends a message after a transient failure. A
	// negative value disables them, which needs DisableIdempotence (the idempotent
	// producer requires at least 1). Defaults to 3 (sarama's): enough to ride out a
	// leader election without duplicates, short enough that the decorator's budget,
	// not sarama, decides how long a failing message is retried.
	Max int
	// Backoff is the wait before each of those retries. A negative value means no
	// wait. Defaults to 100ms, like Kafka's retry.backoff.ms.
	Backoff time.Duration
}

// KafkaTLS configures TLS to the brokers. TLS is on when any field is set.
type KafkaTLS struct {
	// Enable turns TLS on with the system's root CAs when no other field is needed.
	Enable bool
	// Config is used as the base configuration when set (it is cloned, never
	// modified); the file fields and InsecureSkipVerify apply on top of it.
	Config *tls.Config
	// CAFile is a PEM file of CA certificates that replace the system roots to verify
	// the brokers.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key for mutual TLS; both
	// or neither must be set.
	CertFile string
	KeyFile  string
	// InsecureSkipVerify disables verification of the brokers' certificates. For
	// tests only.
	InsecureSkipVerify bool
}

func (t KafkaTLS) enabled() bool {
	return t.Enable || t.Config != nil || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// KafkaSASL configures SASL authentication. It is on when Mechanism or User is set.
// Password never appears in errors or in the String output of KafkaConfig.
type KafkaSASL struct {
	// Mechanism is sarama.SASLTypePlaintext ("PLAIN"), sarama.SASLTypeSCRAMSHA256
	// ("SCRAM-SHA-256") or sarama.SASLTypeSCRAMSHA512 ("SCRAM-SHA-512"). Defaults to
	// PLAIN when User is set. PLAIN sends the password in clear: use it with TLS.
	Mechanism sarama.SASLMechanism
	// User is the authentication identity. Required with SASL.
	User string
	// Password is the user's password. Required with SASL.
	Password string
	// SCRAMClient returns a new SCRAM client for each connection of the SCRAM
	// mechanisms. Defaults to a client built on github.com/xdg-go/scram (the one
	// sarama's examples use), with SASLprep of the password.
	SCRAMClient func() sarama.SCRAMClient
}

func (s KafkaSASL) enabled() bool { return s.Mechanism != "" || s.User != "" }

// String describes s without its password.
func (s KafkaSASL) String() string {
	if !s.enabled() {
		return "{off}"
	}
	pw := "<empty>"
	if s.Password != "" {
		pw = redacted
	}
	mech := s.Mechanism
	if mech == "" {
		mech = sarama.SASLTypePlaintext
	}
	return fmt.Sprintf("{Mechanism:%s User:%q Password:%s SCRAMClient:%t}", mech, s.User, pw, s.SCRAMClient != nil)
}

// GoString is String, so that %#v does not print the password either.
func (s KafkaSASL) GoString() string { return "adapter.KafkaSASL" + s.String() }

const redacted = "[redacted]"

// String describes c, defaults applied, without secrets: the SASL password is
// replaced by [redacted]. It is what %v and %+v print.
func (c KafkaConfig) String() string {
	d := c.withDefaults()
	var b strings.Builder
	b.WriteString("KafkaConfig{")
	fmt.Fprintf(&b, "Brokers:%q ClientID:%q Marshaler:%T RequiredAcks:%s Idempotent:%t",
		d.Brokers, d.ClientID, d.Marshaler, d.RequiredAcks, !d.DisableIdempotence)
	fmt.Fprintf(&b, " Compression:%s MaxMessageBytes:%d Flush:%+v", d.Compression, d.MaxMessageBytes, d.Flush)
	fmt.Fprintf(&b, " DialTimeout:%v ReadTimeout:%v WriteTimeout:%v ProduceTimeout:%v MetadataRefresh:%v",
		d.DialTimeout, d.ReadTimeout, d.WriteTimeout, d.ProduceTimeout, d.MetadataRefresh)
	fmt.Fprintf(&b, " Retry:%+v PingTimeout:%v Version:%s", d.Retry, d.PingTimeout, d.Version)
	fmt.Fprintf(&b, " TLS:%t SASL:%s OverwriteSaramaConfig:%t}", d.TLS.enabled(), d.SASL.String(), d.OverwriteSaramaConfig != nil)
	return b.String()
}

// GoString is String, so that %#v does not print the password either.
func (c KafkaConfig) GoString() string { return "adapter." + c.String() }

// withDefaults returns c with every zero field set to its default. Negative values
// that mean "off" are kept; SaramaConfig translates them.
func (c KafkaConfig) withDefaults() KafkaConfig {
	if c.Marshaler == nil {
		c.Marshaler = kafka.DefaultMarshaler{}
	}
	if c.ClientID == "" {
		c.ClientID = DefaultKafkaClientID
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultKafkaMaxMessageBytes
	}
	if c.Flush.Frequency == 0 {
		c.Flush.Frequency = DefaultKafkaLinger
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultKafkaDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultKafkaReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultKafkaWriteTimeout
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = DefaultKafkaProduceTimeout
	}
	if c.MetadataRefresh == 0 {
		c.MetadataRefresh = DefaultKafkaMetadataRefresh
	}
	if c.Retry.Max == 0 {
		c.Retry.Max = DefaultKafkaRetryMax
	}
	if c.Retry.Backoff == 0 {
		c.Retry.Backoff = DefaultKafkaRetryBackoff
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = DefaultKafkaPingTimeout
	}
	if c.Version == (sarama.KafkaVersion{}) {
		c.Version = DefaultKafkaVersion
	}
	if c.SASL.enabled() && c.SASL.Mechanism == "" {
		c.SASL.Mechanism = sarama.SASLTypePlaintext
	}
	return c
}

// Validate reports every invalid field of c after defaults are applied, each error
// naming the field. It does not read the TLS files; SaramaConfig does.
func (c KafkaConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("adapter: KafkaConfig.%s %s", field, fmt.Sprintf(format, args...)))
	}
	if len(c.Brokers) == 0 {
		bad("Brokers", "is required (bootstrap host:port addresses)")
	}
	for i, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			bad(fmt.Sprintf("Brokers[%d]", i), "is empty")
		}
	}
	switch c.RequiredAcks {
	case AcksAll:
	case AcksLeader, AcksNone:
		if !c.DisableIdempotence {
			bad("RequiredAcks", "is %s, but the idempotent producer needs AcksAll: set DisableIdempotence to weaken acks", c.RequiredAcks)
		}
	default:
		bad("RequiredAcks", "must be AcksAll, AcksLeader or AcksNone, got %d", int(c.RequiredAcks))
	}
	switch c.Compression {
	case CompressionSnappy, CompressionNone, CompressionLZ4, CompressionZSTD, CompressionGZIP:
	default:
		bad("Compression", "must be CompressionSnappy, CompressionNone, CompressionLZ4, CompressionZSTD or CompressionGZIP, got %d", int(c.Compression))
	}
	if c.MaxMessageBytes < 0 {
		bad("MaxMessageBytes", "must not be negative, got %d", c.MaxMessageBytes)
	} else if c.MaxMessageBytes >= int(sarama.MaxRequestSize) {
		bad("MaxMessageBytes", "must be smaller than sarama.MaxRequestSize (%d), got %d", sarama.MaxRequestSize, c.MaxMessageBytes)
	}
	if c.Flush.Messages < 0 {
		bad("Flush.Messages", "must not be negative, got %d", c.Flush.Messages)
	}
	if c.Flush.Bytes < 0 {
		bad("Flush.Bytes", "must not be negative, got %d", c.Flush.Bytes)
	}
	if c.Flush.MaxMessages < 0 {
		bad("Flush.MaxMessages", "must not be negative, got %d", c.Flush.MaxMessages)
	}
	if (c.Flush.Messages > 0 || c.Flush.Bytes > 0) && c.Flush.Frequency < 0 {
		bad("Flush.Frequency", "must be positive with Flush.Messages or Flush.Bytes, or messages may wait forever for a full batch")
	}
	if c.Flush.MaxMessages > 0 && c.Flush.MaxMessages < c.Flush.Messages {
		bad("Flush.MaxMessages", "(%d) must be at least Flush.Messages (%d)", c.Flush.MaxMessages, c.Flush.Messages)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"DialTimeout", c.DialTimeout},
		{"ReadTimeout", c.ReadTimeout},
		{"WriteTimeout", c.WriteTimeout},
		{"ProduceTimeout", c.ProduceTimeout},
		{"PingTimeout", c.PingTimeout},
	} {
		if d.v < 0 {
			bad(d.name, "must not be negative, got %v", d.v)
		}
	}
	if c.ProduceTimeout > 0 && c.ReadTimeout > 0 && c.ReadTimeout <= c.ProduceTimeout {
		bad("ReadTimeout", "(%v) must be longer than ProduceTimeout (%v), or the client gives up before the broker answers", c.ReadTimeout, c.ProduceTimeout)
	}
	if c.Retry.Max < 0 && !c.DisableIdempotence {
		bad("Retry.Max", "is negative (no retries), but the idempotent producer needs at least 1: set DisableIdempotence")
	}
	if !c.Version.IsAtLeast(sarama.V0_11_0_0) {
		bad("Version", "must be at least 0.11 (record headers carry the message UUID), got %s", c.Version)
	}
	if c.TLS.CertFile != "" && c.TLS.KeyFile == "" {
		bad("TLS.KeyFile", "is required with TLS.CertFile")
	}
	if c.TLS.KeyFile != "" && c.TLS.CertFile == "" {
		bad("TLS.CertFile", "is required with TLS.KeyFile")
	}
	if c.SASL.enabled() {
		switch c.SASL.Mechanism {
		case sarama.SASLTypePlaintext:
		case sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512:
		default:
			bad("SASL.Mechanism", "must be %s, %s or %s, got %q", sarama.SASLTypePlaintext,
				sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512, c.SASL.Mechanism)
		}
		if c.SASL.User == "" {
			bad("SASL.User", "is required with SASL")
		}
		if c.SASL.Password == "" {
			bad("SASL.Password", "is required with SASL")
		}
	}
	return errors.Join(errs...)
}

// SaramaConfig validates c and returns the sarama configuration of its producer,
// after OverwriteSaramaConfig, validated by sarama too.
func (c KafkaConfig) SaramaConfig() (*sarama.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()

	sc := sarama.NewConfig()
	sc.ClientID = c.ClientID
	sc.Version = c.Version

	sc.Net.DialTimeout = c.DialTimeout
	sc.Net.ReadTimeout = c.ReadTimeout
	sc.Net.WriteTimeout = c.WriteTimeout
	// One request in flight per connection: required by the idempotent producer, and
	// without it the only way to keep per-partition order across retries.
	sc.Net.MaxOpenRequests = 1

	// Metadata.Full stays true (sarama's default): the client then fetches the
	// cluster metadata when it is created, which checks connectivity and credentials
	// at once and learns every broker. With Full=false sarama skips that fetch and the
	// idempotent producer asks its producer ID of the first bootstrap address only:
	// one dead address there and NewKafkaPublisher fails.
	sc.Metadata.RefreshFrequency = max(c.MetadataRefresh, 0)

	sc.Producer.RequiredAcks = c.RequiredAcks.sarama()
	sc.Producer.Idempotent = !c.DisableIdempotence
	sc.Producer.Timeout = c.ProduceTimeout
	sc.Producer.Compression = c.Compression.sarama()
	sc.Producer.MaxMessageBytes = c.MaxMessageBytes
	sc.Producer.Flush.Frequency = max(c.Flush.Frequency, 0)
	sc.Producer.Flush.Messages = c.Flush.Messages
	sc.Producer.Flush.Bytes = c.Flush.Bytes
	sc.Producer.Flush.MaxMessages = c.Flush.MaxMessages
	sc.Producer.Retry.Max = max(c.Retry.Max, 0)
	sc.Producer.Retry.Backoff = max(c.Retry.Backoff, 0)
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true

	if c.TLS.enabled() {
		tc, err := c.TLS.build()
		if err != nil {
			return nil, err
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if c.SASL.enabled() {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Mechanism = c.SASL.Mechanism
		sc.Net.SASL.User = c.SASL.User
		sc.Net.SASL.Password = c.SASL.Password
		sc.Net.SASL.SCRAMClientGeneratorFunc = c.SASL.SCRAMClient
		if c.SASL.SCRAMClient == nil && (c.SASL.Mechanism == sarama.SASLTypeSCRAMSHA256 || c.SASL.Mechanism == sarama.SASLTypeSCRAMSHA512) {
			sc.Net.SASL.SCRAMClientGeneratorFunc = defaultSCRAMClient(c.SASL.Mechanism)
		}
	}

	if c.OverwriteSaramaConfig != nil {
		c.OverwriteSaramaConfig(sc)
	}
	if !sc.Producer.Return.Successes || !sc.Producer.Return.Errors {
		return nil, errors.New("adapter: KafkaConfig.OverwriteSaramaConfig must keep Producer.Return.Successes and Producer.Return.Errors true")
	}
	if err := sc.Validate(); err != nil {
		// sarama's messages name its own fields and never include the password.
		return nil, fmt.Errorf("adapter: KafkaConfig: invalid sarama configuration: %w", err)
	}
	return sc, nil
}

// build returns the tls.Config of t, reading its files.
func (t KafkaTLS) build() (*tls.Config, error) {
	var tc *tls.Config
	if t.Config != nil {
		tc = t.Config.Clone()
	} else {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("adapter: KafkaConfig.TLS.CAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("adapter: KafkaConfig.TLS.CAFile %q holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("adapter: KafkaConfig.TLS.CertFile/KeyFile: %w", err)
		}
		tc.Certificates = append(tc.Certificates, cert)
	}
	if t.InsecureSkipVerify {
		tc.InsecureSkipVerify = true // #nosec G402 -- explicit opt-in, documented as tests only
	}
	return tc, nil
}
