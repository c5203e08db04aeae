package main

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/kafkatest"
)

// Two relays of one consumer group: /readyz of each says which is active and which
// stands by, both and relay status name the active one by host and pid, the
// standby's millrace_router_state is standby (not idle), and when the active relay
// stops the standby takes over and says so.
func TestRelayStatusAndReadyzNameTheActiveRelay(t *testing.T) {
	t.Parallel()
	d := postgresDB(t)
	c := kafkatest.New(t)
	cfg := newOutbox(t, d)
	out := &outputLog{}
	env := relayEnv(d, cfg, c.Addrs())
	mustRun(t, out, env, "migrate")
	host, _ := os.Hostname()

	readyz := func(addr string) readyJSON {
		t.Helper()
		_, body := get(t, "http://"+addr+"/readyz")
		var r readyJSON
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("/readyz %q: %v", body, err)
		}
		return r
	}
	holds := func(r readyJSON, pid int) bool {
		return r.LockHolder != nil && r.LockHolder.PID == pid && r.LockHolder.Host == host
	}

	a := startRelay(t, out, env)
	aAddr := a.httpAddr()
	waitFor(t, 15*time.Second, func() bool { r := readyz(aAddr); return r.Role == "active" && holds(r, a.cmd.Process.Pid) },
		func() string { return "relay A not active: " + get2(t, aAddr+"/readyz") })

	b := startRelay(t, out, env)
	bAddr := b.httpAddr()
	waitFor(t, 15*time.Second, func() bool { r := readyz(bAddr); return r.Role == "standby" && holds(r, a.cmd.Process.Pid) },
		func() string { return "relay B not standing by for A: " + get2(t, bAddr+"/readyz") })
	if r := readyz(bAddr); r.Status != "ok" {
		t.Errorf("a standby is ready to take over, /readyz = %+v", r)
	}
	_, metrics := get(t, "http://"+bAddr+"/metrics")
	if !strings.Contains(metrics, `state="standby"} 1`) || !strings.Contains(metrics, `state="idle"} 0`) {
		t.Errorf("standby's millrace_router_state:\n%s", grepLines(metrics, "millrace_router_state"))
	}

	st := statusOf(t, out, env)
	if st.LockHolder == nil || st.LockHolder.PID != a.cmd.Process.Pid || st.LockHolder.Host != host || st.LockHolder.Since.IsZero() {
		t.Errorf("relay status --json lock_holder = %+v, want relay A (pid %d)", st.LockHolder, a.cmd.Process.Pid)
	}
	table := mustRun(t, out, env, "status")
	if !strings.Contains(table, "Active relay") || !strings.Contains(table, "pid "+strconv.Itoa(a.cmd.Process.Pid)) {
		t.Errorf("relay status does not name relay A:\n%s", table)
	}

	a.signal(syscall.SIGTERM)
	if code := a.wait(30 * time.Second); code != 0 {
		t.Fatalf("relay A exited with %d", code)
	}
	waitFor(t, 15*time.Second, func() bool { r := readyz(bAddr); return r.Role == "active" && holds(r, b.cmd.Process.Pid) },
		func() string { return "relay B did not take over: " + get2(t, bAddr+"/readyz") })
	if !strings.Contains(b.stderr.String(), "active: this forwarder holds the group lock") {
		t.Errorf("relay B did not log that it became active")
	}
	b.signal(syscall.SIGTERM)
	if code := b.wait(30 * time.Second); code != 0 {
		t.Fatalf("relay B exited with %d", code)
	}
	if st := statusOf(t, out, env); st.LockHolder != nil {
		t.Errorf("no relay runs, yet lock_holder = %+v", st.LockHolder)
	}
}

func get2(t testing.TB, url string) string { _, b := get(t, "http://"+url); return b }
