package router_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/outbox"
)

// kcatRecord is one line of kcat -J: headers alternate names and values.
type kcatRecord struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
	Headers   []string `json:"headers"`
}

// TestWhatTheRelayWritesReadsBackWithLibrdkafkaAndWatermillKafka checks the wire
// format with two independent clients: kcat (librdkafka) and watermill-kafka's own
// subscriber (sarama) read the forwarded events with their keys, headers and
// payloads, the UUID in _watermill_message_uuid, and no outbox-internal metadata.
func TestWhatTheRelayWritesReadsBackWithLibrdkafkaAndWatermillKafka(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		dbtest.Unavailable(t, "kcat (apt-get install -y kcat)", err)
	}
	e := newEnv(t, outbox.Postgres)
	evs := make([]ev, 30)
	for i := range evs {
		evs[i] = ev{key: "order-" + strconv.Itoa(i%3), seq: i + 1}
	}
	evs[4].payload = []byte(`{"json":"with \"quotes\" and ünïcode"}`)
	uuids := e.write(t, e.topic, evs, true)
	want := map[string]ev{}
	for i, id := range uuids {
		want[id] = evs[i]
	}
	f := e.forwarder(t, e.publisher(t, adapter.Config{}), nil)
	start(t, f)
	e.consumeDistinct(t, len(evs), 20*time.Second)

	check := func(client, key, uuid, seq string, headers map[string]string, payload []byte) {
		t.Helper()
		w, ok := want[uuid]
		if !ok {
			t.Fatalf("%s: a record with UUID %q, not one of the events", client, uuid)
		}
		wantPayload := w.payload
		if wantPayload == nil {
			wantPayload = []byte(w.key + ":" + strconv.Itoa(w.seq))
		}
		if key != w.key || seq != strconv.Itoa(w.seq) || !bytes.Equal(payload, wantPayload) {
			t.Errorf("%s: event %s read as key %q seq %q payload %q, want %q %d %q", client, uuid, key, seq, payload, w.key, w.seq, wantPayload)
		}
		for name := range headers {
			if strings.HasPrefix(name, outbox.ReservedPrefix) {
				t.Errorf("%s: event %s carries the outbox's own header %q", client, uuid, name)
			}
		}
	}

	// librdkafka, through kcat: every record of the topic, as JSON lines.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-b", strings.Join(e.kc.Addrs(), ","), "-C", "-t", e.topic, "-J", "-e", "-q").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r kcatRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("kcat line %q: %v", sc.Text(), err)
		}
		if len(r.Headers)%2 != 0 || r.Key == nil || r.Payload == nil {
			t.Fatalf("kcat record %+v: want a key, a payload and name/value header pairs", r)
		}
		headers := map[string]string{}
		for i := 0; i < len(r.Headers); i += 2 {
			headers[r.Headers[i]] = r.Headers[i+1]
		}
		id := headers[kafka.UUIDHeaderKey]
		check("kcat", *r.Key, id, headers["seq"], headers, []byte(*r.Payload))
		seen[id] = true
	}
	if len(seen) != len(evs) {
		t.Fatalf("kcat read %d distinct events, want %d", len(seen), len(evs))
	}

	// watermill-kafka's subscriber, with its DefaultMarshaler.
	sc2 := kafka.DefaultSaramaSubscriberConfig()
	sc2.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               e.kc.Addrs(),
		Unmarshaler:           kafka.DefaultMarshaler{},
		OverwriteSaramaConfig: sc2,
		ConsumerGroup:         "wire-" + e.topic,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("watermill-kafka NewSubscriber: %v", err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(ctx, e.topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	got := map[string]bool{}
	for len(got) < len(evs) {
		select {
		case m := <-ch:
			m.Ack()
			check("watermill-kafka", kafkaKey(m), m.UUID, m.Metadata.Get("seq"), m.Metadata, m.Payload)
			got[m.UUID] = true
		case <-ctx.Done():
			t.Fatalf("watermill-kafka read %d of %d events", len(got), len(evs))
		}
	}
}

// kafkaKey returns the Kafka key of a message read by watermill-kafka's subscriber.
func kafkaKey(m *message.Message) string {
	k, _ := kafka.MessageKeyFromCtx(m.Context())
	return string(k)
}
