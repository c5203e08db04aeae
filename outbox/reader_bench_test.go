package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// BenchmarkReadBatch measures what the relay pays the database per batch: Begin of
// a 1000-event batch (group lock, and on PostgreSQL opening a snapshot delta and
// reading it; on MySQL sequencing and reading) and Commit of its progress, with
// 10,000 more events pending behind it. Writing the events is not timed.
func BenchmarkReadBatch(b *testing.B) {
	for _, d := range dialects {
		b.Run(d.String(), func(b *testing.B) {
			h := newHarness(b, d)
			r := h.reader(b)
			ctx := context.Background()
			const batch = 1000
			write := func(n int) {
				for i := 0; i < n; i += batch {
					msgs := make([]*message.Message, batch)
					for j := range msgs {
						msgs[j] = newMsg(make([]byte, 200), "k"+string(rune('a'+j%26)), nil)
					}
					h.publishTx(b, true, "t", msgs...)
				}
			}
			write(10 * batch)
			var read int
			var elapsed time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				write(batch)
				b.StartTimer()
				start := time.Now()
				bt, err := r.Begin(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				evs := bt.Events()
				if len(evs) == 0 {
					b.Fatal("empty batch")
				}
				if err := bt.Commit(ctx, evs[len(evs)-1].Position); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
				read += len(evs)
			}
			b.ReportMetric(float64(read)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(read)/float64(b.N), "events/batch")
		})
	}
}
