package adapter_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace/millrace/adapter"
)

// nopPublisher accepts every message and does nothing.
type nopPublisher struct{}

func (nopPublisher) Publish(string, ...*message.Message) error { return nil }
func (nopPublisher) Close() error                              { return nil }

// BenchmarkPublish measures the decorator's own cost on the success path: one-message
// Publish calls over a no-op inner publisher, beside the bare inner publisher.
func BenchmarkPublish(b *testing.B) {
	m := message.NewMessage("b2c8f5a0-0000-4000-8000-000000000000", []byte(`{"order":1}`))
	run := func(b *testing.B, p message.Publisher) {
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := p.Publish("orders", m); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, nopPublisher{}) })
	b.Run("decorated", func(b *testing.B) {
		p, err := adapter.NewPublisher(nopPublisher{}, adapter.Config{})
		if err != nil {
			b.Fatal(err)
		}
		run(b, p)
	})
	b.Run("decorated+prometheus", func(b *testing.B) {
		p, err := adapter.NewPublisher(nopPublisher{}, adapter.Config{Registerer: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		run(b, p)
	})
}
