package benchrelay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// ChildMode is the value of -mode that runs the memory test's child (ChildMain).
const ChildMode = "drain-child"

// childConfig is what the parent passes to the child, as JSON in -child.
type childConfig struct {
	DSN     string   `json:"dsn"`
	Outbox  string   `json:"outbox"`
	Brokers []string `json:"brokers"`
	Events  int      `json:"events"`
	Timeout string   `json:"timeout"`
}

// childResult is what the child prints, as one JSON line on stdout.
type childResult struct {
	Events      int64   `json:"events"`
	Seconds     float64 `json:"seconds"`
	BaselineKiB int64   `json:"baseline_kib"`
	PeakKiB     int64   `json:"peak_kib"`
	HeapSysKiB  int64   `json:"heap_sys_kib"`
	NumGC       uint32  `json:"num_gc"`
	Batches     int64   `json:"batches"`
	BatchSize   int     `json:"batch_size"`
	GoMaxProcs  int     `json:"gomaxprocs"`
	Error       string  `json:"error,omitempty"`
}

// ChildMain is the memory test's child: it runs our forwarder, with its defaults,
// over an outbox whose backlog the parent wrote, until Events events were written to
// Kafka, and prints its peak RSS (VmHWM of /proc/self/status) and its timing as one
// JSON line on stdout. Only the forwarder lives in this process, so the writer's and
// the consumer's memory do not count. args are the arguments after -mode drain-child.
// With BENCH_RELAY_DEBUG set in its environment, the forwarder logs at debug level
// (one line per batch) to stderr.
func ChildMain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(ChildMode, flag.ContinueOnError)
	raw := fs.String("child", "", "child configuration (JSON), written by the parent")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var cfg childConfig
	if err := json.Unmarshal([]byte(*raw), &cfg); err != nil {
		return fmt.Errorf("-child: %w", err)
	}
	res, err := drainChild(ctx, cfg)
	if err != nil {
		res.Error = err.Error()
	}
	line, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(line))
	return err
}

func drainChild(ctx context.Context, cfg childConfig) (childResult, error) {
	res := childResult{GoMaxProcs: runtime.GOMAXPROCS(0), BatchSize: router.DefaultBatchSize}
	timeout, err := time.ParseDuration(cfg.Timeout)
	if err != nil {
		return res, fmt.Errorf("timeout: %w", err)
	}
	db, err := openDB(ctx, cfg.DSN)
	if err != nil {
		return res, err
	}
	defer db.Close()
	pub, err := router.NewKafkaPublisher(adapter.KafkaConfig{Brokers: cfg.Brokers}, adapter.Config{})
	if err != nil {
		return res, err
	}
	defer pub.Close()
	rcfg := router.Config{
		DB:        db,
		Outbox:    outbox.Config{Dialect: outbox.Postgres, Name: cfg.Outbox},
		Publisher: pub,
		Logger:    debugLogger(),
	}
	fwd, err := router.NewForwarder(rcfg)
	if err != nil {
		return res, err
	}
	if st, err := procStatus(); err == nil {
		res.BaselineKiB = st["VmRSS"]
	}

	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- fwd.Run(ctx) }()
	deadline := time.After(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-tick.C:
			if fwd.Stats().EventsForwarded >= int64(cfg.Events) {
				break wait
			}
		case <-deadline:
			err = fmt.Errorf("forwarded %d of %d events in %v", fwd.Stats().EventsForwarded, cfg.Events, timeout)
			break wait
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		}
	}
	res.Seconds = time.Since(t0).Seconds()
	_ = fwd.Close()
	<-done
	st := fwd.Stats()
	res.Events, res.Batches = st.EventsForwarded, st.Batches
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapSysKiB, res.NumGC = int64(ms.HeapSys/1024), ms.NumGC
	pst, perr := procStatus()
	if perr != nil {
		return res, errors.Join(err, perr)
	}
	res.PeakKiB = pst["VmHWM"]
	return res, err
}

// procStatus reads the kB fields of /proc/self/status (VmRSS, VmHWM, ...).
func procStatus() (map[string]int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 2 && f[1] == "kB" {
			if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				out[name] = v
			}
		}
	}
	return out, nil
}

// memory writes a backlog of n events of MemoryPayloadBytes into a fresh outbox,
// drains it with our forwarder in a child process, and checks at the consumer that
// every event arrived in order.
func (r *runner) memory(ctx context.Context, i, n int) (Memory, error) {
	m := Memory{Events: n, PayloadBytes: r.cfg.MemoryPayloadBytes}
	suffix := fmt.Sprintf("m%d", i)
	p := r.newPath(pathOurs, suffix).(*oursPath)
	topic := r.topicName(pathOurs + "-" + suffix)
	mark := len(r.cleanups)
	err := r.prepare(ctx, p, topic)
	if err == nil {
		err = r.memoryRun(ctx, p, topic, &m)
	}
	return m, errors.Join(err, r.cleanupFrom(mark))
}

func (r *runner) memoryRun(ctx context.Context, p *oursPath, topic string, m *Memory) error {
	n := m.Events
	l := newLedger(n)
	g := newGenerator(r.cfg.Keys, r.cfg.MemoryPayloadBytes, 3)
	if err := r.writeBacklog(ctx, p, topic, l, g, n, DefaultMemoryTxEvents); err != nil {
		return err
	}
	coll, err := newCollector(r.kafka, topic, n)
	if err != nil {
		return err
	}
	defer coll.stop()
	cfg, _ := json.Marshal(childConfig{
		DSN: r.cfg.DSN, Outbox: p.outbox.Name, Brokers: r.kafka.addrs, Events: n,
		Timeout: r.cfg.PhaseTimeout.String(),
	})
	cmd := exec.CommandContext(ctx, r.cfg.Executable, "-mode", ChildMode, "-child", string(cfg))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = r.cfg.Progress
	runErr := cmd.Run()
	var res childResult
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil {
		return fmt.Errorf("child: %v; output %q: %w", runErr, stdout.String(), jerr)
	}
	if runErr != nil {
		m.Err = fmt.Sprintf("child: %v: %s", runErr, res.Error)
	}
	m.Seconds, m.BaselineKiB, m.PeakKiB, m.HeapSysKiB = res.Seconds, res.BaselineKiB, res.PeakKiB, res.HeapSysKiB
	m.Batches, m.BatchSize, m.GoMaxProcs, m.ChildGCCount = res.Batches, res.BatchSize, res.GoMaxProcs, res.NumGC
	if res.Seconds > 0 {
		m.Rate = float64(res.Events) / res.Seconds
	}
	if _, werr := coll.wait(ctx, time.Minute); werr != nil && m.Err == "" {
		m.Err = werr.Error()
	}
	coll.settle(300 * time.Millisecond)
	v := verify(l, coll.stop())
	m.Lost, m.Duplicates, m.Violations = v.lost, v.duplicates, v.orderViolations
	r.progress("  memory: %d events of %d B drained in %.1fs (%.0f/s); RSS before %d KiB, peak %d KiB (dup %d, order %d, lost %d)",
		n, m.PayloadBytes, m.Seconds, m.Rate, m.BaselineKiB, m.PeakKiB, m.Duplicates, m.Violations, m.Lost)
	return nil
}
