package main

import (
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// recorder is a handler that counts its calls per UUID.
type recorder struct{ calls map[string]int }

func newRecorder() *recorder { return &recorder{calls: map[string]int{}} }

func (r *recorder) handle(msg *message.Message) ([]*message.Message, error) {
	r.calls[msg.UUID]++
	return nil, nil
}

func deliver(t *testing.T, h message.HandlerFunc, uuids ...string) {
	t.Helper()
	for _, id := range uuids {
		_, _ = h(message.NewMessage(id, []byte(id)))
	}
}

func TestDedup(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		fail      string // UUID whose first delivery fails
		deliver   []string
		wantCalls map[string]int
	}{
		{
			name:      "a copy of a handled message is dropped",
			size:      10,
			deliver:   []string{"a", "b", "a", "a"},
			wantCalls: map[string]int{"a": 1, "b": 1},
		},
		{
			name:      "a message whose handler failed is handled again when redelivered",
			size:      10,
			fail:      "a",
			deliver:   []string{"a", "a", "a"},
			wantCalls: map[string]int{"a": 2},
		},
		{
			name:      "the oldest UUID is forgotten beyond the size",
			size:      2,
			deliver:   []string{"a", "b", "c", "a", "c"},
			wantCalls: map[string]int{"a": 2, "b": 1, "c": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDedup(tt.size, time.Hour)
			r := newRecorder()
			failed := false
			h := d.Middleware(func(msg *message.Message) ([]*message.Message, error) {
				if msg.UUID == tt.fail && !failed {
					failed = true
					r.calls[msg.UUID]++
					return nil, errors.New("transient failure")
				}
				return r.handle(msg)
			})
			deliver(t, h, tt.deliver...)
			if len(r.calls) != len(tt.wantCalls) {
				t.Fatalf("handler calls %v, want %v", r.calls, tt.wantCalls)
			}
			for id, want := range tt.wantCalls {
				if r.calls[id] != want {
					t.Fatalf("handler calls %v, want %v", r.calls, tt.wantCalls)
				}
			}
			if d.Len() > tt.size {
				t.Fatalf("Len() = %d, more than the size %d", d.Len(), tt.size)
			}
		})
	}
}

func TestDedupForgetsAUUIDAfterItsTTL(t *testing.T) {
	d := NewDedup(10, time.Minute)
	now := time.Now()
	d.now = func() time.Time { return now }
	r := newRecorder()
	h := d.Middleware(r.handle)

	deliver(t, h, "a")
	now = now.Add(59 * time.Second)
	deliver(t, h, "a")
	if r.calls["a"] != 1 {
		t.Fatalf("handled %d times within the TTL, want 1", r.calls["a"])
	}
	now = now.Add(time.Second)
	deliver(t, h, "a")
	if r.calls["a"] != 2 {
		t.Fatalf("handled %d times after the TTL, want 2", r.calls["a"])
	}
	if d.Len() != 1 {
		t.Fatalf("Len() = %d, want 1", d.Len())
	}
}

func TestDedupDropsACopyArrivingWhileTheOriginalIsHandled(t *testing.T) {
	d := NewDedup(10, time.Hour)
	var dropped []string
	d.OnDuplicate = func(m *message.Message) { dropped = append(dropped, m.UUID) }
	inHandler, release := make(chan struct{}), make(chan struct{})
	calls := 0
	h := d.Middleware(func(*message.Message) ([]*message.Message, error) {
		calls++
		close(inHandler)
		<-release
		return nil, nil
	})

	done := make(chan struct{})
	go func() {
		defer close(done)
		deliver(t, h, "a")
	}()
	<-inHandler
	deliver(t, h, "a") // returns at once: the copy is dropped, not handled
	close(release)
	<-done
	if calls != 1 || len(dropped) != 1 {
		t.Fatalf("%d handler calls and %d dropped, want 1 and 1", calls, len(dropped))
	}
}
