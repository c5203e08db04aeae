package main

import (
	"container/list"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Dedup is a router middleware that handles each message UUID once: a message whose
// UUID is among the last size UUIDs handled successfully within ttl (see NewDedup) is
// acknowledged without calling the handler. Delivery to Kafka consumers is
// at-least-once (a publisher resends a message whose broker answer was lost; a
// consumer redelivers what it had not committed), so copies of a message arrive with
// the same Watermill UUID.
//
// A UUID is remembered only once its handler succeeded. A message whose handler
// fails is nacked, redelivered and handled again, never dropped as its own duplicate.
// A copy that arrives while the same UUID is being handled is dropped: the copy in
// progress is either handled or redelivered.
//
// The set lives in memory: it sees the copies that reach this process. Copies land in
// the same partition, hence the same consumer of a group, only when the message has a
// partition key (see adapter.KeyFromMetadata). Across processes, or to survive a
// restart, record the handled UUIDs with the handler's effect (for example in the
// same database transaction) instead.
type Dedup struct {
	ttl  time.Duration
	size int
	now  func() time.Time

	// OnDuplicate, when set, is called with every message dropped as a duplicate.
	OnDuplicate func(*message.Message)

	mu       sync.Mutex
	handled  map[string]*list.Element // UUID -> its element in order
	order    *list.List               // of seen, oldest first
	inFlight map[string]struct{}
}

type seen struct {
	uuid    string
	expires time.Time
}

// NewDedup returns a Dedup that remembers at most size UUIDs, each for ttl.
func NewDedup(size int, ttl time.Duration) *Dedup {
	return &Dedup{
		ttl:      ttl,
		size:     max(size, 1),
		now:      time.Now,
		handled:  make(map[string]*list.Element),
		order:    list.New(),
		inFlight: make(map[string]struct{}),
	}
}

// Middleware is the message.HandlerMiddleware, for Router.AddMiddleware or
// Handler.AddMiddleware.
func (d *Dedup) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if !d.claim(msg.UUID) {
			if d.OnDuplicate != nil {
				d.OnDuplicate(msg)
			}
			return nil, nil // the router acks it
		}
		produced, err := h(msg)
		d.release(msg.UUID, err == nil)
		return produced, err
	}
}

// claim reports whether uuid is neither handled recently nor being handled, and marks
// it as being handled.
func (d *Dedup) claim(uuid string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire()
	if _, ok := d.handled[uuid]; ok {
		return false
	}
	if _, ok := d.inFlight[uuid]; ok {
		return false
	}
	d.inFlight[uuid] = struct{}{}
	return true
}

// release ends the handling of uuid, remembering it when the handler succeeded.
func (d *Dedup) release(uuid string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.inFlight, uuid)
	if !ok {
		return
	}
	d.handled[uuid] = d.order.PushBack(seen{uuid: uuid, expires: d.now().Add(d.ttl)})
	if d.order.Len() > d.size {
		d.forget(d.order.Front())
	}
}

// expire forgets the UUIDs whose time is up. They were added with the same ttl, so
// the oldest are at the front.
func (d *Dedup) expire() {
	now := d.now()
	for e := d.order.Front(); e != nil && !now.Before(e.Value.(seen).expires); e = d.order.Front() {
		d.forget(e)
	}
}

func (d *Dedup) forget(e *list.Element) {
	delete(d.handled, d.order.Remove(e).(seen).uuid)
}

// Len returns how many handled UUIDs are remembered.
func (d *Dedup) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.order.Len()
}
