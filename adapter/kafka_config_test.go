package adapter

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
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
	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoClient builds the franz-go client of cfg without connecting, to read back the
// options the config produced.
func kgoClient(t *testing.T, cfg KafkaConfig) *kgo.Client {
	t.Helper()
	opts, err := cfg.kgoOpts()
	if err != nil {
		t.Fatalf("kgoOpts: %v", err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestKafkaConfig_defaultsAreSafeAndVisible(t *testing.T) {
	cfg := KafkaConfig{Brokers: []string{"127.0.0.1:9092"}}
	cl := kgoClient(t, cfg)
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"RequiredAcks", cl.OptValue(kgo.RequiredAcks), kgo.AllISRAcks()},
		{"DisableIdempotentWrite", cl.OptValue(kgo.DisableIdempotentWrite), false},
		{"AllowIdempotentProduceCancellation (never: order first)", cl.OptValue(kgo.AllowIdempotentProduceCancellation), false},
		{"ManualFlushing", cl.OptValue(kgo.ManualFlushing), true},
		{"ProducerBatchMaxBytes", cl.OptValue(kgo.ProducerBatchMaxBytes), int32(1 << 20)},
		{"ProduceRequestTimeout", cl.OptValue(kgo.ProduceRequestTimeout), DefaultKafkaProduceTimeout},
		{"RecordDeliveryTimeout", cl.OptValue(kgo.RecordDeliveryTimeout), DefaultKafkaDeliveryTimeout},
		{"DialTimeout", cl.OptValue(kgo.DialTimeout), DefaultKafkaDialTimeout},
		{"MetadataMaxAge", cl.OptValue(kgo.MetadataMaxAge), DefaultKafkaMetadataRefresh},
		{"ClientID", cl.OptValue(kgo.ClientID), "millrace"},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if codecs := fmt.Sprint(cl.OptValue(kgo.ProducerBatchCompression)); codecs != fmt.Sprint([]kgo.CompressionCodec{kgo.SnappyCompression()}) {
		t.Errorf("ProducerBatchCompression = %s, want snappy", codecs)
	}
	s := cfg.String()
	for _, want := range []string{"RequiredAcks:all", "Idempotent:true", "Compression:snappy", "MaxMessageBytes:1048576", `ClientID:"millrace"`, "kafka.DefaultMarshaler", "DeliveryTimeout:30s"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %s\nwant it to show %s", s, want)
		}
	}
}

func TestKafkaConfig_explicitValuesReachFranzGo(t *testing.T) {
	cfg := KafkaConfig{
		Brokers:            []string{"a:9092"},
		ClientID:           "orders",
		RequiredAcks:       AcksLeader,
		DisableIdempotence: true,
		Compression:        CompressionZSTD,
		MaxMessageBytes:    2 << 20,
		DeliveryTimeout:    -1,
		DialTimeout:        time.Second,
		ProduceTimeout:     4 * time.Second,
		MetadataRefresh:    time.Minute,
		Options:            []kgo.Opt{kgo.ProduceRequestTimeout(7 * time.Second)},
	}
	cl := kgoClient(t, cfg)
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"ClientID", cl.OptValue(kgo.ClientID), "orders"},
		{"RequiredAcks", cl.OptValue(kgo.RequiredAcks), kgo.LeaderAck()},
		{"DisableIdempotentWrite", cl.OptValue(kgo.DisableIdempotentWrite), true},
		{"ProducerBatchMaxBytes", cl.OptValue(kgo.ProducerBatchMaxBytes), int32(2 << 20)},
		{"RecordDeliveryTimeout (negative: none)", cl.OptValue(kgo.RecordDeliveryTimeout), time.Duration(0)},
		{"DialTimeout", cl.OptValue(kgo.DialTimeout), time.Second},
		{"MetadataMaxAge", cl.OptValue(kgo.MetadataMaxAge), time.Minute},
		{"ProduceRequestTimeout (Options win)", cl.OptValue(kgo.ProduceRequestTimeout), 7 * time.Second},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if codecs := fmt.Sprint(cl.OptValue(kgo.ProducerBatchCompression)); codecs != fmt.Sprint([]kgo.CompressionCodec{kgo.ZstdCompression()}) {
		t.Errorf("ProducerBatchCompression = %s, want zstd", codecs)
	}
}

func TestKafkaConfig_invalidValuesNameTheFieldNotTheValue(t *testing.T) {
	ok := func() KafkaConfig { return KafkaConfig{Brokers: []string{"127.0.0.1:9092"}} }
	for _, tc := range []struct {
		name   string
		mutate func(*KafkaConfig)
		want   string
	}{
		{"no brokers", func(c *KafkaConfig) { c.Brokers = nil }, "KafkaConfig.Brokers is required"},
		{"an empty broker address", func(c *KafkaConfig) { c.Brokers = append(c.Brokers, " ") }, "KafkaConfig.Brokers[1] is empty"},
		{"acks=leader while idempotent", func(c *KafkaConfig) { c.RequiredAcks = AcksLeader }, "KafkaConfig.RequiredAcks must be AcksAll for the idempotent producer"},
		{"acks=none while idempotent", func(c *KafkaConfig) { c.RequiredAcks = AcksNone }, "KafkaConfig.RequiredAcks must be AcksAll"},
		{"an unknown acks value", func(c *KafkaConfig) { c.RequiredAcks = 77 }, "KafkaConfig.RequiredAcks must be"},
		{"an unknown codec", func(c *KafkaConfig) { c.Compression = 42 }, "KafkaConfig.Compression"},
		{"negative MaxMessageBytes", func(c *KafkaConfig) { c.MaxMessageBytes = -1234 }, "KafkaConfig.MaxMessageBytes must be within"},
		{"MaxMessageBytes beyond 1 GiB", func(c *KafkaConfig) { c.MaxMessageBytes = 1<<30 + 1 }, "KafkaConfig.MaxMessageBytes must be within"},
		{"negative linger", func(c *KafkaConfig) { c.Linger = -1234 * time.Second }, "KafkaConfig.Linger must not be negative"},
		{"negative dial timeout", func(c *KafkaConfig) { c.DialTimeout = -1234 * time.Second }, "KafkaConfig.DialTimeout"},
		{"negative produce timeout", func(c *KafkaConfig) { c.ProduceTimeout = -1234 * time.Second }, "KafkaConfig.ProduceTimeout"},
		{"negative ping timeout", func(c *KafkaConfig) { c.PingTimeout = -1234 * time.Second }, "KafkaConfig.PingTimeout"},
		{"a client certificate without key", func(c *KafkaConfig) { c.TLS.CertFile = "client-1234.pem" }, "KafkaConfig.TLS.KeyFile is required"},
		{"a client key without certificate", func(c *KafkaConfig) { c.TLS.KeyFile = "client-1234.key" }, "KafkaConfig.TLS.CertFile is required"},
		{"SASL without user", func(c *KafkaConfig) { c.SASL = KafkaSASL{Mechanism: SASLPlain, Password: "p"} }, "KafkaConfig.SASL.User is required"},
		{"SASL without password", func(c *KafkaConfig) { c.SASL = KafkaSASL{User: "u"} }, "KafkaConfig.SASL.Password is required"},
		{"an unsupported SASL mechanism", func(c *KafkaConfig) { c.SASL = KafkaSASL{Mechanism: "GSSAPI-1234", User: "u", Password: "p"} }, "KafkaConfig.SASL.Mechanism must be"},
		{"a missing CA file", func(c *KafkaConfig) { c.TLS.CAFile = filepath.Join(t.TempDir(), "nope-1234.pem") }, "KafkaConfig.TLS.CAFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok()
			tc.mutate(&cfg)
			_, err := cfg.kgoOpts()
			if err == nil {
				t.Fatalf("kgoOpts accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "1234") || strings.Contains(err.Error(), "77") || strings.Contains(err.Error(), "42") {
				t.Fatalf("error %q echoes the rejected value", err)
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
		{Brokers: []string{"a:9092"}, SASL: KafkaSASL{Mechanism: SASLSCRAMSHA256, User: "alice", Password: secret}},
		{Brokers: []string{"127.0.0.1:1"}, DialTimeout: 100 * time.Millisecond, PingTimeout: 300 * time.Millisecond, SASL: KafkaSASL{User: "alice", Password: secret}},
	}
	for i, cfg := range configs {
		var texts []string
		if err := cfg.Validate(); err != nil {
			texts = append(texts, err.Error())
		}
		if _, err := cfg.kgoOpts(); err != nil {
			texts = append(texts, err.Error())
		}
		if i == len(configs)-1 {
			_, err := NewKafkaPublisher(cfg)
			if err == nil {
				t.Fatal("NewKafkaPublisher on a closed port succeeded")
			}
			texts = append(texts, err.Error())
		}
		js, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("config %d: json.Marshal: %v", i, err)
		}
		texts = append(texts, string(js),
			cfg.String(), fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg),
			fmt.Sprintf("%v %+v %#v", cfg.SASL, cfg.SASL, cfg.SASL),
			fmt.Sprintf("%v %+v", &cfg, &cfg))
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

func TestKafkaConfig_jsonLeavesOutThePasswordAndCode(t *testing.T) {
	cfg := KafkaConfig{
		Brokers:     []string{"a:9092"},
		Marshaler:   KeyFromMetadata("k"),
		Compression: CompressionLZ4,
		SASL:        KafkaSASL{Mechanism: SASLSCRAMSHA512, User: "alice", Password: "pw-secret"},
		TLS:         KafkaTLS{Config: &tls.Config{}, CAFile: "/etc/ca.pem"},
		Options:     []kgo.Opt{kgo.ClientID("x")},
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	s := string(js)
	for _, want := range []string{`"brokers":["a:9092"]`, `"compression":"lz4"`, `"required_acks":"all"`, `"mechanism":"SCRAM-SHA-512"`, `"user":"alice"`, `"ca_file":"/etc/ca.pem"`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON %s does not hold %s", s, want)
		}
	}
	for _, not := range []string{"pw-secret", "Password", "password", "Options", "Marshaler", "Config"} {
		if strings.Contains(s, not) {
			t.Errorf("JSON %s holds %s", s, not)
		}
	}
	var back KafkaConfig
	if err := json.Unmarshal(js, &back); err != nil || back.Compression != CompressionLZ4 || back.SASL.User != "alice" {
		t.Errorf("json.Unmarshal: %v, %+v", err, back)
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
	tc, err := KafkaTLS{CAFile: ca, CertFile: cert, KeyFile: key}.build()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.InsecureSkipVerify || tc.MinVersion < tls.VersionTLS12 {
		t.Errorf("TLS config = %+v, want the CA, one client certificate, verification, TLS >= 1.2", tc)
	}
	base := &tls.Config{ServerName: "kafka.internal"}
	tc, err = KafkaTLS{Config: base, InsecureSkipVerify: true}.build()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if tc.ServerName != "kafka.internal" || !tc.InsecureSkipVerify {
		t.Errorf("TLS config = %+v, want the base config with InsecureSkipVerify", tc)
	}
	if base.InsecureSkipVerify {
		t.Error("the caller's tls.Config was modified")
	}
	if _, err := (KafkaConfig{Brokers: []string{"a:9093"}, TLS: KafkaTLS{Enable: true}}).kgoOpts(); err != nil {
		t.Errorf("TLS.Enable alone: %v", err)
	}
	if _, err := (KafkaConfig{Brokers: []string{"a:9093"}, TLS: KafkaTLS{CAFile: garbage}}).kgoOpts(); err == nil ||
		!strings.Contains(err.Error(), "TLS.CAFile") || strings.Contains(err.Error(), garbage) {
		t.Errorf("a CA file without PEM: %v, want an error naming TLS.CAFile, not the path", err)
	}
	if _, err := (KafkaConfig{Brokers: []string{"a:9093"}, TLS: KafkaTLS{CertFile: cert, KeyFile: garbage}}).kgoOpts(); err == nil ||
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

// TestKafkaBuiltInMarshalWritesWhatWatermillKafkaWrites pins the built-in marshaling
// of Publish, and the conversion of a watermill-kafka marshaler's record, to
// watermill-kafka's marshalers: same value, key and headers, UUID header first.
func TestKafkaBuiltInMarshalWritesWhatWatermillKafkaWrites(t *testing.T) {
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

	partitioning := kafka.NewWithPartitioningMarshaler(func(_ string, m *message.Message) (string, error) { return m.Metadata.Get("key"), nil })
	for _, tc := range []struct {
		name string
		p    *KafkaPublisher
		ref  kafka.Marshaler
	}{
		{"DefaultMarshaler", &KafkaPublisher{}, kafka.DefaultMarshaler{}},
		{"KeyFromMetadata", &KafkaPublisher{keyMeta: "key"}, KeyFromMetadata("key")},
		{"KeyFromMetadata against watermill-kafka's partitioning marshaler", &KafkaPublisher{keyMeta: "key"}, partitioning},
		{"a watermill-kafka marshaler, converted", &KafkaPublisher{marshal: saramaMarshal(partitioning)}, partitioning},
		{"KeyFromMetadata's MarshalRecord", &KafkaPublisher{marshal: KeyFromMetadata("key").(KafkaRecordMarshaler).MarshalRecord}, partitioning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &kafkaCall{topic: "topic", msgs: msgs, errs: make([]error, len(msgs))}
			if tc.p.marshal == nil {
				tc.p.marshalBuiltIn(c)
			} else {
				tc.p.marshalEach(c)
			}
			if c.valid != len(msgs) {
				t.Fatalf("%d valid of %d: %v", c.valid, len(msgs), c.errs)
			}
			for i, msg := range msgs {
				want, err := tc.ref.Marshal("topic", msg)
				if err != nil {
					t.Fatal(err)
				}
				compareRecord(t, msg.UUID, c.recs[i], want)
			}
		})
	}

	t.Run("the reserved UUID metadata is refused as by DefaultMarshaler", func(t *testing.T) {
		bad := message.NewMessage("u", nil)
		bad.Metadata.Set(kafka.UUIDHeaderKey, "x")
		_, refErr := kafka.DefaultMarshaler{}.Marshal("t", bad)
		c := &kafkaCall{topic: "t", msgs: []*message.Message{bad}, errs: make([]error, 1)}
		(&KafkaPublisher{}).marshalBuiltIn(c)
		if refErr == nil || c.errs[0] == nil || c.recs[0] != nil {
			t.Fatalf("DefaultMarshaler: %v, built-in path: %v (record %v)", refErr, c.errs[0], c.recs[0])
		}
		if Classify(c.errs[0]) != Permanent {
			t.Errorf("Classify(%v) = %s, want permanent", c.errs[0], Classify(c.errs[0]))
		}
	})
}

func compareRecord(t *testing.T, name string, got *kgo.Record, want *sarama.ProducerMessage) {
	t.Helper()
	if got.Topic != want.Topic {
		t.Errorf("%s: topic %q, want %q", name, got.Topic, want.Topic)
	}
	if !bytes.Equal(got.Value, encoded(t, want.Value)) {
		t.Errorf("%s: value %q, want %q", name, got.Value, encoded(t, want.Value))
	}
	// watermill-kafka's partitioning marshaler writes an empty key for a message
	// without one; KeyFromMetadata writes none, so that such messages are spread.
	if wantKey := encoded(t, want.Key); len(wantKey) == 0 {
		if len(got.Key) != 0 {
			t.Errorf("%s: key %q, want none", name, got.Key)
		}
	} else if !bytes.Equal(got.Key, wantKey) {
		t.Errorf("%s: key %q, want %q", name, got.Key, wantKey)
	}
	if len(got.Headers) == 0 || got.Headers[0].Key != kafka.UUIDHeaderKey || string(got.Headers[0].Value) != name {
		t.Errorf("%s: first header %v, want the UUID", name, got.Headers)
	}
	wantHeaders := map[string]string{}
	for _, h := range want.Headers {
		wantHeaders[string(h.Key)] = string(h.Value)
	}
	gotHeaders := map[string]string{}
	for _, h := range got.Headers {
		gotHeaders[h.Key] = string(h.Value)
	}
	if !maps.Equal(gotHeaders, wantHeaders) || len(got.Headers) != len(want.Headers) {
		t.Errorf("%s: headers %v, want %v", name, headerList(gotHeaders), headerList(wantHeaders))
	}
}

func headerList(m map[string]string) string {
	s := make([]string, 0, len(m))
	for k, v := range m {
		s = append(s, strconv.Quote(k)+"="+strconv.Quote(v))
	}
	sort.Strings(s)
	return strings.Join(s, " ")
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

func TestKafkaBuiltInMarshalAllocatesPerCallNotPerMessage(t *testing.T) {
	msgs := make([]*message.Message, 100)
	for i := range msgs {
		m := message.NewMessage("uuid-"+strconv.Itoa(i), []byte("payload"))
		m.Metadata.Set("key", "k"+strconv.Itoa(i%7))
		m.Metadata.Set("event_type", "OrderPaid")
		msgs[i] = m
	}
	p := &KafkaPublisher{keyMeta: "key"}
	errs := make([]error, len(msgs))
	run := func() {
		c := &kafkaCall{topic: "topic", msgs: msgs, errs: errs}
		p.marshalBuiltIn(c)
	}
	// The call, the records, the record pointers, the headers, the bytes.
	if allocs := testing.AllocsPerRun(100, run); allocs > 5 {
		t.Errorf("marshaling a call of %d messages allocates %v times, want at most 5 whatever the count", len(msgs), allocs)
	}
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
