package main

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/kafkatest"
	"github.com/millrace/millrace/router"
)

// chromium returns the path of a Chromium binary, skipping the test when there is
// none (failing it when CI is set).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is required in CI (apt-get install chromium)")
	}
	t.Skip("chromium not installed (set CI to make this a failure)")
	return ""
}

// browse runs headless Chromium on url with extra (--dump-dom, --screenshot=...)
// after a virtual-time budget that lets the page fetch its state and render, and
// returns what it printed on stdout.
func browse(t *testing.T, bin, url string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=3000", "--window-size=1280,860",
	}
	args = append(append(args, extra...), url)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", extra, err, tail(stderr.String(), 3000))
	}
	return stdout.String()
}

var metricRe = regexp.MustCompile(`data-metric="([a-z_]+)"[^>]*>([^<]*)<`)

// pageMetrics returns the text of every data-metric element of dom.
func pageMetrics(dom string) map[string]string {
	out := map[string]string{}
	for _, m := range metricRe.FindAllStringSubmatch(dom, -1) {
		out[m[1]] = html.UnescapeString(strings.TrimSpace(m[2]))
	}
	return out
}

// labelledValue returns the value of the sample of name whose labels include label
// (`class="permanent"`), and whether there is one.
func labelledValue(exposition, name, label string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, label) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// labelledOrPlain is labelledValue, or metricValue when label is empty.
func labelledOrPlain(exposition, name, label string) (float64, bool) {
	if label == "" {
		return metricValue(exposition, name)
	}
	return labelledValue(exposition, name, label)
}

// TestTheConsoleShowsTheNumbersOfMetricsInABrowser starts the relay, lets events flow
// (one of them too large, so a dead letter), loads the console in headless Chromium
// and checks that the numbers the page rendered are those of /metrics. It keeps a
// screenshot (UPDATE_DOCS=1 writes it to docs/console.png for the README).
func TestTheConsoleShowsTheNumbersOfMetricsInABrowser(t *testing.T) {
	bin := chromium(t)
	d := postgresDB(t)
	c := kafkatest.New(t)
	topic := c.NewTopic(t, 3)
	cfg := newOutbox(t, d)
	out := &outputLog{}
	env := relayEnv(d, cfg, c.Addrs(), "RELAY_MIGRATE=true", "RELAY_KAFKA_MAX_MESSAGE_BYTES=20000",
		"RELAY_RETRY_MAX_ELAPSED=300ms", "RELAY_BATCH_RETRY_MAX=200ms")
	p := startRelay(t, out, env)
	addr := p.httpAddr()

	// Events in a few waves, so that the events/s chart has a shape; one event is
	// larger than the producer accepts and becomes a dead letter.
	ctx := context.Background()
	const waves, perWave = 4, 30
	for w := 0; w < waves; w++ {
		var evs []event
		for i := 0; i < perWave; i++ {
			evs = append(evs, event{uuid: watermill.NewUUID(), key: fmt.Sprintf("k%d", i%5), payload: []byte("order")})
		}
		if err := writeTx(ctx, d.db, cfg, topic, evs); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
	}
	poison := watermill.NewUUID()
	if err := writeTx(ctx, d.db, cfg, topic, []event{{uuid: poison, payload: bytes.Repeat([]byte("x"), 40000)}}); err != nil {
		t.Fatal(err)
	}

	metricsURL := "http://" + addr + "/metrics"
	var metrics string
	waitFor(t, 30*time.Second, func() bool {
		_, metrics = get(t, metricsURL)
		fwd, _ := metricValue(metrics, router.MetricEventsForwarded)
		dead, _ := metricValue(metrics, router.MetricDeadLettersStored)
		pending, ok := metricValue(metrics, router.MetricPending)
		return fwd == waves*perWave && dead == 1 && pending == 0 && ok
	}, func() string {
		return "events forwarded and the dead letter stored:\n" + grepLines(metrics, "millrace_router")
	})
	time.Sleep(1200 * time.Millisecond) // one more sample of the idle relay for the charts

	dom := browse(t, bin, "http://"+addr+"/", "--dump-dom")
	_, metrics = get(t, metricsURL)
	page := pageMetrics(dom)
	if !strings.Contains(dom, `data-loaded="true"`) {
		t.Fatalf("the page did not render the relay's state:\n%s", tail(dom, 4000))
	}

	for _, m := range []struct{ page, metric string }{
		{"events_forwarded", router.MetricEventsForwarded},
		{"pending", router.MetricPending},
		{"dead_letters_stored", router.MetricDeadLettersStored},
		{"lag_seconds", router.MetricLag},
	} {
		want, ok := metricValue(metrics, m.metric)
		if !ok {
			t.Errorf("/metrics has no %s", m.metric)
			continue
		}
		got, err := strconv.ParseFloat(page[m.page], 64)
		if err != nil || math.Abs(got-want) > 0.05 {
			t.Errorf("page %s = %q, /metrics %s = %v", m.page, page[m.page], m.metric, want)
		}
	}
	batchFailures := 0.0
	for _, class := range []string{"retriable", "permanent", "fatal", "canceled"} {
		v, _ := labelledValue(metrics, router.MetricBatchFailures, `class="`+class+`"`)
		batchFailures += v
	}
	if got, _ := strconv.ParseFloat(page["batch_failures"], 64); got != batchFailures {
		t.Errorf("page batch_failures = %q, /metrics %s sums to %v", page["batch_failures"], router.MetricBatchFailures, batchFailures)
	}
	if v, ok := labelledValue(metrics, router.MetricState, `state="`+page["state"]+`"`); !ok || v != 1 {
		t.Errorf("page state %q, but /metrics %s for it is %v", page["state"], router.MetricState, v)
	}
	if page["role"] != "active" {
		t.Errorf("page role = %q, want active", page["role"])
	}

	// Failures by class: the publisher's permanent failure, as in /metrics.
	wantPerm, _ := labelledValue(metrics, adapter.MetricGivenUp, `class="permanent"`)
	permRow := regexp.MustCompile(`<tr data-class="permanent"><td>permanent</td><td class="recent">(\d+)</td><td class="total">(\d+)</td></tr>`).
		FindStringSubmatch(dom)
	if permRow == nil || permRow[2] != strconv.Itoa(int(wantPerm)) || permRow[1] != permRow[2] || wantPerm != 1 {
		t.Errorf("permanent failures row %v, /metrics %s{class=permanent} = %v, want 1 recent and total",
			permRow, adapter.MetricGivenUp, wantPerm)
	}

	// The dead letter, with its reason, and no payload.
	row := regexp.MustCompile(`<tr data-uuid="` + poison + `">(.*?)</tr>`).FindStringSubmatch(dom)
	if row == nil {
		t.Errorf("dead letter %s not listed on the page", poison)
	} else if !strings.Contains(row[1], "permanent") || !strings.Contains(row[1], `class="reason"`) ||
		regexp.MustCompile(`class="reason">\s*<`).MatchString(row[1]) {
		t.Errorf("dead letter row lacks its class or reason: %s", row[1])
	}
	if strings.Contains(dom, "xxxxxxxxxx") {
		t.Error("the page shows a payload")
	}

	// Both charts have points of the last minutes.
	for _, id := range []string{"chart-eps", "chart-lag"} {
		m := regexp.MustCompile(`id="` + id + `"[^>]*>.*?<polyline points="[^"]*" data-points="(\d+)"`).FindStringSubmatch(dom)
		if m == nil {
			t.Errorf("chart %s has no line", id)
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n < 3 {
			t.Errorf("chart %s has %d points, want the samples of the run", id, n)
		}
	}
	if v := page["eps_max"]; !strings.HasPrefix(v, "max ") || v == "max 0.0" {
		t.Errorf("events/s chart maximum %q, want events seen", v)
	}

	// A second relay on the same outbox and group stands by; its page says so.
	p2 := startRelay(t, out, env)
	addr2 := p2.httpAddr()
	var metrics2 string
	waitFor(t, 30*time.Second, func() bool {
		_, metrics2 = get(t, "http://"+addr2+"/metrics")
		v, _ := labelledValue(metrics2, router.MetricState, `state="standby"`)
		return v == 1
	}, func() string { return "the second relay standing by:\n" + grepLines(metrics2, router.MetricState) })
	page2 := pageMetrics(browse(t, bin, "http://"+addr2+"/", "--dump-dom"))
	if page2["role"] != "standby" || page2["state"] != "standby" || !strings.Contains(page2["holder"], "lock held by") {
		t.Errorf("second relay's page: role %q, state %q, holder %q; want standby, standby, the holder",
			page2["role"], page2["state"], page2["holder"])
	}
	p2.signal(syscall.SIGTERM)
	p2.wait(30 * time.Second)

	// Then the broker refuses every write: events pend, the lag grows, batches fail
	// and are retried. The page, read between two reads of /metrics, shows numbers
	// between them (equal for those that cannot move while the relay is stuck).
	c.FailProduce(t, topic, kerr.NetworkException, -1)
	var stuck []event
	for i := 0; i < 7; i++ {
		stuck = append(stuck, event{uuid: watermill.NewUUID(), key: "stuck", payload: []byte("order")})
	}
	if err := writeTx(ctx, d.db, cfg, topic, stuck); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool {
		_, metrics = get(t, metricsURL)
		pending, _ := metricValue(metrics, router.MetricPending)
		retrying, _ := labelledValue(metrics, router.MetricState, `state="retrying"`)
		failures, _ := labelledValue(metrics, router.MetricBatchFailures, `class="retriable"`)
		return pending == 7 && retrying == 1 && failures >= 2
	}, func() string { return "the relay retrying 7 pending events:\n" + grepLines(metrics, "millrace_router") })
	_, before := get(t, metricsURL)
	dom = browse(t, bin, "http://"+addr+"/", "--dump-dom")
	_, after := get(t, metricsURL)
	page = pageMetrics(dom)
	between := func(name, metric, label string) {
		t.Helper()
		lo, ok1 := labelledOrPlain(before, metric, label)
		hi, ok2 := labelledOrPlain(after, metric, label)
		got, err := strconv.ParseFloat(page[name], 64)
		if !ok1 || !ok2 || err != nil || got < lo-0.05 || got > hi+0.05 {
			t.Errorf("page %s = %q, /metrics %s%s went from %v to %v", name, page[name], metric, label, lo, hi)
		}
	}
	between("pending", router.MetricPending, "")
	between("lag_seconds", router.MetricLag, "")
	between("batch_failures", router.MetricBatchFailures, `class="retriable"`)
	between("events_forwarded", router.MetricEventsForwarded, "")
	// The state alternates between forwarding (an attempt) and retrying (the wait).
	if st := page["state"]; st != "retrying" && st != "forwarding" {
		t.Errorf("page state = %q, want retrying or forwarding", st)
	}
	if lagV, _ := strconv.ParseFloat(page["lag_seconds"], 64); lagV <= 0 {
		t.Errorf("page lag = %q while 7 events are stuck", page["lag_seconds"])
	}
	if !regexp.MustCompile(`<p id="last-error" class="error">Last failure[^<]*publish to`).MatchString(dom) {
		t.Errorf("the page does not show the failure:\n%s", tail(dom, 3000))
	}

	// The screenshot, kept as an artifact.
	dir := filepath.Join(os.TempDir(), "millrace-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "console.png")
	browse(t, bin, "http://"+addr+"/", "--screenshot="+shot)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("console screenshot: %s", shot)
	if os.Getenv("UPDATE_DOCS") != "" {
		b, _ := os.ReadFile(shot)
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
