package adapter

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

func TestKafkaConfig_defaultsAreSafeAndVisible(t *testing.T) {
	cfg := KafkaConfig{Brokers: []string{"127.0.0.1:9092"}}
	sc, err := cfg.SaramaConfig()
	if err != nil {
		t.Fatalf("SaramaConfig: %v", err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"Producer.Idempotent", sc.Producer.Idempotent, true},
		{"Producer.RequiredAcks", sc.Producer.RequiredAcks, sarama.WaitForAll},
		{"Net.MaxOpenRequests", sc.Net.MaxOpenRequests, 1},
		{"Producer.Retry.Max", sc.Producer.Retry.Max, DefaultKafkaRetryMax},
		{"Producer.Retry.Backoff", sc.Producer.Retry.Backoff, DefaultKafkaRetryBackoff},
		{"Producer.MaxMessageBytes", sc.Producer.MaxMessageBytes, 1 << 20},
		{"Producer.Compression", sc.Producer.Compression, sarama.CompressionSnappy},
		{"Producer.Timeout", sc.Producer.Timeout, DefaultKafkaProduceTimeout},
		{"Producer.Return.Successes", sc.Producer.Return.Successes, true},
		{"Producer.Return.Errors", sc.Producer.Return.Errors, true},
		{"Producer.Flush.Frequency", sc.Producer.Flush.Frequency, time.Millisecond},
		{"Producer.Flush.Messages", sc.Producer.Flush.Messages, 0},
		{"Net.DialTimeout", sc.Net.DialTimeout, DefaultKafkaDialTimeout},
		{"Net.ReadTimeout", sc.Net.ReadTimeout, DefaultKafkaReadTimeout},
		{"Net.WriteTimeout", sc.Net.WriteTimeout, DefaultKafkaWriteTimeout},
		{"Net.TLS.Enable", sc.Net.TLS.Enable, false},
		{"Net.SASL.Enable", sc.Net.SASL.Enable, false},
		{"Metadata.RefreshFrequency", sc.Metadata.RefreshFrequency, DefaultKafkaMetadataRefresh},
		{"Metadata.Full", sc.Metadata.Full, true},
		{"ClientID", sc.ClientID, "millrace"},
		{"Version", sc.Version, DefaultKafkaVersion},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	s := cfg.String()
	for _, want := range []string{"RequiredAcks:all", "Idempotent:true", "Compression:snappy", "Frequency:1ms", "MaxMessageBytes:1048576", `ClientID:"millrace"`, "kafka.DefaultMarshaler", "Version:3.6.0"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %s\nwant it to show %s", s, want)
		}
	}
}

func TestKafkaConfig_explicitValuesReachSarama(t *testing.T) {
	cfg := KafkaConfig{
		Brokers:            []string{"a:9092"},
		ClientID:           "orders",
		RequiredAcks:       AcksLeader,
		DisableIdempotence: true,
		Compression:        CompressionZSTD,
		MaxMessageBytes:    2 << 20,
		Flush:              KafkaFlush{Frequency: 5 * time.Millisecond, Messages: 100, Bytes: 1 << 16, MaxMessages: 1000},
		DialTimeout:        time.Second,
		ReadTimeout:        20 * time.Second,
		WriteTimeout:       3 * time.Second,
		ProduceTimeout:     4 * time.Second,
		MetadataRefresh:    -1,
		Retry:              KafkaRetry{Max: -1, Backoff: -1},
		Version:            sarama.V2_8_0_0,
		OverwriteSaramaConfig: func(sc *sarama.Config) {
			sc.ChannelBufferSize = 1024
		},
	}
	sc, err := cfg.SaramaConfig()
	if err != nil {
		t.Fatalf("SaramaConfig: %v", err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"ClientID", sc.ClientID, "orders"},
		{"Producer.RequiredAcks", sc.Producer.RequiredAcks, sarama.WaitForLocal},
		{"Producer.Idempotent", sc.Producer.Idempotent, false},
		{"Net.MaxOpenRequests (order without idempotence)", sc.Net.MaxOpenRequests, 1},
		{"Producer.Compression", sc.Producer.Compression, sarama.CompressionZSTD},
		{"Producer.MaxMessageBytes", sc.Producer.MaxMessageBytes, 2 << 20},
		{"Producer.Flush.Frequency", sc.Producer.Flush.Frequency, 5 * time.Millisecond},
		{"Producer.Flush.Messages", sc.Producer.Flush.Messages, 100},
		{"Producer.Flush.Bytes", sc.Producer.Flush.Bytes, 1 << 16},
		{"Producer.Flush.MaxMessages", sc.Producer.Flush.MaxMessages, 1000},
		{"Net.DialTimeout", sc.Net.DialTimeout, time.Second},
		{"Net.ReadTimeout", sc.Net.ReadTimeout, 20 * time.Second},
		{"Net.WriteTimeout", sc.Net.WriteTimeout, 3 * time.Second},
		{"Producer.Timeout", sc.Producer.Timeout, 4 * time.Second},
		{"Metadata.RefreshFrequency (negative disables)", sc.Metadata.RefreshFrequency, time.Duration(0)},
		{"Producer.Retry.Max (negative disables)", sc.Producer.Retry.Max, 0},
		{"Producer.Retry.Backoff (negative: no wait)", sc.Producer.Retry.Backoff, time.Duration(0)},
		{"Version", sc.Version, sarama.V2_8_0_0},
		{"ChannelBufferSize (OverwriteSaramaConfig)", sc.ChannelBufferSize, 1024},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	off := KafkaConfig{Brokers: []string{"a:9092"}, RequiredAcks: AcksNone, DisableIdempotence: true,
		Compression: CompressionNone, Flush: KafkaFlush{Frequency: -1}}
	sc, err = off.SaramaConfig()
	if err != nil {
		t.Fatalf("SaramaConfig: %v", err)
	}
	if sc.Producer.RequiredAcks != sarama.NoResponse || sc.Producer.Compression != sarama.CompressionNone ||
		sc.Producer.Flush.Frequency != 0 {
		t.Errorf("AcksNone, CompressionNone, no linger: got acks %v, codec %v, linger %v",
			sc.Producer.RequiredAcks, sc.Producer.Compression, sc.Producer.Flush.Frequency)
	}
}

func TestKafkaConfig_invalidValuesNameTheField(t *testing.T) {
	ok := func() KafkaConfig { return KafkaConfig{Brokers: []string{"127.0.0.1:9092"}} }
	for _, tc := range []struct {
		name   string
		mutate func(*KafkaConfig)
		want   string
	}{
		{"no brokers", func(c *KafkaConfig) { c.Brokers = nil }, "KafkaConfig.Brokers is required"},
		{"an empty broker address", func(c *KafkaConfig) { c.Brokers = append(c.Brokers, " ") }, "KafkaConfig.Brokers[1] is empty"},
		{"acks=leader while idempotent", func(c *KafkaConfig) { c.RequiredAcks = AcksLeader }, "KafkaConfig.RequiredAcks is leader"},
		{"acks=none while idempotent", func(c *KafkaConfig) { c.RequiredAcks = AcksNone }, "KafkaConfig.RequiredAcks is none"},
		{"an unknown acks value", func(c *KafkaConfig) { c.RequiredAcks = 7 }, "KafkaConfig.RequiredAcks must be"},
		{"an unknown codec", func(c *KafkaConfig) { c.Compression = 42 }, "KafkaConfig.Compression"},
		{"negative MaxMessageBytes", func(c *KafkaConfig) { c.MaxMessageBytes = -1 }, "KafkaConfig.MaxMessageBytes must not be negative"},
		{"MaxMessageBytes beyond a request", func(c *KafkaConfig) { c.MaxMessageBytes = int(sarama.MaxRequestSize) }, "KafkaConfig.MaxMessageBytes must be smaller"},
		{"flush messages without linger", func(c *KafkaConfig) {
			c.Flush = KafkaFlush{Frequency: -1, Messages: 10}
		}, "KafkaConfig.Flush.Frequency must be positive with Flush.Messages"},
		{"negative flush bytes", func(c *KafkaConfig) { c.Flush.Bytes = -1 }, "KafkaConfig.Flush.Bytes"},
		{"negative flush messages", func(c *KafkaConfig) { c.Flush.Messages = -1 }, "KafkaConfig.Flush.Messages"},
		{"MaxMessages below Messages", func(c *KafkaConfig) {
			c.Flush = KafkaFlush{Frequency: time.Millisecond, Messages: 10, MaxMessages: 5}
		}, "KafkaConfig.Flush.MaxMessages (5) must be at least Flush.Messages (10)"},
		{"negative dial timeout", func(c *KafkaConfig) { c.DialTimeout = -time.Second }, "KafkaConfig.DialTimeout"},
		{"negative write timeout", func(c *KafkaConfig) { c.WriteTimeout = -time.Second }, "KafkaConfig.WriteTimeout"},
		{"negative ping timeout", func(c *KafkaConfig) { c.PingTimeout = -time.Second }, "KafkaConfig.PingTimeout"},
		{"read timeout not above produce timeout", func(c *KafkaConfig) { c.ReadTimeout = 5 * time.Second }, "KafkaConfig.ReadTimeout (5s) must be longer than ProduceTimeout (10s)"},
		{"no retries while idempotent", func(c *KafkaConfig) { c.Retry.Max = -1 }, "KafkaConfig.Retry.Max"},
		{"a version without headers", func(c *KafkaConfig) { c.Version = sarama.V0_10_2_0 }, "KafkaConfig.Version must be at least 0.11"},
		{"a client certificate without key", func(c *KafkaConfig) { c.TLS.CertFile = "client.pem" }, "KafkaConfig.TLS.KeyFile is required"},
		{"a client key without certificate", func(c *KafkaConfig) { c.TLS.KeyFile = "client.key" }, "KafkaConfig.TLS.CertFile is required"},
		{"SASL without user", func(c *KafkaConfig) { c.SASL = KafkaSASL{Mechanism: sarama.SASLTypePlaintext, Password: "p"} }, "KafkaConfig.SASL.User is required"},
		{"SASL without password", func(c *KafkaConfig) { c.SASL = KafkaSASL{User: "u"} }, "KafkaConfig.SASL.Password is required"},
		{"an unsupported SASL mechanism", func(c *KafkaConfig) { c.SASL = KafkaSASL{Mechanism: "GSSAPI", User: "u", Password: "p"} }, "KafkaConfig.SASL.Mechanism must be"},
		{"an override that breaks idempotence", func(c *KafkaConfig) {
			c.OverwriteSaramaConfig = func(sc *sarama.Config) { sc.Net.MaxOpenRequests = 5 }
		}, "Idempotent producer requires Net.MaxOpenRequests to be 1"},
		{"an override that turns off successes", func(c *KafkaConfig) {
			c.OverwriteSaramaConfig = func(sc *sarama.Config) { sc.Producer.Return.Successes = false }
		}, "Producer.Return.Successes"},
		{"a missing CA file", func(c *KafkaConfig) { c.TLS.CAFile = filepath.Join(t.TempDir(), "nope.pem") }, "KafkaConfig.TLS.CAFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok()
			tc.mutate(&cfg)
			_, err := cfg.SaramaConfig()
			if err == nil {
				t.Fatalf("SaramaConfig accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if _, err := NewKafkaPublisher(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewKafkaPublisher: error %v, want it to say %q", err, tc.want)
			}
		})
	}

	t.Run("every invalid field is reported at once", func(t *testing.T) {
		err := KafkaConfig{MaxMessageBytes: -1, DialTimeout: -1}.Validate()
		for _, want := range []string{"Brokers", "MaxMessageBytes", "DialTimeout"} {
			if err == nil || !strings.Contains(err.Error(), "KafkaConfig."+want) {
				t.Errorf("Validate() = %v, want it to name %s", err, want)
			}
		}
	})
}

func TestKafkaConfig_saslPasswordNeverShows(t *testing.T) {
	const secret = "s3cr3t-Hunter2"
	configs := []KafkaConfig{
		{Brokers: []string{"a:9092"}, SASL: KafkaSASL{User: "alice", Password: secret}},
		{SASL: KafkaSASL{Password: secret}},
		{Brokers: []string{"a:9092"}, SASL: KafkaSASL{Mechanism: "NOPE", User: "alice", Password: secret}},
		{Brokers: []string{"a:9092"}, SASL: KafkaSASL{Mechanism: sarama.SASLTypeSCRAMSHA256, User: "alice", Password: secret}},
		{Brokers: []string{"a:9092"}, SASL: KafkaSASL{User: "alice", Password: secret},
			OverwriteSaramaConfig: func(sc *sarama.Config) { sc.Net.SASL.Version = sarama.SASLHandshakeV0 }},
		{Brokers: []string{"127.0.0.1:1"}, DialTimeout: 100 * time.Millisecond, SASL: KafkaSASL{User: "alice", Password: secret}},
	}
	for i, cfg := range configs {
		var texts []string
		if err := cfg.Validate(); err != nil {
			texts = append(texts, err.Error())
		}
		if _, err := cfg.SaramaConfig(); err != nil {
			texts = append(texts, err.Error())
		}
		if i == len(configs)-1 {
			_, err := NewKafkaPublisher(cfg)
			if err == nil {
				t.Fatal("NewKafkaPublisher on a closed port succeeded")
			}
			texts = append(texts, err.Error())
		}
		texts = append(texts,
			cfg.String(), fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg),
			fmt.Sprintf("%v %+v %#v", cfg.SASL, cfg.SASL, cfg.SASL),
			fmt.Sprintf("%v %+v", &cfg, &cfg))
		if len(texts) < 5 {
			t.Errorf("config %d: expected some error", i)
		}
		for _, s := range texts {
			if strings.Contains(s, secret) {
				t.Fatalf("config %d: the password shows in %q", i, s)
			}
		}
	}
	if s := configs[0].String(); !strings.Contains(s, redacted) || !strings.Contains(s, `User:"alice"`) {
		t.Errorf("String() = %s, want the user and a redacted password", s)
	}
}

func TestKafkaConfig_tls(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := kafkaTestCertificate(t)
	ca := filepath.Join(dir, "ca.pem")
	cert := filepath.Join(dir, "client.pem")
	key := filepath.Join(dir, "client.key")
	garbage := filepath.Join(dir, "garbage.pem")
	for path, data := range map[string][]byte{ca: certPEM, cert: certPEM, key: keyPEM, garbage: []byte("not pem")} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	sc, err := KafkaConfig{Brokers: []string{"a:9093"}, TLS: KafkaTLS{CAFile: ca, CertFile: cert, KeyFile: key}}.SaramaConfig()
	if err != nil {
		t.Fatalf("SaramaConfig: %v", err)
	}
	if !sc.Net.TLS.Enable || sc.Net.TLS.Config == nil || sc.Net.TLS.Config.RootCAs == nil ||
		len(sc.Net.TLS.Config.Certificates) != 1 || sc.Net.TLS.Config.InsecureSkipVerify ||
		sc.Net.TLS.Config.MinVersion < tls.VersionTLS12 {
		t.Errorf("TLS config = %+v, want enabled, the CA, one client certificate, verification, TLS >= 1.2", sc.Net.TLS.Config)
	}

	base := &tls.Config{ServerName: "kafka.internal"}
	sc, err = KafkaConfig{Brokers: []string{"a:9093"}, TLS: KafkaTLS{Config: base, InsecureSkipVerify: true}}.SaramaConfig()
	if err != nil {
		t.Fatalf("SaramaConfig: %v", err)
	}
	if sc.Net.TLS.Config.ServerName != "kafka.internal" || !sc.Net.TLS.Config.InsecureSkipVerify {
		t.Errorf("TLS config = %+v, want the base config with InsecureSkipVerify", sc.Net.TLS.Config)
	}
	if base.InsecureSkipVerify {
		t.Error("the caller's tls.Config was modified")
	}

	if sc, err := (KafkaConfig{Brokers: []string{"a:9093"}, TLS: KafkaTLS{Enable: true}}).SaramaConfig(); err != nil || !sc.Net.TLS.Enable {
		t.Errorf("TLS.Enable alone: enabled %v, err %v", sc != nil && sc.Net.TLS.Enable, err)
	}
	if _, err := (KafkaConfig{Brokers: []string{"a:9093"}, TLS: KafkaTLS{CAFile: garbage}}).SaramaConfig(); err == nil ||
		!strings.Contains(err.Error(), "TLS.CAFile") {
		t.Errorf("a CA file without PEM: %v, want an error naming TLS.CAFile", err)
	}
	if _, err := (KafkaConfig{Brokers: []string{"a:9093"}, TLS: KafkaTLS{CertFile: cert, KeyFile: garbage}}).SaramaConfig(); err == nil ||
		!strings.Contains(err.Error(), "TLS.CertFile/KeyFile") {
		t.Errorf("a bad key file: %v, want an error naming TLS.CertFile/KeyFile", err)
	}
}

func TestValidateTopic(t *testing.T) {
	for _, topic := range []string{"orders", "a", "Orders.v2_eu-west", strings.Repeat("x", 249), "...", "_", "-"} {
		if err := ValidateTopic(topic); err != nil {
			t.Errorf("ValidateTopic(%q) = %v, want nil", topic, err)
		}
	}
	for _, tc := range []struct{ topic, want string }{
		{"", "empty topic name"},
		{".", `invalid topic name "."`},
		{"..", `invalid topic name ".."`},
		{strings.Repeat("x", 250), "250 characters, more than 249"},
		{"orders eu", `character ' ' at 6`},
		{"orders/eu", `character '/' at 6`},
		{"commandes-é", `character 'é' at 10 is not allowed`},
		{"a:b", `character ':'`},
	} {
		err := ValidateTopic(tc.topic)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateTopic(%q) = %v, want an error saying %q", tc.topic, err, tc.want)
			continue
		}
		if !errors.Is(err, sarama.ErrInvalidTopic) || Classify(err) != Permanent {
			t.Errorf("ValidateTopic(%q) = %v: want it to wrap sarama.ErrInvalidTopic and be permanent", tc.topic, err)
		}
	}
}

// TestKafkaFastMarshalWritesWhatWatermillKafkaWrites pins the allocation-free marshaling
// of Publish to watermill-kafka's marshalers: same value, key, headers and size.
func TestKafkaFastMarshalWritesWhatWatermillKafkaWrites(t *testing.T) {
	msgs := []*message.Message{
		message.NewMessage("uuid-plain", []byte("payload")),
		message.NewMessage("uuid-empty", nil),
		message.NewMessage("", []byte("no uuid")),
	}
	m := message.NewMessage("uuid-meta", []byte(`{"json":true}`))
	for i := 0; i < 20; i++ {
		m.Metadata.Set("k"+strconv.Itoa(i), strings.Repeat("v", i))
	}
	m.Metadata.Set("key", "customer-42")
	msgs = append(msgs, m)
	m = message.NewMessage("uuid-keyed", []byte("x"))
	m.Metadata.Set("key", "customer-7")
	m.Metadata.Set("", "")
	msgs = append(msgs, m)

	for _, tc := range []struct {
		name string
		fast fastMarshal
		ref  kafka.Marshaler
	}{
		{"DefaultMarshaler", fastMarshal{on: true}, kafka.DefaultMarshaler{}},
		{"KeyFromMetadata", fastMarshal{on: true, key: "key"}, KeyFromMetadata("key")},
		{"KeyFromMetadata against watermill-kafka's partitioning marshaler", fastMarshal{on: true, key: "key"},
			kafka.NewWithPartitioningMarshaler(func(_ string, m *message.Message) (string, error) { return m.Metadata.Get("key"), nil })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &KafkaPublisher{fast: tc.fast, maxBytes: 1 << 20}
			c := &kafkaCall{done: make(chan struct{}, 1)}
			for round := 0; round < 2; round++ { // the second round reuses the slabs
				c.prepare(len(msgs))
				p.marshalFast(c, "topic", msgs)
				if c.failed != 0 || c.valid != len(msgs) {
					t.Fatalf("round %d: %d failed, %d valid", round, c.failed, c.valid)
				}
				for i, msg := range msgs {
					got := c.slots[i].pm
					want, err := tc.ref.Marshal("topic", msg)
					if err != nil {
						t.Fatal(err)
					}
					compareProducerMessages(t, msg.UUID, got, want)
					if got.Metadata != &c.slots[i] {
						t.Errorf("%s: Metadata does not point at the message's slot", msg.UUID)
					}
					back, err := kafka.DefaultMarshaler{}.Unmarshal(consumerMessage(got))
					if err != nil {
						t.Fatal(err)
					}
					if back.UUID != msg.UUID || !bytes.Equal(back.Payload, msg.Payload) || !maps.Equal(back.Metadata, msg.Metadata) {
						t.Errorf("%s: unmarshalled %s %q %v, want %q %v", msg.UUID, back.UUID, back.Payload, back.Metadata, msg.Payload, msg.Metadata)
					}
				}
				p.release(c)
			}
		})
	}

	t.Run("the reserved UUID metadata is refused as by DefaultMarshaler", func(t *testing.T) {
		bad := message.NewMessage("u", nil)
		bad.Metadata.Set(kafka.UUIDHeaderKey, "x")
		_, refErr := kafka.DefaultMarshaler{}.Marshal("t", bad)
		p := &KafkaPublisher{fast: fastMarshal{on: true}, maxBytes: 1 << 20}
		c := &kafkaCall{done: make(chan struct{}, 1)}
		c.prepare(1)
		p.marshalFast(c, "t", []*message.Message{bad})
		if refErr == nil || c.slots[0].err == nil || c.slots[0].pm != nil {
			t.Fatalf("DefaultMarshaler: %v, fast path: %v (pm %v)", refErr, c.slots[0].err, c.slots[0].pm)
		}
		if Classify(c.slots[0].err) != Permanent {
			t.Errorf("Classify(%v) = %s, want permanent", c.slots[0].err, Classify(c.slots[0].err))
		}
	})
}

func compareProducerMessages(t *testing.T, name string, got, want *sarama.ProducerMessage) {
	t.Helper()
	if got.Topic != want.Topic {
		t.Errorf("%s: topic %q, want %q", name, got.Topic, want.Topic)
	}
	if !bytes.Equal(encoded(t, got.Value), encoded(t, want.Value)) {
		t.Errorf("%s: value %q, want %q", name, encoded(t, got.Value), encoded(t, want.Value))
	}
	// watermill-kafka's partitioning marshaler writes an empty key for a message
	// without one; KeyFromMetadata writes none, so that such messages are spread.
	if wantKey := encoded(t, want.Key); len(wantKey) == 0 {
		if got.Key != nil {
			t.Errorf("%s: key %q, want none", name, encoded(t, got.Key))
		}
	} else if !bytes.Equal(encoded(t, got.Key), wantKey) {
		t.Errorf("%s: key %q, want %q", name, encoded(t, got.Key), wantKey)
	}
	if len(got.Headers) == 0 || string(got.Headers[0].Key) != kafka.UUIDHeaderKey || string(got.Headers[0].Value) != name {
		t.Errorf("%s: first header %v, want the UUID", name, got.Headers)
	}
	if g, w := headerSet(got.Headers), headerSet(want.Headers); g != w {
		t.Errorf("%s: headers\n%s\nwant\n%s", name, g, w)
	}
	if g, w := got.ByteSize(2), want.ByteSize(2); g != w {
		t.Errorf("%s: ByteSize %d, want %d", name, g, w)
	}
}

func encoded(t *testing.T, e sarama.Encoder) []byte {
	t.Helper()
	if e == nil {
		return nil
	}
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func headerSet(hs []sarama.RecordHeader) string {
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = strconv.Quote(string(h.Key)) + "=" + strconv.Quote(string(h.Value))
	}
	sort.Strings(s)
	return strings.Join(s, "\n")
}

func consumerMessage(pm *sarama.ProducerMessage) *sarama.ConsumerMessage {
	cm := &sarama.ConsumerMessage{Topic: pm.Topic}
	if pm.Value != nil {
		cm.Value, _ = pm.Value.Encode()
	}
	for i := range pm.Headers {
		cm.Headers = append(cm.Headers, &pm.Headers[i])
	}
	return cm
}

// kafkaTestCertificate returns a self-signed certificate and its key, in PEM.
func kafkaTestCertificate(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "millrace-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IsCA:         true,
		KeyUsage:     x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestKafkaFastMarshalDoesNotAllocatePerMessage(t *testing.T) {
	msgs := make([]*message.Message, 100)
	for i := range msgs {
		m := message.NewMessage("uuid-"+strconv.Itoa(i), []byte("payload"))
		m.Metadata.Set("key", "k"+strconv.Itoa(i%7))
		m.Metadata.Set("event_type", "OrderPaid")
		msgs[i] = m
	}
	p := &KafkaPublisher{fast: fastMarshal{on: true, key: "key"}, maxBytes: 1 << 20}
	c := &kafkaCall{done: make(chan struct{}, 1)}
	run := func() {
		c.prepare(len(msgs))
		p.marshalFast(c, "topic", msgs)
		p.release(c)
	}
	run() // sizes the slabs
	// One allocation per call: the records, which are never reused (see grow).
	if allocs := testing.AllocsPerRun(100, run); allocs != 1 {
		t.Errorf("marshaling a call of %d messages into a reused call allocates %v times, want 1 (the records)", len(msgs), allocs)
	}
}
