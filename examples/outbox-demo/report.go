package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// summary is the outcome of a run. In writer mode only the order service's
// fields are set.
type summary struct {
	Mode   string
	Outbox string // the outbox's name
	Topic  string

	// The order service's ledger.
	Committed  int64 // events in committed transactions, the poison event included
	RolledBack int64 // transactions rolled back on purpose
	Failed     int64 // transactions that failed (database errors)

	// The router and the publisher.
	Forwarded   int64    // events written to Kafka by the router, resends included
	Retries     int64    // the publisher's retries (adapter.Metrics.RetriesTotal)
	DeadLetters []string // UUIDs in the outbox's dead letters table

	// The checker, against the ledger.
	Records         int64    // records read, copies included
	Consumed        int64    // committed events read at least once
	Duplicates      int64    // extra copies read (at-least-once delivery)
	Lost            int64    // committed, never read, not a dead letter
	LostExamples    []string // a few lost UUIDs
	Phantoms        int64    // events read that were never committed
	OrderViolations int64    // events read after a later event of their customer
	OrderExamples   []string

	Chaos chaosResult

	Writing  time.Duration // the writing period
	Elapsed  time.Duration // from the first write to the last read
	Latency  latency       // commit to first read
	Verdict  string
	Failures []string // why the verdict is negative
}

// latency is the distribution of commit-to-consume times.
type latency struct {
	P50, P95, P99, Max time.Duration
	// OutageEvents counts the events in transit during the injected outage (committed
	// before the router recovered, read after the broker was cut): they waited for
	// the broker. P99WithoutOutage is the p99 of the others.
	OutageEvents     int
	P99WithoutOutage time.Duration
}

// OK reports whether the run kept every promise: nothing lost, nothing out of
// order, nothing read that was not committed.
func (s *summary) OK() bool { return len(s.Failures) == 0 }

// check computes the loss, the latencies and the verdict from the ledger (what was
// committed), the checker's reading and the dead letters table. A committed event
// is lost when the checker never read it and it is not a dead letter.
func (s *summary) check(commits map[string]commit, r reading, deadLetters []string, writeStart time.Time) {
	dead := make(map[string]bool, len(deadLetters))
	for _, id := range deadLetters {
		dead[id] = true
	}
	s.DeadLetters = deadLetters
	s.Records, s.Duplicates, s.OrderViolations, s.OrderExamples = r.records, r.duplicates, r.violations, r.examples

	var lat, calm []time.Duration
	var lastRead time.Time
	outage := s.Chaos.OutageDone && !s.Chaos.CutAt.IsZero() && !s.Chaos.RecoveredAt.IsZero()
	for id, c := range commits {
		readAt, ok := r.seen[id]
		switch {
		case ok:
			s.Consumed++
			d := max(readAt.Sub(c.at), 0)
			lat = append(lat, d)
			if outage && !c.at.After(s.Chaos.RecoveredAt) && !readAt.Before(s.Chaos.CutAt) {
				s.Latency.OutageEvents++
			} else {
				calm = append(calm, d)
			}
			if readAt.After(lastRead) {
				lastRead = readAt
			}
		case dead[id]:
		default:
			s.Lost++
			if len(s.LostExamples) < 5 {
				s.LostExamples = append(s.LostExamples, id)
			}
		}
	}
	for id := range r.seen {
		if _, ok := commits[id]; !ok {
			s.Phantoms++
		}
	}
	if !lastRead.IsZero() {
		s.Elapsed = lastRead.Sub(writeStart)
	}
	slices.Sort(lat)
	slices.Sort(calm)
	s.Latency.P50, s.Latency.P95 = percentile(lat, 0.50), percentile(lat, 0.95)
	s.Latency.P99, s.Latency.Max = percentile(lat, 0.99), percentile(lat, 1)
	s.Latency.P99WithoutOutage = percentile(calm, 0.99)

	if s.Lost > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("LOST %d EVENTS", s.Lost))
	}
	if s.OrderViolations > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("ORDER BROKEN for %d events", s.OrderViolations))
	}
	if s.Phantoms > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("%d EVENTS READ THAT WERE NEVER COMMITTED", s.Phantoms))
	}
	if s.OK() {
		s.Verdict = "no committed event lost"
	} else {
		s.Verdict = strings.Join(s.Failures, "; ")
	}
}

// percentile returns the q-quantile (nearest rank) of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// print writes the summary table and the verdict.
func (s *summary) print(con *console) {
	perSec := func(n int64, d time.Duration) string {
		if d <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f/s", float64(n)/d.Seconds())
	}
	dead := fmt.Sprint(len(s.DeadLetters))
	deadNote := "set aside by the router: refused for good by Kafka"
	if s.Chaos.PoisonUUID != "" {
		if slices.Contains(s.DeadLetters, s.Chaos.PoisonUUID) {
			deadNote = "the poison event, as expected"
		} else {
			deadNote = "the poison event is NOT among them"
		}
	}
	retriesNote := "the publisher's retries of failed sends"
	if s.Chaos.OutageDone {
		retriesNote = fmt.Sprintf("%d during the outage; the router forwarded again %v after the restore",
			s.Chaos.Retries, s.Chaos.RecoveredAfter.Round(10*time.Millisecond))
	}
	rows := [][3]string{
		{"committed", fmt.Sprint(s.Committed), "events in committed transactions"},
		{"rolled back", fmt.Sprint(s.RolledBack), "transactions rolled back on purpose: their events must never appear"},
		{"forwarded", fmt.Sprint(s.Forwarded), "events written to Kafka by the router (resends count again)"},
		{"consumed distinct", fmt.Sprint(s.Consumed), fmt.Sprintf("committed events read at least once (%d records read)", s.Records)},
		{"duplicates", fmt.Sprint(s.Duplicates), "extra copies, dropped by UUID: delivery is at-least-once"},
		{"dead letters", dead, deadNote},
		{"lost", fmt.Sprint(s.Lost), "committed, never read, not a dead letter"},
		{"phantoms", fmt.Sprint(s.Phantoms), "read but never committed (rolled back)"},
		{"order violations", fmt.Sprint(s.OrderViolations), "events read after a later event of the same customer"},
		{"throughput", perSec(s.Committed, s.Writing), fmt.Sprintf("committed while writing; end to end %s", perSec(s.Consumed, s.Elapsed))},
		{"latency p50", round(s.Latency.P50), "commit to first read"},
		{"latency p95", round(s.Latency.P95), ""},
		{"latency p99", round(s.Latency.P99), fmt.Sprintf("max %s", round(s.Latency.Max))},
		outageNote(s),
		{"retries", fmt.Sprint(s.Retries), retriesNote},
	}
	rows = slices.DeleteFunc(rows, func(r [3]string) bool { return r == [3]string{} })
	if s.Failed > 0 {
		rows = slices.Insert(rows, 2, [3]string{"failed", fmt.Sprint(s.Failed), "transactions that failed (database errors)"})
	}
	con.Println("")
	con.Println("summary")
	con.table(rows)
	for _, e := range s.LostExamples {
		con.Println("  lost: " + e)
	}
	for _, e := range s.OrderExamples {
		con.Println("  out of order: " + e)
	}
	con.Println("")
	if s.OK() {
		con.Println("verdict: " + s.Verdict)
		return
	}
	for _, f := range s.Failures {
		con.Println("verdict: " + f)
	}
}

// outageNote explains a p99 raised by the injected outage: the events in transit
// while the broker was cut waited for it. It is empty when the outage does not
// account for the p99.
func outageNote(s *summary) [3]string {
	l := s.Latency
	if l.OutageEvents == 0 || l.P99 <= 2*l.P99WithoutOutage {
		return [3]string{}
	}
	share := 100 * float64(l.OutageEvents) / float64(max(s.Consumed, 1))
	return [3]string{"  without outage", round(l.P99WithoutOutage),
		fmt.Sprintf("p99 of the rest: the %d events (%.1f%%) in transit from the injected cut to the recovery (%v) waited for the broker",
			l.OutageEvents, share, s.Chaos.RecoveredAt.Sub(s.Chaos.CutAt).Round(100*time.Millisecond))}
}

// round formats d with a precision that suits its size.
func round(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
