package adapter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Defaults of KafkaConfig. Each is explained on the field it applies to.
const (
	DefaultKafkaClientID        = "millrace"
	DefaultKafkaMaxMessageBytes = 1 << 20 // 1 MiB
	DefaultKafkaDialTimeout     = 10 * time.Second
	DefaultKafkaProduceTimeout  = 10 * time.Second
	DefaultKafkaDeliveryTimeout = 30 * time.Second
	DefaultKafkaMetadataRefresh = 5 * time.Minute
	DefaultKafkaRetryBackoff    = 100 * time.Millisecond
	DefaultKafkaPingTimeout     = 5 * time.Second
)

// minDeliveryTimeout is the shortest RecordDeliveryTimeout franz-go accepts.
const minDeliveryTimeout = time.Second

// maxKafkaMessageBytes is the largest MaxMessageBytes franz-go accepts for a batch.
const maxKafkaMessageBytes = 1 << 30

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
	// a lost message from a written one. Needs DisableIdempotence.
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

// MarshalText writes the name String returns, so that JSON shows "all".
func (a Acks) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads "all", "leader" or "none".
func (a *Acks) UnmarshalText(b []byte) error {
	for _, v := range []Acks{AcksAll, AcksLeader, AcksNone} {
		if string(b) == v.String() {
			*a = v
			return nil
		}
	}
	return errors.New("adapter: acks must be all, leader or none")
}

func (a Acks) kgo() kgo.Acks {
	switch a {
	case AcksLeader:
		return kgo.LeaderAck()
	case AcksNone:
		return kgo.NoAck()
	default:
		return kgo.AllISRAcks()
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

var compressions = []Compression{CompressionSnappy, CompressionNone, CompressionLZ4, CompressionZSTD, CompressionGZIP}

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

// MarshalText writes the name String returns, so that JSON shows "snappy".
func (c Compression) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a codec name as String writes it.
func (c *Compression) UnmarshalText(b []byte) error {
	for _, v := range compressions {
		if string(b) == v.String() {
			*c = v
			return nil
		}
	}
	return errors.New("adapter: compression must be snappy, none, lz4, zstd or gzip")
}

func (c Compression) kgo() kgo.CompressionCodec {
	switch c {
	case CompressionNone:
		return kgo.NoCompression()
	case CompressionLZ4:
		return kgo.Lz4Compression()
	case CompressionZSTD:
		return kgo.ZstdCompression()
	case CompressionGZIP:
		return kgo.GzipCompression()
	default:
		return kgo.SnappyCompression()
	}
}

// SASLMechanism names a SASL mechanism KafkaSASL supports.
type SASLMechanism string

// SASL mechanisms, spelled as Kafka spells them.
const (
	SASLPlain       SASLMechanism = "PLAIN"
	SASLSCRAMSHA256 SASLMechanism = "SCRAM-SHA-256"
	SASLSCRAMSHA512 SASLMechanism = "SCRAM-SHA-512"
)

// KafkaConfig configures a KafkaPublisher, which produces through franz-go
// (github.com/twmb/franz-go/pkg/kgo). It is passed by value; a zero field means its
// default, and NewKafkaPublisher rejects invalid values with an error naming the
// field (never echoing the value). No zero value weakens delivery.
//
// Delivery and ordering: by default the producer is idempotent with acks=all, so the
// broker de-duplicates franz-go's own retries and keeps their order. franz-go retries
// retriable broker errors and connection failures by itself, with the same sequence
// numbers, until DeliveryTimeout; when a record fails, every record buffered behind
// it in the same partition fails too, so a later record is never written ahead of an
// earlier one that failed. The Publisher decorator resends what failed, a key's
// failed records in their order, before anything later of that key is produced; such
// a resend is a new record, so delivery through the decorator is at-least-once.
//
// json.Marshal(cfg) works: it leaves out the password and the fields that are code
// (marshalers, the TLS base config, Options). String and GoString print no secret.
type KafkaConfig struct {
	// Brokers are the bootstrap addresses (host:port) of the cluster. Required.
	Brokers []string `json:"brokers"`

	// Marshaler turns a Watermill message into a Kafka record. Defaults to
	// watermill-kafka's kafka.DefaultMarshaler{}, so that watermill-kafka subscribers
	// read the messages unchanged (UUID in the _watermill_message_uuid header, one
	// header per metadata entry, no key). Use KeyFromMetadata, or watermill-kafka's
	// kafka.NewWithPartitioningMarshaler, to set a partition key. Any
	// watermill-kafka marshaler works: the *sarama.ProducerMessage it returns is
	// converted to a franz-go record (topic, key, value, headers, timestamp; its
	// Partition and Metadata are ignored: keys choose partitions as sarama's default
	// hash partitioner does). A marshaler that also implements KafkaRecordMarshaler
	// (DefaultMarshaler's built-in path, KeyFromMetadata, router.Marshaler) is called
	// through MarshalRecord instead, without the conversion.
	Marshaler kafka.Marshaler `json:"-"`

	// RecordMarshaler, when set, replaces Marshaler: it builds the franz-go record
	// directly.
	RecordMarshaler KafkaRecordMarshaler `json:"-"`

	// ClientID is sent with every request, for the broker's logs, quotas and ACLs.
	// Defaults to "millrace", so brokers can tell this library's traffic apart.
	ClientID string `json:"client_id,omitempty"`

	// RequiredAcks is how many replicas must have written a message before it counts as
	// written. Defaults to AcksAll (the zero value): anything weaker can lose
	// acknowledged messages, and the idempotent producer requires it.
	RequiredAcks Acks `json:"required_acks"`

	// DisableIdempotence turns the idempotent producer off. Defaults to false
	// (idempotent): the broker then de-duplicates franz-go's internal retries and
	// keeps their order. It must be set to use AcksLeader or AcksNone; franz-go then
	// keeps one request in flight per broker, which keeps order, but a retry of a
	// request whose answer was lost can duplicate.
	DisableIdempotence bool `json:"disable_idempotence,omitempty"`

	// Compression is the codec of the record batches. Defaults to CompressionSnappy
	// (the zero value): the cheapest codec in CPU, supported by every broker and
	// client. Set CompressionNone to turn it off.
	Compression Compression `json:"compression"`

	// MaxMessageBytes is the largest record batch, before compression, the producer
	// builds for one partition (franz-go's ProducerBatchMaxBytes); a single record
	// larger than that fails at once, permanently, without being sent. Defaults to
	// 1 MiB (1048576), just under Kafka's default message.max.bytes (1048588). Raise
	// it only together with the topic's max.message.bytes. At most 1 GiB.
	MaxMessageBytes int `json:"max_message_bytes,omitempty"`

	// Linger is how long the publisher waits, when a call arrives and no round is in
	// flight, for more calls to share the round (see KafkaPublisher). Calls that
	// arrive while a round is in flight share the next one anyway. Defaults to 0:
	// a lone call is sent at once.
	Linger time.Duration `json:"linger,omitempty"`

	// DeliveryTimeout bounds how long franz-go keeps retrying a record by itself
	// (Kafka's delivery.timeout.ms, franz-go's RecordDeliveryTimeout) before failing
	// it, and every record buffered behind it in its partition, with
	// kgo.ErrRecordTimeout (Retriable: the decorator decides what happens next).
	// franz-go never fails a record it has sent before the broker answers (the broker
	// may have written it: failing it could let a resend land behind later records);
	// a call still waiting for such records after DeliveryTimeout returns them as
	// failed with kgo.ErrRecordTimeout although they may still be written, and the
	// decorator's resends queue behind them, in order. Defaults to 30s; NewKafka
	// lowers it to a quarter of the decorator's MaxElapsedTime when that is shorter,
	// so that the decorator's budget is what bounds a call. At least 1s (franz-go's
	// minimum); a negative value means no limit.
	DeliveryTimeout time.Duration `json:"delivery_timeout,omitempty"`

	// DialTimeout bounds opening a connection to a broker, TLS and SASL included.
	// Defaults to 10s.
	DialTimeout time.Duration `json:"dial_timeout,omitempty"`
	// ProduceTimeout is how long the broker waits for the in-sync replicas to
	// acknowledge a produce request under AcksAll (the request's timeout, Kafka's
	// request.timeout.ms for produce). Defaults to 10s; the broker then answers
	// REQUEST_TIMED_OUT, which franz-go retries.
	ProduceTimeout time.Duration `json:"produce_timeout,omitempty"`
	// MetadataRefresh is the longest the cluster metadata is cached, to learn of new
	// partitions and brokers (metadata.max.age.ms). Defaults to 5m.
	MetadataRefresh time.Duration `json:"metadata_refresh,omitempty"`
	// RetryBackoff is the first wait before franz-go retries a request after a
	// retriable failure; it doubles on each further failure up to ten times its
	// value, with 20% jitter (KIP-580). A negative value means no wait. Defaults to
	// 100ms, like Kafka's retry.backoff.ms.
	RetryBackoff time.Duration `json:"retry_backoff,omitempty"`

	// PingTimeout bounds Ping when its context has no earlier deadline, and the
	// connection check of NewKafkaPublisher. Defaults to 5s, the decorator's
	// BrokerCheckTimeout.
	PingTimeout time.Duration `json:"ping_timeout,omitempty"`

	// TLS configures encryption. Off unless one of its fields is set.
	TLS KafkaTLS `json:"tls"`

	// SASL configures authentication. Off unless Mechanism or User is set.
	SASL KafkaSASL `json:"sasl"`

	// Options are raw franz-go options applied after those built from the fields
	// above, so they win: the escape hatch for any setting not exposed here (a
	// kgo.WithLogger, kgo.WithHooks, kgo.Dialer, rack awareness...). Do not set
	// kgo.ManualFlushing off or a transactional id: the publisher relies on manual
	// flushing.
	Options []kgo.Opt `json:"-"`
}

// KafkaTLS configures TLS to the brokers. TLS is on when any field is set.
type KafkaTLS struct {
	// Enable turns TLS on with the system's root CAs when no other field is needed.
	Enable bool `json:"enable,omitempty"`
	// Config is used as the base configuration when set (it is cloned, never
	// modified); the file fields and InsecureSkipVerify apply on top of it.
	Config *tls.Config `json:"-"`
	// CAFile is a PEM file of CA certificates that replace the system roots to verify
	// the brokers.
	CAFile string `json:"ca_file,omitempty"`
	// CertFile and KeyFile are the PEM client certificate and key for mutual TLS; both
	// or neither must be set.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// InsecureSkipVerify disables verification of the brokers' certificates. For
	// tests only.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

func (t KafkaTLS) enabled() bool {
	return t.Enable || t.Config != nil || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// KafkaSASL configures SASL authentication, through franz-go's pkg/sasl/plain and
// pkg/sasl/scram. It is on when Mechanism or User is set. Password never appears in
// errors, in String or GoString output, or in JSON.
type KafkaSASL struct {
	// Mechanism is SASLPlain, SASLSCRAMSHA256 or SASLSCRAMSHA512. Defaults to PLAIN
	// when User is set. PLAIN sends the password in clear: use it with TLS.
	Mechanism SASLMechanism `json:"mechanism,omitempty"`
	// User is the authentication identity. Required with SASL.
	User string `json:"user,omitempty"`
	// Password is the user's password. Required with SASL. Never serialised.
	Password string `json:"-"`
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
		mech = SASLPlain
	}
	return fmt.Sprintf("{Mechanism:%s User:%q Password:%s}", mech, s.User, pw)
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
	marshaler := fmt.Sprintf("%T", d.Marshaler)
	if d.RecordMarshaler != nil {
		marshaler = fmt.Sprintf("%T", d.RecordMarshaler)
	}
	fmt.Fprintf(&b, "Brokers:%q ClientID:%q Marshaler:%s RequiredAcks:%s Idempotent:%t",
		d.Brokers, d.ClientID, marshaler, d.RequiredAcks, !d.DisableIdempotence)
	fmt.Fprintf(&b, " Compression:%s MaxMessageBytes:%d Linger:%v DeliveryTimeout:%v", d.Compression, d.MaxMessageBytes, d.Linger, d.DeliveryTimeout)
	fmt.Fprintf(&b, " DialTimeout:%v ProduceTimeout:%v MetadataRefresh:%v RetryBackoff:%v PingTimeout:%v",
		d.DialTimeout, d.ProduceTimeout, d.MetadataRefresh, d.RetryBackoff, d.PingTimeout)
	fmt.Fprintf(&b, " TLS:%t SASL:%s Options:%d}", d.TLS.enabled(), d.SASL.String(), len(d.Options))
	return b.String()
}

// GoString is String, so that %#v does not print the password either.
func (c KafkaConfig) GoString() string { return "adapter." + c.String() }

// withDefaults returns c with every zero field set to its default. Negative values
// that mean "off" are kept; kgoOpts translates them.
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
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = DefaultKafkaDeliveryTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultKafkaDialTimeout
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = DefaultKafkaProduceTimeout
	}
	if c.MetadataRefresh == 0 {
		c.MetadataRefresh = DefaultKafkaMetadataRefresh
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultKafkaRetryBackoff
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = DefaultKafkaPingTimeout
	}
	if c.SASL.enabled() && c.SASL.Mechanism == "" {
		c.SASL.Mechanism = SASLPlain
	}
	return c
}

// Validate reports every invalid field of c after defaults are applied, each error
// naming the field and the rule, never the rejected value. It does not read the TLS
// files; NewKafkaPublisher does.
func (c KafkaConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, rule string) {
		errs = append(errs, fmt.Errorf("adapter: KafkaConfig.%s %s", field, rule))
	}
	if len(c.Brokers) == 0 {
		bad("Brokers", "is required (bootstrap host:port addresses)")
	}
	for i, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			bad("Brokers["+strconv.Itoa(i)+"]", "is empty")
		}
	}
	switch c.RequiredAcks {
	case AcksAll:
	case AcksLeader, AcksNone:
		if !c.DisableIdempotence {
			bad("RequiredAcks", "must be AcksAll for the idempotent producer: set DisableIdempotence to weaken acks")
		}
	default:
		bad("RequiredAcks", "must be AcksAll, AcksLeader or AcksNone")
	}
	switch c.Compression {
	case CompressionSnappy, CompressionNone, CompressionLZ4, CompressionZSTD, CompressionGZIP:
	default:
		bad("Compression", "must be CompressionSnappy, CompressionNone, CompressionLZ4, CompressionZSTD or CompressionGZIP")
	}
	if c.MaxMessageBytes < 512 || c.MaxMessageBytes > maxKafkaMessageBytes {
		bad("MaxMessageBytes", "must be within [512, 1073741824] bytes")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Linger", c.Linger},
		{"DialTimeout", c.DialTimeout},
		{"ProduceTimeout", c.ProduceTimeout},
		{"MetadataRefresh", c.MetadataRefresh},
		{"PingTimeout", c.PingTimeout},
	} {
		if d.v < 0 {
			bad(d.name, "must not be negative")
		}
	}
	if c.DeliveryTimeout > 0 && c.DeliveryTimeout < minDeliveryTimeout {
		bad("DeliveryTimeout", "must be at least 1s (franz-go's minimum), or negative for no limit")
	}
	if c.ProduceTimeout > 0 && c.ProduceTimeout < time.Millisecond {
		bad("ProduceTimeout", "must be at least 1ms (Kafka counts it in milliseconds)")
	}
	if c.TLS.CertFile != "" && c.TLS.KeyFile == "" {
		bad("TLS.KeyFile", "is required with TLS.CertFile")
	}
	if c.TLS.KeyFile != "" && c.TLS.CertFile == "" {
		bad("TLS.CertFile", "is required with TLS.KeyFile")
	}
	if c.SASL.enabled() {
		switch c.SASL.Mechanism {
		case SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512:
		default:
			bad("SASL.Mechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
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

// fnv32a is sarama's default key hash (FNV-1a, 32 bits).
func fnv32a(b []byte) uint32 {
	h := fnv.New32a()
	_, _ = h.Write(b)
	return h.Sum32()
}

// kgoOpts validates c and returns the franz-go options of its producer, Options last.
func (c KafkaConfig) kgoOpts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	backoff := max(c.RetryBackoff, 0)
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.RequiredAcks(c.RequiredAcks.kgo()),
		kgo.ProducerBatchCompression(c.Compression.kgo()),
		kgo.ProducerBatchMaxBytes(int32(c.MaxMessageBytes)),
		kgo.ProduceRequestTimeout(c.ProduceTimeout),
		kgo.DialTimeout(c.DialTimeout),
		kgo.MetadataMaxAge(c.MetadataRefresh),
		kgo.RetryBackoffFn(func(tries int) time.Duration { return kip580(backoff, tries) }),
		// The publisher flushes each round itself (see KafkaPublisher): nothing
		// leaves before the round's records are all buffered, so that a failure
		// fails every later record of its partition in the round.
		kgo.ManualFlushing(),
		// A round holds what its callers handed over, already in memory; the buffer
		// limit would only turn a large call into ErrMaxBuffered failures.
		kgo.MaxBufferedRecords(math.MaxInt32),
		// Keys go to the partitions sarama's default hash partitioner (and so
		// watermill-kafka) picks; records without a key are spread.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))),
	}
	if c.DisableIdempotence {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if c.DeliveryTimeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(c.DeliveryTimeout))
	}
	if c.TLS.enabled() {
		tc, err := c.TLS.build()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASL.enabled() {
		opts = append(opts, kgo.SASL(c.SASL.mechanism()))
	}
	return append(opts, c.Options...), nil
}

// kip580 is Kafka's retry backoff: initial doubling per try up to ten times initial,
// with 20% jitter either way.
func kip580(initial time.Duration, tries int) time.Duration {
	if initial <= 0 {
		return 0
	}
	d := initial
	for i := 1; i < tries && d < 10*initial; i++ {
		d *= 2
	}
	d = min(d, 10*initial)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// mechanism returns the franz-go SASL mechanism of s. The password is read from s
// at each connection and never leaves it otherwise.
func (s KafkaSASL) mechanism() sasl.Mechanism {
	switch s.Mechanism {
	case SASLSCRAMSHA256, SASLSCRAMSHA512:
		auth := scram.Auth{User: s.User, Pass: s.Password}
		if s.Mechanism == SASLSCRAMSHA512 {
			return scram.Sha512(func(context.Context) (scram.Auth, error) { return auth, nil })
		}
		return scram.Sha256(func(context.Context) (scram.Auth, error) { return auth, nil })
	default:
		return plain.Auth{User: s.User, Pass: s.Password}.AsMechanism()
	}
}

// withoutPath drops the path from a file error: errors name the field, not its value.
func withoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// build returns the tls.Config of t, reading its files. Errors name the field, not
// the path.
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
			return nil, fmt.Errorf("adapter: KafkaConfig.TLS.CAFile: %w", withoutPath(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("adapter: KafkaConfig.TLS.CAFile holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("adapter: KafkaConfig.TLS.CertFile/KeyFile: %w", withoutPath(err))
		}
		tc.Certificates = append(tc.Certificates, cert)
	}
	if t.InsecureSkipVerify {
		tc.InsecureSkipVerify = true // #nosec G402 -- explicit opt-in, documented as tests only
	}
	return tc, nil
}
