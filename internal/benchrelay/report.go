package benchrelay

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Targets of the project, checked by Targets.
const (
	TargetRatioNoLatency = 3.0                     // ours/stock drain rate with no added latency
	TargetRatioLatency   = 30.0                    // ours/stock drain rate at TargetLatency each way
	TargetLatency        = 2500 * time.Microsecond // one way
	TargetP99            = 100 * time.Millisecond  // our trickle p99 with LISTEN/NOTIFY
	// TargetMemoryGrowth is how much more the peak RSS may be for the largest
	// backlog than for the smallest, for memory to count as bounded by the batch.
	TargetMemoryGrowth = 1.25
)

// Ratio returns ours/stock drain events per second at latency lat, or 0 when
// either is missing.
func (res *Result) Ratio(lat time.Duration) float64 {
	var ours, stock float64
	for _, r := range res.Rows {
		if r.Test != testDrain || r.Latency != lat {
			continue
		}
		switch r.Path {
		case pathOurs:
			ours = r.Rate
		case pathStock:
			stock = r.Rate
		}
	}
	if ours == 0 || stock == 0 {
		return 0
	}
	return ours / stock
}

// Target is one target of the project and whether the run met it.
type Target struct {
	What string
	Got  string
	Met  bool
}

// Targets checks the run against the project's targets: the drain ratios, our p99
// latency, bounded memory, and (always) nothing lost and order kept.
func (res *Result) Targets() []Target {
	var ts []Target
	lats := res.latencies()
	for _, lat := range lats {
		want := 0.0
		switch lat {
		case 0:
			want = TargetRatioNoLatency
		case TargetLatency:
			want = TargetRatioLatency
		}
		if want == 0 {
			continue
		}
		got := res.Ratio(lat)
		ts = append(ts, Target{
			What: fmt.Sprintf("drain rate ours/stock >= %.0fx at %s each way", want, fmtLatency(lat)),
			Got:  fmt.Sprintf("%.1fx", got),
			Met:  got >= want,
		})
	}
	for _, r := range res.Rows {
		if r.Test == testTrickle && r.Path == pathOurs {
			got := fmtDur(r.P99)
			if r.Foreign >= foreignReported {
				got += fmt.Sprintf(" (another session held a transaction open for %s during the test)", fmtDur(r.Foreign))
			}
			ts = append(ts, Target{
				What: fmt.Sprintf("our p99 commit-to-Kafka latency < %v at %s each way", TargetP99, fmtLatency(r.Latency)),
				Got:  got,
				Met:  r.P99 < TargetP99 && r.Lost == 0,
			})
		}
	}
	if len(res.Memory) >= 2 {
		ms := append([]Memory(nil), res.Memory...)
		sort.Slice(ms, func(i, j int) bool { return ms[i].Events < ms[j].Events })
		small, large := ms[0], ms[len(ms)-1]
		growth := float64(large.PeakKiB) / float64(max(small.PeakKiB, 1))
		ts = append(ts, Target{
			What: fmt.Sprintf("peak RSS bounded by the batch: %d-event backlog within %.2fx of the %d-event one",
				large.Events, TargetMemoryGrowth, small.Events),
			Got: fmt.Sprintf("%s vs %s (%.2fx)", fmtKiB(large.PeakKiB), fmtKiB(small.PeakKiB), growth),
			Met: growth <= TargetMemoryGrowth && large.Err == "" && small.Err == "",
		})
	}
	bad := 0
	for _, r := range res.Rows {
		bad += r.Lost + r.OrderViolations + r.WrongKey + r.SplitKeys + r.Unknown
	}
	for _, m := range res.Memory {
		bad += m.Lost + m.Violations
	}
	ts = append(ts, Target{
		What: "every event delivered, per-key order kept (both paths, every test)",
		Got:  fmt.Sprintf("%d problems", bad),
		Met:  bad == 0,
	})
	return ts
}

func (res *Result) latencies() []time.Duration {
	var lats []time.Duration
	seen := map[time.Duration]bool{}
	for _, r := range res.Rows {
		if !seen[r.Latency] {
			seen[r.Latency] = true
			lats = append(lats, r.Latency)
		}
	}
	return lats
}

// Markdown writes the results as markdown tables, with the targets, the settings
// of both paths and the notes.
func (res *Result) Markdown(w io.Writer) {
	fmt.Fprintln(w, "| test | latency each way (measured mean round trip) | path | events | seconds | events/s | ours/stock | p50 | p99 | duplicates | order violations | lost |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range res.Rows {
		ratio, p50, p99 := "", "", ""
		if r.Test == testDrain && r.Path == pathOurs {
			if x := res.Ratio(r.Latency); x > 0 {
				ratio = fmt.Sprintf("**%.1fx**", x)
			}
		}
		if r.Test == testTrickle {
			p50, p99 = fmtDur(r.P50), fmtDur(r.P99)
		}
		lat := fmtLatency(r.Latency)
		if rtt, ok := res.RTT[r.Latency]; ok {
			lat += fmt.Sprintf(" (RTT %s)", fmtDur(rtt[1]))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d | %.2f | %.0f | %s | %s | %s | %d | %d | %d |\n",
			r.Test, lat, r.Path, r.Events, r.Seconds, r.Rate, ratio, p50, p99,
			r.Duplicates, r.OrderViolations, r.Lost)
	}
	if len(res.Memory) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| memory test (millrace forwarder in a child process) | event size | batch size | seconds | events/s | RSS before forwarding | peak RSS (VmHWM) | Go heap from OS | duplicates | order violations | lost |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, m := range res.Memory {
			fmt.Fprintf(w, "| backlog of %d events | %d B | %d | %.2f | %.0f | %s | **%s** | %s | %d | %d | %d |\n",
				m.Events, m.PayloadBytes, m.BatchSize, m.Seconds, m.Rate, fmtKiB(m.BaselineKiB), fmtKiB(m.PeakKiB),
				fmtKiB(m.HeapSysKiB), m.Duplicates, m.Violations, m.Lost)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	fmt.Fprintln(w)
	for _, t := range res.Targets() {
		verdict := "met"
		if !t.Met {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "- %s: %s, **%s**\n", t.What, t.Got, verdict)
	}
	var extra []string
	for _, r := range res.Rows {
		if r.Batches > 0 {
			extra = append(extra, fmt.Sprintf("%s %s at %s: %d batches (%.1f events per batch on average), %d failed",
				r.Path, r.Test, fmtLatency(r.Latency), r.Batches, float64(r.Events)/float64(r.Batches), r.Failures))
		}
		if r.Test == testTrickle {
			extra = append(extra, fmt.Sprintf("%s trickle at %s: max latency %s", r.Path, fmtLatency(r.Latency), fmtDur(r.Max)))
		}
		if r.Foreign >= foreignReported {
			extra = append(extra, fmt.Sprintf("%s %s at %s: another session on the server held a transaction id for up to %s "+
				"during the test, holding back every event committed after it (%s)",
				r.Path, r.Test, fmtLatency(r.Latency), fmtDur(r.Foreign), r.ForeignWhat))
		}
		if r.WrongKey+r.SplitKeys+r.Unknown > 0 {
			extra = append(extra, fmt.Sprintf("%s %s at %s: %d records with the wrong key, %d keys over several partitions, %d unknown records",
				r.Path, r.Test, fmtLatency(r.Latency), r.WrongKey, r.SplitKeys, r.Unknown))
		}
		if r.Err != "" {
			extra = append(extra, fmt.Sprintf("%s %s at %s: %s", r.Path, r.Test, fmtLatency(r.Latency), r.Err))
		}
	}
	for _, m := range res.Memory {
		if m.Err != "" {
			extra = append(extra, fmt.Sprintf("memory %d: %s", m.Events, m.Err))
		}
	}
	extra = append(extra, res.Notes...)
	if len(extra) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Details:")
		fmt.Fprintln(w)
		for _, e := range extra {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Settings:")
	fmt.Fprintln(w)
	for _, p := range []string{pathStock, pathOurs} {
		if s, ok := res.Settings[p]; ok {
			fmt.Fprintf(w, "- %s: %s\n", p, s)
		}
	}
	c := res.Config
	fmt.Fprintf(w, "- workload: drain backlog %d events of %d B over %d keys (uniformly random), written in transactions of %d "+
		"before the timer starts; trickle %d events/s for %v, one event per transaction; %d partitions per topic; "+
		"consumer: franz-go, straight to the broker (not through the proxy)\n",
		c.Events, c.PayloadBytes, c.Keys, c.TxEvents, c.TrickleRate, c.TrickleDuration, c.Partitions)
	fmt.Fprintf(w, "- run %s took %v\n", res.RunID, res.Elapsed.Round(time.Second))
}

func fmtLatency(d time.Duration) string {
	if d == 0 {
		return "0 ms"
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)), "0"), ".") + " ms"
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

func fmtKiB(k int64) string { return fmt.Sprintf("%.1f MiB", float64(k)/1024) }

// SweepMarkdown writes the key sweep of several runs (one per key count) as one
// table per added latency: drain rate of both paths and their ratio, and the
// trickle's p99 commit-to-consumer latency of both paths.
func SweepMarkdown(w io.Writer, runs []*Result) {
	fmt.Fprintf(w, "## Key sweep\n\n")
	type cell struct{ drain, p99 map[string]Row }
	byLat := map[time.Duration]map[int]*cell{}
	var lats []time.Duration
	for _, res := range runs {
		for _, row := range res.Rows {
			m := byLat[row.Latency]
			if m == nil {
				m = map[int]*cell{}
				byLat[row.Latency] = m
				lats = append(lats, row.Latency)
			}
			c := m[res.Config.Keys]
			if c == nil {
				c = &cell{drain: map[string]Row{}, p99: map[string]Row{}}
				m[res.Config.Keys] = c
			}
			if row.Test == "drain" {
				c.drain[row.Path] = row
			} else {
				c.p99[row.Path] = row
			}
		}
	}
	for _, lat := range lats {
		fmt.Fprintf(w, "Added latency %v each way:\n\n", lat)
		fmt.Fprintf(w, "| keys | stock drain ev/s | millrace drain ev/s | ratio | stock trickle p99 | millrace trickle p99 |\n|---|---|---|---|---|---|\n")
		for _, res := range runs {
			c := byLat[lat][res.Config.Keys]
			if c == nil {
				continue
			}
			st, ou := c.drain[pathStock], c.drain[pathOurs]
			ratio := "-"
			if st.Rate > 0 {
				ratio = fmt.Sprintf("%.1fx", ou.Rate/st.Rate)
			}
			fmt.Fprintf(w, "| %d | %.0f | %.0f | %s | %v | %v |\n", res.Config.Keys, st.Rate, ou.Rate, ratio,
				c.p99[pathStock].P99.Round(100*time.Microsecond), c.p99[pathOurs].P99.Round(100*time.Microsecond))
		}
		fmt.Fprintln(w)
	}
}
