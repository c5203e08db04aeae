package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/syncbuf"
	"github.com/millrace/millrace/router"
)

// TestStatusLineFits80Columns: the live line of a long run in the worst state,
// with the elapsed time in front of it, fits an 80-column terminal (79 columns: a
// full line would wrap), and starts with the router's state.
func TestStatusLineFits80Columns(t *testing.T) {
	line := formatStatus(router.StateForwarding, true, 999999, 990000, 990000, 9999, 9) // lag 9999
	full := fmt.Sprintf("%6.1fs", 9999.9) + "  " + line
	if len(full) > 79 {
		t.Errorf("status line is %d columns:\n%s", len(full), full)
	}
	if !strings.HasPrefix(line, "forwarding (cut) ") {
		t.Errorf("status line does not start with the state: %q", line)
	}
}

// TestSummaryExplainsOutageP99: when the events in transit during the injected
// outage make the p99, the summary says so and gives the p99 of the others; when
// the outage does not, it says nothing.
func TestSummaryExplainsOutageP99(t *testing.T) {
	base := time.Now()
	cut, recovered := base.Add(10*time.Second), base.Add(13*time.Second)
	build := func(slowDuringOutage bool) (*summary, string) {
		commits := map[string]commit{}
		r := reading{seen: map[string]time.Time{}}
		for i := 0; i < 1000; i++ {
			id := fmt.Sprint(i)
			at := base.Add(time.Duration(i) * 20 * time.Millisecond) // 0..20s
			commits[id] = commit{customer: "c", seq: int64(i), at: at}
			read := at.Add(5 * time.Millisecond)
			if slowDuringOutage && !at.After(recovered) && !read.Before(cut) {
				read = recovered.Add(10 * time.Millisecond)
			}
			r.seen[id] = read
		}
		s := &summary{Committed: 1000, Chaos: chaosResult{OutageDone: true, CutAt: cut, RecoveredAt: recovered}}
		s.check(commits, r, nil, base)
		var out syncbuf.Buffer
		s.print(newConsole(&out))
		return s, out.String()
	}

	s, out := build(true)
	if s.Latency.OutageEvents != 151 || s.Latency.P99WithoutOutage != 5*time.Millisecond || s.Latency.P99 < 2*time.Second {
		t.Errorf("latency %+v", s.Latency)
	}
	if !strings.Contains(out, "without outage") || !strings.Contains(out, "the 151 events (15.1%) in transit from the injected cut to the recovery (3s) waited for the broker") {
		t.Errorf("the summary does not explain the p99:\n%s", out)
	}
	if _, out := build(false); strings.Contains(out, "without outage") {
		t.Errorf("the summary blames an outage that did not slow anything:\n%s", out)
	}
}
