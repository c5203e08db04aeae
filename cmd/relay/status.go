package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/millrace/millrace/router"
)

const statusHelp = `
Prints the backlog of RELAY_CONSUMER_GROUP on the outbox RELAY_OUTBOX: the pending
events (committed, not yet forwarded), the age of the oldest, the dead letters
stored, and when the group last recorded progress. A table by default; --json
prints one object for scripts:

  {"outbox":"outbox","consumer_group":"relay","dialect":"postgres",
   "database":"postgres://app:xxxxx@db:5432/app","pending":0,
   "oldest_pending_seconds":0,"dead_letters":0,"last_forwarded_at":"2025-01-02T03:04:05Z",
   "lock_holder":{"host":"web-1","pid":4242,"since":"2025-01-02T03:00:00Z","connection":"postgres backend 311"}}

last_forwarded_at is null when the group never forwarded anything. lock_holder is
the active relay of the group, which forwards while the others stand by; null when
no relay runs. On MySQL/MariaDB it is known by its connection only (host: the
client address, when the user may see other connections).`

// statusJSON is the output of relay status --json.
type statusJSON struct {
	Outbox               string             `json:"outbox"`
	ConsumerGroup        string             `json:"consumer_group"`
	Dialect              string             `json:"dialect"`
	Database             string             `json:"database"`
	Pending              int64              `json:"pending"`
	OldestPendingSeconds float64            `json:"oldest_pending_seconds"`
	DeadLetters          int64              `json:"dead_letters"`
	LastForwardedAt      *time.Time         `json:"last_forwarded_at"`
	LockHolder           *router.LockHolder `json:"lock_holder"`
}

func (a *app) cmdStatus(args []string) int {
	c := commandNamed("status")
	fs := newFlagSet(c.name)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	cfg, ok, code := a.loadConfig(fs, c, args, false, dbGroups)
	if !ok {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	log := newLogger(a.stderr, cfg.Log, cfg.logLevel)
	db, code := a.connect(ctx, cfg, log, c.name)
	if db == nil {
		return code
	}
	defer db.Close()
	ocfg := cfg.outboxConfig()
	st, err := backlog(ctx, db, ocfg)
	if err != nil {
		fmt.Fprintf(a.stderr, "relay status: %v\n", err)
		return exitFailure
	}
	out := statusJSON{
		Outbox: ocfg.Name, ConsumerGroup: ocfg.ConsumerGroup, Dialect: ocfg.Dialect.String(),
		Database: cfg.database.masked, Pending: st.Pending, OldestPendingSeconds: st.OldestPending.Seconds(),
		DeadLetters: st.DeadLetters,
	}
	if !st.LastForwardedAt.IsZero() {
		t := st.LastForwardedAt.UTC()
		out.LastForwardedAt = &t
	}
	if out.LockHolder, err = router.ReadLockHolder(ctx, db, ocfg); err != nil {
		fmt.Fprintf(a.stderr, "relay status: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		if err := enc.Encode(out); err != nil {
			return exitFailure
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Outbox\t%s (%s, consumer group %s)\n", out.Outbox, out.Dialect, out.ConsumerGroup)
	fmt.Fprintf(tw, "Database\t%s\n", out.Database)
	fmt.Fprintf(tw, "Pending events\t%d\n", out.Pending)
	oldest := "-"
	if st.Pending > 0 {
		oldest = roundDuration(st.OldestPending).String()
	}
	fmt.Fprintf(tw, "Oldest pending\t%s\n", oldest)
	fmt.Fprintf(tw, "Dead letters\t%d\n", out.DeadLetters)
	last := "never"
	if out.LastForwardedAt != nil {
		last = fmt.Sprintf("%s (%s ago)", out.LastForwardedAt.Format(time.RFC3339), roundDuration(time.Since(*out.LastForwardedAt)))
	}
	fmt.Fprintf(tw, "Last forwarded\t%s\n", last)
	holder := "none: no relay of this group runs"
	if h := out.LockHolder; h != nil {
		holder = h.String() + " (" + h.Connection + ")"
		if !h.Since.IsZero() {
			holder += fmt.Sprintf(", active for %s", roundDuration(time.Since(h.Since)))
		}
	}
	fmt.Fprintf(tw, "Active relay\t%s\n", holder)
	_ = tw.Flush()
	return exitOK
}

// roundDuration keeps a duration readable: milliseconds under a minute, seconds
// above.
func roundDuration(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}
