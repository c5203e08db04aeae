package benchrelay

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/millrace/millrace/outbox"
)

// foreignReported is the age of another session's transaction from which the
// report mentions it.
const foreignReported = 100 * time.Millisecond

// Test names, as printed.
const (
	testDrain   = "drain"
	testTrickle = "trickle"
)

// Row is the outcome of one test of one path.
type Row struct {
	Test    string        // "drain" or "trickle"
	Latency time.Duration // added by the proxy in each direction
	Path    string        // "stock" or "millrace"

	Events  int     // events written
	Seconds float64 // drain: forwarder start to last event consumed; trickle: writing time
	Rate    float64 // events per second over Seconds

	// Trickle only: commit-to-consumer latency of the events.
	P50, P99, Max time.Duration

	Duplicates      int // records of an event already read
	OrderViolations int // events read after a later event of their key
	Lost            int // committed events never read
	WrongKey        int // records whose Kafka key is not the event's key
	SplitKeys       int // keys spread over more than one partition
	Unknown         int // records of no committed event

	// Foreign is the age of the oldest transaction of another session (holding a
	// transaction id) seen on the server during the test; see interference.
	Foreign     time.Duration
	ForeignWhat string

	Batches  int64  // ours: batches the forwarder handled
	Failures int64  // ours: batches stopped by a failure
	Err      string // a failure of the test itself (for example a timeout)
}

// Memory is the outcome of one run of the memory test.
type Memory struct {
	Events       int
	PayloadBytes int
	Seconds      float64 // forwarder start until every event was acknowledged by Kafka
	Rate         float64
	BaselineKiB  int64 // child's VmRSS once connected, before forwarding
	PeakKiB      int64 // child's VmHWM after the drain
	HeapSysKiB   int64 // Go heap obtained from the OS
	Batches      int64
	Lost         int
	Duplicates   int
	Violations   int
	Err          string
	BatchSize    int
	GoMaxProcs   int
	ChildGCCount uint32
}

// Result is the outcome of a run.
type Result struct {
	Config   Config
	RunID    string
	Rows     []Row
	Memory   []Memory
	Settings map[string]string // per path
	// RTT is the round trip through the proxy measured at each latency: median and
	// mean of small requests.
	RTT     map[time.Duration][2]time.Duration
	Notes   []string
	Started time.Time
	Elapsed time.Duration
}

// runner holds the state of one run.
type runner struct {
	cfg   Config
	id    string
	kafka *kafkaEnv
	wdb   *sql.DB // the application's (writer's) pool
	res   *Result

	cleanups []cleanup
}

type cleanup struct {
	what string
	fn   func(ctx context.Context) error
}

// Run runs the benchmark: for each latency, the drain and the trickle test of the
// stock path and of ours; then the memory test. Every table and topic it creates
// has a name unique to the run and is dropped before Run returns, also on error.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, id: randomID(), res: &Result{Config: cfg, Started: time.Now(), Settings: map[string]string{},
		RTT: map[time.Duration][2]time.Duration{}}}
	r.res.RunID = r.id
	defer func() { r.res.Elapsed = time.Since(r.res.Started) }()

	r.wdb, err = openDB(ctx, cfg.DSN)
	if err != nil {
		return nil, err
	}
	defer r.wdb.Close()
	r.kafka, err = startKafka(ctx, cfg.Brokers)
	if err != nil {
		return nil, err
	}
	defer r.kafka.close()
	defer func() {
		if cerr := r.cleanupAll(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if left := r.leftovers(); left != "" {
			err = errors.Join(err, fmt.Errorf("benchrelay: tables left behind: %s", left))
		}
	}()
	r.note("Load average (1, 5, 15 min) at the start: %s.", loadAvg())
	defer func() { r.note("Load average at the end: %s.", loadAvg()) }()
	if len(cfg.Brokers) > 0 {
		r.note("Kafka: the real cluster of KAFKA_BROKERS (%s); no latency injected.", strings.Join(cfg.Brokers, ","))
	}

	for li, lat := range cfg.Latencies {
		if err := r.kafka.setLatency(lat); err != nil {
			return r.res, err
		}
		med, mean, err := r.kafka.measureRTT(ctx, 100)
		if err != nil {
			return r.res, fmt.Errorf("measure round trip: %w", err)
		}
		r.res.RTT[lat] = [2]time.Duration{med, mean}
		r.progress("latency %s each way: round trip to the broker through the proxy: median %v, mean %v (load average %s)",
			fmtLatency(lat), med.Round(10*time.Microsecond), mean.Round(10*time.Microsecond), loadAvg())
		for _, test := range []string{testDrain, testTrickle} {
			for _, p := range []string{pathStock, pathOurs} {
				row, err := r.runTest(ctx, test, p, li, lat)
				if err != nil {
					return r.res, fmt.Errorf("%s %s at %v: %w", test, p, lat, err)
				}
				r.res.Rows = append(r.res.Rows, row)
			}
		}
	}
	if len(cfg.MemoryEvents) > 0 {
		if cfg.Executable == "" {
			r.note("Memory test skipped: no executable for the child process.")
		} else if err := r.kafka.setLatency(0); err != nil {
			return r.res, err
		} else {
			for i, n := range cfg.MemoryEvents {
				m, err := r.memory(ctx, i, n)
				if err != nil {
					return r.res, fmt.Errorf("memory %d: %w", n, err)
				}
				r.res.Memory = append(r.res.Memory, m)
			}
		}
	}
	return r.res, nil
}

func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "%s bench-relay: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func (r *runner) note(format string, args ...any) {
	r.res.Notes = append(r.res.Notes, fmt.Sprintf(format, args...))
}

// onCleanup registers fn to run at the end of the run (or earlier with cleanupFrom).
func (r *runner) onCleanup(what string, fn func(ctx context.Context) error) {
	r.cleanups = append(r.cleanups, cleanup{what, fn})
}

// cleanupFrom runs, newest first, the cleanups registered since mark.
func (r *runner) cleanupFrom(mark int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for i := len(r.cleanups) - 1; i >= mark; i-- {
		if err := r.cleanups[i].fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("cleanup %s: %w", r.cleanups[i].what, err))
		}
	}
	r.cleanups = r.cleanups[:mark]
	return errors.Join(errs...)
}

func (r *runner) cleanupAll() error { return r.cleanupFrom(0) }

// leftovers lists the tables of this run still in the database.
func (r *runner) leftovers() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := r.wdb.QueryContext(ctx, `SELECT tablename FROM pg_tables WHERE tablename LIKE '%' || $1 || '%'`, r.prefix())
	if err != nil {
		return "(cannot list: " + err.Error() + ")"
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

// prefix starts every SQL name of the run.
func (r *runner) prefix() string { return "br_" + r.id }

// topicName is the Kafka topic of one test.
func (r *runner) topicName(suffix string) string { return "bench-relay-" + r.id + "-" + suffix }

// newPath returns the path p with SQL names unique to the test.
func (r *runner) newPath(p, suffix string) path {
	if p == pathStock {
		return &stockPath{dsn: r.cfg.DSN, sqlTopic: r.prefix() + "_s" + suffix}
	}
	return &oursPath{dsn: r.cfg.DSN, outbox: outbox.Config{Dialect: outbox.Postgres, Name: r.prefix() + "_o" + suffix}}
}

// prepare creates the topic and tables of a test and registers their removal.
func (r *runner) prepare(ctx context.Context, p path, topic string) error {
	if err := r.kafka.createTopic(ctx, topic, int32(r.cfg.Partitions)); err != nil {
		return err
	}
	r.onCleanup("topic "+topic, func(ctx context.Context) error { return r.kafka.deleteTopic(ctx, topic) })
	r.onCleanup("tables of "+p.name(), func(ctx context.Context) error { return p.teardown(ctx, r.wdb) })
	return p.setup(ctx)
}

// writeBacklog writes evs in transactions of txEvents with p's writer.
func (r *runner) writeBacklog(ctx context.Context, p path, topic string, l *ledger, g *generator, n, txEvents int) error {
	start := time.Now()
	for written := 0; written < n; {
		evs := g.make(min(txEvents, n-written))
		if err := p.write(ctx, r.wdb, topic, evs); err != nil {
			return fmt.Errorf("write backlog: %w", err)
		}
		l.committed(evs, time.Now())
		written += len(evs)
	}
	r.progress("  %s: backlog of %d events written in %.1fs", p.name(), n, time.Since(start).Seconds())
	return nil
}

// runTest runs one test (drain or trickle) of one path at one latency.
func (r *runner) runTest(ctx context.Context, test, pathName string, li int, lat time.Duration) (Row, error) {
	suffix := fmt.Sprintf("%c%d", test[0], li)
	p := r.newPath(pathName, suffix)
	topic := r.topicName(pathName + "-" + suffix)
	row := Row{Test: test, Latency: lat, Path: pathName}
	r.res.Settings[pathName] = p.settings()
	mark := len(r.cleanups)
	if err := r.prepare(ctx, p, topic); err != nil {
		return row, errors.Join(err, r.cleanupFrom(mark))
	}
	var err error
	watch := watchInterference(r.wdb)
	if test == testDrain {
		err = r.drain(ctx, p, topic, &row)
	} else {
		err = r.trickle(ctx, p, topic, &row)
	}
	var werr error
	row.Foreign, row.ForeignWhat, werr = watch.stop()
	if werr != nil {
		r.note("%s %s at %s: watching other sessions' transactions failed: %v", pathName, test, fmtLatency(lat), werr)
	}
	if row.Foreign >= foreignReported {
		r.progress("  note: another session held a transaction for %v during this test (%s)", row.Foreign.Round(time.Millisecond), row.ForeignWhat)
	}
	return row, errors.Join(err, r.cleanupFrom(mark))
}

// started is a relay running in the background.
type started struct {
	r      relay
	close  func()
	cancel context.CancelFunc
	done   chan error
}

func (s *started) stop() {
	_ = s.r.Close()
	s.cancel()
	<-s.done
	s.close()
}

func start(ctx context.Context, r relay, closeFn func()) *started {
	rctx, cancel := context.WithCancel(ctx)
	s := &started{r: r, close: closeFn, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- r.Run(rctx) }()
	return s
}

// drain writes the backlog, then times the relay from its start until the consumer
// has read every event.
func (r *runner) drain(ctx context.Context, p path, topic string, row *Row) error {
	n := r.cfg.Events
	row.Events = n
	l := newLedger(n)
	g := newGenerator(r.cfg.Keys, r.cfg.PayloadBytes, 1)
	coll, err := newCollector(r.kafka, topic, n)
	if err != nil {
		return err
	}
	defer coll.stop()
	if err := r.writeBacklog(ctx, p, topic, l, g, n, r.cfg.TxEvents); err != nil {
		return err
	}
	rl, closeFn, err := p.newRelay(ctx, r.kafka.addrs)
	if err != nil {
		return err
	}
	t0 := time.Now()
	s := start(ctx, rl, closeFn)
	doneAt, werr := coll.wait(ctx, r.cfg.PhaseTimeout)
	end := doneAt
	if werr != nil {
		end = time.Now()
		row.Err = werr.Error()
	}
	s.stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	coll.settle(300 * time.Millisecond)
	r.finish(row, p, l, coll.stop())
	row.Seconds = end.Sub(t0).Seconds()
	row.Rate = float64(row.Events-row.Lost) / row.Seconds
	r.progress("  %s drain: %d events in %.2fs = %.0f events/s (dup %d, order %d, lost %d)",
		p.name(), n, row.Seconds, row.Rate, row.Duplicates, row.OrderViolations, row.Lost)
	return nil
}

// trickle starts the relay, writes single-event transactions at TrickleRate for
// TrickleDuration, and measures each event's commit-to-consumer latency.
func (r *runner) trickle(ctx context.Context, p path, topic string, row *Row) error {
	n := max(int(float64(r.cfg.TrickleRate)*r.cfg.TrickleDuration.Seconds()), 1)
	row.Events = n
	l := newLedger(n)
	g := newGenerator(r.cfg.Keys, r.cfg.PayloadBytes, 2)
	coll, err := newCollector(r.kafka, topic, n)
	if err != nil {
		return err
	}
	defer coll.stop()
	rl, closeFn, err := p.newRelay(ctx, r.kafka.addrs)
	if err != nil {
		return err
	}
	s := start(ctx, rl, closeFn)
	defer func() {
		if s != nil {
			s.stop()
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = p.ready(rctx, rl)
	cancel()
	if err != nil {
		return fmt.Errorf("relay not ready: %w", err)
	}

	interval := time.Second / time.Duration(r.cfg.TrickleRate)
	t0 := time.Now()
	for i := range n {
		if wait := time.Until(t0.Add(time.Duration(i) * interval)); wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		evs := g.make(1)
		if err := p.write(ctx, r.wdb, topic, evs); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		l.committed(evs, time.Now())
	}
	row.Seconds = time.Since(t0).Seconds()
	row.Rate = float64(n) / row.Seconds
	if _, werr := coll.wait(ctx, r.cfg.PhaseTimeout); werr != nil {
		row.Err = werr.Error()
	}
	s.stop()
	s = nil
	if ctx.Err() != nil {
		return ctx.Err()
	}
	coll.settle(300 * time.Millisecond)
	v := r.finish(row, p, l, coll.stop())
	row.P50, row.P99 = percentile(v.latencies, 50), percentile(v.latencies, 99)
	if len(v.latencies) > 0 {
		row.Max = v.latencies[len(v.latencies)-1]
	}
	if v.negative > 0 {
		r.note("%s trickle at %s: %d events were consumed before their writer's Commit returned (latency counted as 0).",
			p.name(), fmtLatency(row.Latency), v.negative)
	}
	r.progress("  %s trickle: %d events at %.0f/s: p50 %v, p99 %v, max %v (dup %d, order %d, lost %d)",
		p.name(), n, row.Rate, row.P50.Round(10*time.Microsecond), row.P99.Round(10*time.Microsecond),
		row.Max.Round(10*time.Microsecond), row.Duplicates, row.OrderViolations, row.Lost)
	return nil
}

// finish fills the verification columns of row and returns the verdict.
func (r *runner) finish(row *Row, p path, l *ledger, recs []record) verdict {
	v := verify(l, recs)
	row.Duplicates, row.OrderViolations, row.Lost = v.duplicates, v.orderViolations, v.lost
	row.WrongKey, row.SplitKeys, row.Unknown = v.wrongKey, v.splitKeys, v.unknown
	if op, ok := p.(*oursPath); ok && op.last != nil {
		st := op.last.Stats()
		row.Batches, row.Failures = st.Batches, st.BatchFailures
	}
	return v
}

// loadAvg returns the first three fields of /proc/loadavg, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
