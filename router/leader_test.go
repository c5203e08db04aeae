package router_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// stateGauge returns the value of millrace_router_state{state=s} in reg.
func stateGauge(t *testing.T, reg *prometheus.Registry, s router.State) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != router.MetricState {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" && l.GetValue() == string(s) {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{state=%q}", router.MetricState, s)
	return 0
}

// One forwarder of a group is active and forwards everything; a second stands by
// (state standby, not idle, in Stats and in millrace_router_state) and both name
// the holder of the group lock; when the active one stops, the standby takes over
// within a moment and forwards; when none runs, no one holds the lock.
func TestOneForwarderIsActiveTheOtherStandsByAndTakesOver(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d outbox.Dialect) {
		e := newEnv(t, d)
		ctx := context.Background()
		if h, err := router.ReadLockHolder(ctx, e.db, e.ocfg); err != nil || h != nil {
			t.Fatalf("ReadLockHolder before any forwarder = %+v, %v; want nil", h, err)
		}
		reg1, reg2 := prometheus.NewRegistry(), prometheus.NewRegistry()
		f1 := e.forwarder(t, e.publisher(t, adapter.Config{}), func(c *router.Config) { c.Registerer = reg1 })
		f2 := e.forwarder(t, e.publisher(t, adapter.Config{}), func(c *router.Config) { c.Registerer = reg2 })
		before := time.Now().Add(-time.Second)
		stop1 := start(t, f1)
		waitFor(t, 10*time.Second, "forwarder 1 active", func() bool { return f1.Stats().Active })
		stop2 := start(t, f2)
		waitFor(t, 10*time.Second, "forwarder 2 standing by and naming the holder", func() bool {
			st := f2.Stats()
			return st.State == router.StateStandby && st.Holder != nil
		})
		if st := f2.Stats(); st.Active {
			t.Fatalf("both forwarders active: %+v", st)
		}
		if stateGauge(t, reg2, router.StateStandby) != 1 || stateGauge(t, reg2, router.StateIdle) != 0 {
			t.Errorf("standby's %s: standby %v, idle %v", router.MetricState,
				stateGauge(t, reg2, router.StateStandby), stateGauge(t, reg2, router.StateIdle))
		}

		h := f2.Stats().Holder
		host, _ := os.Hostname()
		switch d {
		case outbox.Postgres:
			if h.Host != host || h.PID != os.Getpid() || h.Since.Before(before.Truncate(time.Second)) || h.Since.After(time.Now()) {
				t.Errorf("holder %+v, want host %s pid %d since the start", h, host, os.Getpid())
			}
		case outbox.MySQL:
			if h.Connection == "" {
				t.Errorf("holder %+v names no connection", h)
			}
		}

		e.write(t, e.topic, []ev{{key: "a", seq: 1}, {key: "b", seq: 1}}, true)
		e.consumeDistinct(t, 2, 30*time.Second)
		if n1, n2 := f1.Stats().EventsForwarded, f2.Stats().EventsForwarded; n1 != 2 || n2 != 0 {
			t.Errorf("active forwarded %d, standby %d; want 2 and 0", n1, n2)
		}

		old := *f2.Stats().Holder
		stop1()
		waitFor(t, 10*time.Second, "forwarder 2 to take over", func() bool { return f2.Stats().Active })
		// The new holder is reported at once, not at the next StatsInterval.
		if h := f2.Stats().Holder; h == nil || h.Connection == old.Connection {
			t.Errorf("after the takeover the holder is %+v, the old one was %+v", h, old)
		}
		e.write(t, e.topic, []ev{{key: "a", seq: 2}}, true)
		e.consumeDistinct(t, 3, 30*time.Second)
		waitFor(t, 10*time.Second, "forwarder 2 to forward", func() bool { return f2.Stats().EventsForwarded == 1 })
		if stateGauge(t, reg2, router.StateStandby) != 0 {
			t.Errorf("the new active forwarder still reports standby")
		}

		stop2()
		waitFor(t, 5*time.Second, "the lock to be free", func() bool {
			h, err := router.ReadLockHolder(ctx, e.db, e.ocfg)
			return err == nil && h == nil
		})
	})
}

func TestLockHolderString(t *testing.T) {
	h := router.LockHolder{Host: "web-1", PID: 42, Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Connection: "postgres backend 7"}
	if got := h.String(); got != "host web-1 pid 42 since 2026-01-02T03:04:05Z" {
		t.Errorf("String() = %q", got)
	}
	if got := (router.LockHolder{Connection: "mysql connection 9"}).String(); got != "mysql connection 9" {
		t.Errorf("String() = %q", got)
	}
}

// When the database ends the active forwarder's lock connection (a network cut, a
// failover, pg_terminate_backend), the lock passes on (to the standby, unless the
// old holder is quicker to take it back), and never are both active: the one
// without the lock stands by and forwards nothing.
func TestALostLockConnectionHandsOverToTheStandby(t *testing.T) {
	e := newEnv(t, outbox.Postgres)
	ctx := context.Background()
	f1 := e.forwarder(t, e.publisher(t, adapter.Config{}), nil)
	f2 := e.forwarder(t, e.publisher(t, adapter.Config{}), nil)
	start(t, f1)
	waitFor(t, 10*time.Second, "forwarder 1 active", func() bool { return f1.Stats().Active })
	start(t, f2)
	waitFor(t, 10*time.Second, "forwarder 2 standing by", func() bool { return f2.Stats().State == router.StateStandby })

	h, err := router.ReadLockHolder(ctx, e.db, e.ocfg)
	if err != nil || h == nil {
		t.Fatalf("ReadLockHolder = %+v, %v", h, err)
	}
	backend := strings.TrimPrefix(h.Connection, "postgres backend ")
	var ok bool
	if err := e.db.QueryRowContext(ctx, `SELECT pg_terminate_backend($1::int)`, backend).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%s) = %v, %v", backend, ok, err)
	}
	// The old holder notices within leaderCheckInterval (1s).
	var active, standby *router.Forwarder
	waitFor(t, 10*time.Second, "a new lock connection, one forwarder active, the other standing by", func() bool {
		h2, err := router.ReadLockHolder(ctx, e.db, e.ocfg)
		if err != nil || h2 == nil || h2.Connection == h.Connection {
			return false
		}
		s1, s2 := f1.Stats(), f2.Stats()
		switch {
		case s1.Active && !s2.Active && s2.State == router.StateStandby:
			active, standby = f1, f2
		case s2.Active && !s1.Active && s1.State == router.StateStandby:
			active, standby = f2, f1
		default:
			return false
		}
		return true
	})
	time.Sleep(1500 * time.Millisecond) // past leaderCheckInterval: a second leader would show
	if f1.Stats().Active == f2.Stats().Active {
		t.Fatalf("active: forwarder 1 %v, forwarder 2 %v", f1.Stats().Active, f2.Stats().Active)
	}
	before := active.Stats().EventsForwarded
	e.write(t, e.topic, []ev{{key: "a", seq: 1}}, true)
	e.consumeDistinct(t, 1, 30*time.Second)
	waitFor(t, 10*time.Second, "the active forwarder to forward", func() bool { return active.Stats().EventsForwarded == before+1 })
	if n := standby.Stats().EventsForwarded; n != 0 {
		t.Errorf("the standby forwarded %d events", n)
	}
}
