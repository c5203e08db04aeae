// Package console is the relay's live console: one small read-only page at the root
// of the relay's HTTP server that shows the forwarder's state (active or standby),
// events per second and lag over the last 15 minutes as charts, the backlog, the
// dead letters with their reasons, and the recent publish failures by class.
//
// The page, its script and its style sheet are embedded in the binary (no build
// step, no CDN: it works offline and behind a firewall). The script polls
// /console/api/state, which answers JSON from memory: the current counters are read
// live from the forwarder and the publisher (the same values /metrics exports), the
// history is sampled every second by a goroutine of the console, and the dead
// letters are re-read from the database when their count changes. Nothing on the
// page changes state: the console only has GET endpoints.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// Defaults of Config.
const (
	DefaultInterval        = time.Second
	DefaultWindow          = 15 * time.Minute
	DefaultDeadLetterLimit = 20
)

// APIPath is the path of the JSON state the page polls.
const APIPath = "/console/api/state"

//go:embed assets
var assets embed.FS

// Config configures a Console. Stats is required; the other sources are optional.
type Config struct {
	// Stats returns the forwarder's snapshot, normally (*router.Forwarder).Stats.
	// Required.
	Stats func() router.Stats
	// Publisher returns the decorator's counters, normally
	// (*adapter.Publisher).Metrics. nil: no failures by class.
	Publisher func() adapter.Metrics
	// DeadLetters lists up to limit dead letters, oldest first, normally
	// outbox.List. nil: the page shows their count only.
	DeadLetters func(ctx context.Context, limit int) ([]outbox.DeadLetter, error)
	// Redact masks secrets in the texts the page shows (errors, reasons). nil: none.
	Redact func(string) string
	// Interval is how often the history is sampled. Defaults to 1s.
	Interval time.Duration
	// Window is how far back the charts go. Defaults to 15m.
	Window time.Duration
	// DeadLetterLimit is how many dead letters the page lists. Defaults to 20.
	DeadLetterLimit int
}

// Console samples a forwarder and serves the page. Create it with New and stop its
// sampling with Close; it is safe for concurrent use.
type Console struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	samples []sample // oldest first, at most Window/Interval+1
	dls     []outbox.DeadLetter
	dlsErr  string
	dlsOf   int64     // the stored count the list was read at, -1 before the first read
	dlsAt   time.Time // when the list was read
}

// sample is one point of the history.
type sample struct {
	at        time.Time
	forwarded int64
	lag       time.Duration
	pending   int64
	failed    [4]int64 // by adapter.Class
	retries   int64
}

// New returns a Console of cfg and starts sampling.
func New(cfg Config) *Console {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.DeadLetterLimit <= 0 {
		cfg.DeadLetterLimit = DefaultDeadLetterLimit
	}
	if cfg.Redact == nil {
		cfg.Redact = func(s string) string { return s }
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Console{cfg: cfg, cancel: cancel, done: make(chan struct{}), dlsOf: -1}
	c.sample(time.Now())
	go c.run(ctx)
	return c
}

// Close stops the sampling. The handler keeps answering with the last samples.
func (c *Console) Close() error {
	c.cancel()
	<-c.done
	return nil
}

func (c *Console) run(ctx context.Context) {
	defer close(c.done)
	c.refreshDeadLetters(ctx, true)
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.sample(now)
			c.refreshDeadLetters(ctx, false)
		}
	}
}

func (c *Console) sample(now time.Time) {
	st := c.cfg.Stats()
	s := sample{at: now, forwarded: st.EventsForwarded, lag: st.Backlog.OldestPending, pending: st.Backlog.Pending}
	if c.cfg.Publisher != nil {
		m := c.cfg.Publisher()
		for i := range s.failed {
			s.failed[i] = m.GivenUp(adapter.Class(i))
		}
		s.retries = m.RetriesTotal
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.samples = append(c.samples, s)
	keep := int(c.cfg.Window/c.cfg.Interval) + 1
	if n := len(c.samples); n > keep {
		c.samples = append(c.samples[:0], c.samples[n-keep:]...)
	}
}

// refreshDeadLetters re-reads the dead letters when their stored count changed
// since the last read (or a minute passed), or when force is set.
func (c *Console) refreshDeadLetters(ctx context.Context, force bool) {
	if c.cfg.DeadLetters == nil {
		return
	}
	stored := c.cfg.Stats().Backlog.DeadLetters
	c.mu.Lock()
	stale := force || stored != c.dlsOf || time.Since(c.dlsAt) > time.Minute
	c.mu.Unlock()
	if !stale {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	dls, err := c.cfg.DeadLetters(ctx, c.cfg.DeadLetterLimit)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dlsAt = time.Now()
	if err != nil {
		c.dlsErr = c.cfg.Redact(err.Error())
		return
	}
	c.dls, c.dlsErr, c.dlsOf = dls, "", stored
}

// State is the JSON document of APIPath.
type State struct {
	Now             time.Time  `json:"now"`
	IntervalSeconds float64    `json:"interval_seconds"`
	WindowSeconds   float64    `json:"window_seconds"`
	State           string     `json:"state"`
	Role            string     `json:"role"`   // "active", "standby", or "inactive" (not running)
	Holder          string     `json:"holder"` // the forwarder holding the group's lock, "" if unknown
	LastError       string     `json:"last_error"`
	FailingSince    *time.Time `json:"failing_since"`

	EventsForwarded  int64   `json:"events_forwarded"`
	EventsPerSecond  float64 `json:"events_per_second"` // over the last interval
	Batches          int64   `json:"batches"`
	BatchFailures    int64   `json:"batch_failures"`
	DeadLettersSetBy int64   `json:"dead_letters_forwarder"` // by this forwarder since start

	Pending           int64      `json:"pending"`
	LagSeconds        float64    `json:"lag_seconds"`
	DeadLettersStored int64      `json:"dead_letters_stored"`
	LastForwardedAt   *time.Time `json:"last_forwarded_at"`

	Failures      []ClassFailures `json:"failures"`
	RetriesTotal  int64           `json:"retries_total"`
	RetriesRecent int64           `json:"retries_recent"`

	History          []Point      `json:"history"`
	DeadLetters      []DeadLetter `json:"dead_letters"`
	DeadLettersError string       `json:"dead_letters_error,omitempty"`
}

// ClassFailures counts the messages the publisher finally gave up on, of one class.
type ClassFailures struct {
	Class  string `json:"class"`
	Recent int64  `json:"recent"` // within the window
	Total  int64  `json:"total"`
}

// Point is one point of the charts.
type Point struct {
	T               int64   `json:"t"` // Unix milliseconds
	EventsPerSecond float64 `json:"eps"`
	LagSeconds      float64 `json:"lag"`
	Pending         int64   `json:"pending"`
}

// DeadLetter is a dead letter as the page shows it: never the payload, key or
// metadata.
type DeadLetter struct {
	ID       int64     `json:"id"`
	UUID     string    `json:"uuid"`
	Topic    string    `json:"topic"`
	Class    string    `json:"class"`
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	FailedAt time.Time `json:"failed_at"`
}

// Snapshot returns what the page shows now.
func (c *Console) Snapshot() State {
	now := time.Now()
	st := c.cfg.Stats()
	out := State{
		Now: now, IntervalSeconds: c.cfg.Interval.Seconds(), WindowSeconds: c.cfg.Window.Seconds(),
		State: string(st.State), Role: "inactive", LastError: c.cfg.Redact(st.LastError),
		EventsForwarded: st.EventsForwarded, Batches: st.Batches, BatchFailures: st.BatchFailures,
		DeadLettersSetBy: st.DeadLetters, Pending: st.Backlog.Pending,
		LagSeconds: st.Backlog.OldestPending.Seconds(), DeadLettersStored: st.Backlog.DeadLetters,
		History: []Point{}, DeadLetters: []DeadLetter{}, Failures: []ClassFailures{},
	}
	switch {
	case st.Active:
		out.Role = "active"
	case st.State == router.StateStandby:
		out.Role = "standby"
	}
	if st.Holder != nil {
		out.Holder = c.cfg.Redact(st.Holder.String())
	}
	if !st.FailingSince.IsZero() {
		t := st.FailingSince
		out.FailingSince = &t
	}
	if !st.Backlog.LastForwardedAt.IsZero() {
		t := st.Backlog.LastForwardedAt
		out.LastForwardedAt = &t
	}
	var m adapter.Metrics
	if c.cfg.Publisher != nil {
		m = c.cfg.Publisher()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.samples {
		p := Point{T: s.at.UnixMilli(), LagSeconds: s.lag.Seconds(), Pending: s.pending}
		if i > 0 {
			prev := c.samples[i-1]
			if d := s.at.Sub(prev.at).Seconds(); d > 0 && s.forwarded >= prev.forwarded {
				p.EventsPerSecond = float64(s.forwarded-prev.forwarded) / d
			}
		}
		out.History = append(out.History, p)
	}
	if n := len(out.History); n > 0 {
		out.EventsPerSecond = out.History[n-1].EventsPerSecond
	}
	var first sample
	if len(c.samples) > 0 {
		first = c.samples[0]
	}
	if c.cfg.Publisher != nil {
		for _, cl := range []adapter.Class{adapter.Retriable, adapter.Permanent, adapter.Fatal, adapter.Canceled} {
			total := m.GivenUp(cl)
			out.Failures = append(out.Failures, ClassFailures{
				Class: cl.String(), Total: total, Recent: max(total-first.failed[cl], 0),
			})
		}
		out.RetriesTotal = m.RetriesTotal
		out.RetriesRecent = max(m.RetriesTotal-first.retries, 0)
	}
	for _, d := range c.dls {
		out.DeadLetters = append(out.DeadLetters, DeadLetter{
			ID: d.ID, UUID: d.UUID, Topic: d.Topic, Class: d.Class, Reason: c.cfg.Redact(d.Reason),
			Attempts: d.Attempts, FailedAt: d.FailedAt,
		})
	}
	out.DeadLettersError = c.dlsErr
	return out
}

// Handler returns the console's endpoints: the page at "/" (and its assets under
// /console/), and the JSON state at APIPath. Mount it at the root of a mux whose
// more specific patterns (/metrics, /healthz...) take precedence.
func (c *Console) Handler() http.Handler {
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	index, err := fs.ReadFile(static, "index.html")
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(static)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+APIPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(c.Snapshot())
	})
	mux.Handle("GET /console/", http.StripPrefix("/console/", files))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(index)
	})
	return securityHeaders(mux)
}

// securityHeaders forbids framing and loading anything from elsewhere: the page
// only talks to its own origin.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy",
			"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}
