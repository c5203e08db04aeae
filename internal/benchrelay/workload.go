package benchrelay

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// event is one event the benchmark writes.
type event struct {
	uuid    string
	key     string
	seq     int // position among the events of its key, in commit order
	payload []byte
}

// generator makes events over a fixed set of keys. Keys are drawn uniformly at
// random from a fixed seed (not round-robin, which would be the best case for a
// relay that sends the events of one key in successive calls).
type generator struct {
	keys    []string
	rng     *rand.Rand
	next    map[string]int
	payload int
	pad     string
}

func newGenerator(keys, payloadBytes int, seed uint64) *generator {
	g := &generator{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		next:    make(map[string]int, keys),
		payload: payloadBytes,
		pad:     strings.Repeat("x", payloadBytes),
	}
	for i := range keys {
		g.keys = append(g.keys, fmt.Sprintf("key-%04d", i))
	}
	return g
}

// make returns n new events. The payload is a JSON object padded to the payload
// size: {"key":"key-0042","seq":17,"pad":"xxx..."}.
func (g *generator) make(n int) []event {
	evs := make([]event, n)
	for i := range evs {
		key := g.keys[g.rng.IntN(len(g.keys))]
		seq := g.next[key]
		g.next[key]++
		head := fmt.Sprintf(`{"key":%q,"seq":%d,"pad":"`, key, seq)
		padLen := max(g.payload-len(head)-2, 0)
		evs[i] = event{
			uuid:    uuid.NewString(),
			key:     key,
			seq:     seq,
			payload: []byte(head + g.pad[:padLen] + `"}`),
		}
	}
	return evs
}

// expected is what the writer knows of an event it committed.
type expected struct {
	key       string
	seq       int
	committed time.Time // when its transaction's Commit returned
}

// ledger records the committed events of one phase. It is written by the writer
// and read after the phase, when the writer is done.
type ledger struct {
	mu  sync.Mutex
	evs map[string]expected
}

func newLedger(n int) *ledger { return &ledger{evs: make(map[string]expected, n)} }

func (l *ledger) committed(evs []event, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		l.evs[e.uuid] = expected{key: e.key, seq: e.seq, committed: at}
	}
}

// verdict is the check of what reached Kafka against what was committed.
type verdict struct {
	consumed   int // records read, duplicates included
	distinct   int // distinct committed events read
	duplicates int // records whose UUID was read before
	lost       int // committed events never read
	unknown    int // records whose UUID was never committed
	// orderViolations counts events read after a later event of their key
	// (first deliveries only; a duplicate is counted as a duplicate).
	orderViolations int
	wrongKey        int // records whose Kafka key is not the event's key
	splitKeys       int // keys whose records are in more than one partition
	latencies       []time.Duration
	negative        int // latencies below zero (consumer saw it before Commit returned)
}

// verify checks recs against the ledger: every committed event read, none twice,
// and per key in commit order (Kafka only orders a partition, so each key must also
// stay in one partition).
func verify(l *ledger, recs []record) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	recs = slices.Clone(recs)
	slices.SortStableFunc(recs, func(a, b record) int {
		if c := cmp.Compare(a.partition, b.partition); c != 0 {
			return c
		}
		return cmp.Compare(a.offset, b.offset)
	})
	v := verdict{consumed: len(recs)}
	seen := make(map[string]bool, len(recs))
	maxSeq := make(map[string]int)
	partOf := make(map[string]int32)
	split := make(map[string]bool)
	for _, r := range recs {
		exp, ok := l.evs[r.uuid]
		if !ok {
			v.unknown++
			continue
		}
		if seen[r.uuid] {
			v.duplicates++
			continue
		}
		seen[r.uuid] = true
		v.distinct++
		if r.key != exp.key {
			v.wrongKey++
		}
		if p, ok := partOf[exp.key]; ok && p != r.partition {
			split[exp.key] = true
		}
		partOf[exp.key] = r.partition
		if m, ok := maxSeq[exp.key]; ok && exp.seq < m {
			v.orderViolations++
		} else {
			maxSeq[exp.key] = exp.seq
		}
		lat := r.seen.Sub(exp.committed)
		if lat < 0 {
			v.negative++
			lat = 0
		}
		v.latencies = append(v.latencies, lat)
	}
	v.splitKeys = len(split)
	v.lost = len(l.evs) - v.distinct
	slices.Sort(v.latencies)
	return v
}

// percentile returns the p-th percentile (0..100) of sorted durations, nearest
// rank; 0 when empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
