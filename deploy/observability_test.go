package deploy_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/internal/kafkatest"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// Tests of the Prometheus configuration, the Grafana provisioning and the dashboard.

type prometheusConfig struct {
	Global struct {
		ScrapeInterval     string `json:"scrape_interval"`
		EvaluationInterval string `json:"evaluation_interval"`
	} `json:"global"`
	ScrapeConfigs []struct {
		JobName       string `json:"job_name"`
		MetricsPath   string `json:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `json:"targets"`
			Labels  map[string]string `json:"labels"`
		} `json:"static_configs"`
	} `json:"scrape_configs"`
}

// prometheusTargets returns the targets of the jobs scraping /metrics.
func prometheusTargets(t testing.TB) []string {
	t.Helper()
	var c prometheusConfig
	readStrict(t, prometheusFile, &c)
	var out []string
	for _, sc := range c.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			continue
		}
		for _, s := range sc.StaticConfigs {
			out = append(out, s.Targets...)
		}
	}
	return out
}

func TestPrometheusConfig(t *testing.T) {
	var c prometheusConfig
	readStrict(t, prometheusFile, &c)
	if len(c.ScrapeConfigs) == 0 {
		t.Fatal("no scrape_configs")
	}
	for _, sc := range c.ScrapeConfigs {
		if sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %q, want /metrics", sc.JobName, sc.MetricsPath)
		}
	}
	if targets := prometheusTargets(t); !slices.Contains(targets, "relay:9464") {
		t.Errorf("targets %v, want relay:9464", targets)
	}
	p := loadCompose(t)
	if got := mountTarget(t, service(t, p, "prometheus"), prometheusFile); got != "/etc/prometheus/prometheus.yml" {
		t.Errorf("prometheus.yml mounted at %s", got)
	}
	if !slices.Contains(service(t, p, "prometheus").Command, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus runs %v, not with the mounted config", service(t, p, "prometheus").Command)
	}
}

type grafanaDatasources struct {
	APIVersion  int `json:"apiVersion"`
	Datasources []struct {
		Name      string         `json:"name"`
		UID       string         `json:"uid"`
		Type      string         `json:"type"`
		Access    string         `json:"access"`
		URL       string         `json:"url"`
		IsDefault bool           `json:"isDefault"`
		Editable  bool           `json:"editable"`
		JSONData  map[string]any `json:"jsonData"`
	} `json:"datasources"`
}

type grafanaProviders struct {
	APIVersion int `json:"apiVersion"`
	Providers  []struct {
		Name                  string `json:"name"`
		OrgID                 int    `json:"orgId"`
		Folder                string `json:"folder"`
		Type                  string `json:"type"`
		DisableDeletion       bool   `json:"disableDeletion"`
		AllowUIUpdates        bool   `json:"allowUiUpdates"`
		UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `json:"path"`
			FoldersFromFilesStructure bool   `json:"foldersFromFilesStructure"`
		} `json:"options"`
	} `json:"providers"`
}

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

func readDashboard(t testing.TB) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// exprs returns every query of the dashboard by panel title.
func (d dashboard) exprs() map[string][]string {
	out := map[string][]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func TestGrafanaProvisioning(t *testing.T) {
	p := loadCompose(t)
	grafana := service(t, p, "grafana")

	var ds grafanaDatasources
	readStrict(t, datasourcesFile, &ds)
	if len(ds.Datasources) != 1 {
		t.Fatalf("%d datasources, want 1", len(ds.Datasources))
	}
	src := ds.Datasources[0]
	u, err := url.Parse(src.URL)
	if err != nil || src.Type != "prometheus" || u.Host != "prometheus:9090" {
		t.Errorf("datasource %+v: want type prometheus at http://prometheus:9090 (the compose service)", src)
	}
	if got := mountTarget(t, grafana, filepath.Dir(datasourcesFile)); got != "/etc/grafana/provisioning/datasources" {
		t.Errorf("datasources mounted at %s", got)
	}

	var prov grafanaProviders
	readStrict(t, dashboardsFile, &prov)
	if got := mountTarget(t, grafana, filepath.Dir(dashboardsFile)); got != "/etc/grafana/provisioning/dashboards" {
		t.Errorf("dashboard providers mounted at %s", got)
	}
	dashDir := mountTarget(t, grafana, filepath.Dir(dashboardFile))
	if len(prov.Providers) != 1 || prov.Providers[0].Options.Path != dashDir || prov.Providers[0].Type != "file" {
		t.Errorf("dashboard providers %+v: want one file provider reading %s", prov.Providers, dashDir)
	}
	if home := env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != path.Join(dashDir, filepath.Base(dashboardFile)) {
		t.Errorf("home dashboard %q is not the mounted %s", home, dashboardFile)
	}
	if env(grafana)["GF_AUTH_ANONYMOUS_ENABLED"] != "true" || env(grafana)["GF_AUTH_ANONYMOUS_ORG_ROLE"] != "Viewer" {
		t.Error("grafana: anonymous access should be on, as Viewer")
	}

	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q", d.UID, d.Title)
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, pn := range ps {
			if ids[pn.ID] {
				t.Errorf("panel id %d is used twice", pn.ID)
			}
			ids[pn.ID] = true
			if pn.Type == "row" {
				walk(pn.Panels)
				continue
			}
			if pn.Datasource == nil || pn.Datasource.UID != src.UID {
				t.Errorf("panel %q: datasource %+v, want uid %q", pn.Title, pn.Datasource, src.UID)
			}
			if len(pn.Targets) == 0 {
				t.Errorf("panel %q has no query", pn.Title)
			}
			for _, tg := range pn.Targets {
				if strings.TrimSpace(tg.Expr) == "" || (tg.Datasource != nil && tg.Datasource.UID != src.UID) {
					t.Errorf("panel %q: query %s %q", pn.Title, tg.RefID, tg.Expr)
				}
			}
		}
	}
	walk(d.Panels)
}

// The dashboard shows what an operator of the relay watches; the names are the
// exported constants of the packages that register the metrics.
func TestDashboardCoversTheRelay(t *testing.T) {
	used := map[string]bool{}
	for _, exprs := range readDashboard(t).exprs() {
		for _, e := range exprs {
			for _, m := range metricNames(e) {
				used[m] = true
			}
		}
	}
	for what, metric := range map[string]string{
		"lag":                 router.MetricLag,
		"pending":             router.MetricPending,
		"forwarded":           router.MetricEventsForwarded,
		"published":           adapter.MetricPublished,
		"retries":             adapter.MetricRetries,
		"batch failures":      router.MetricBatchFailures,
		"given-up messages":   adapter.MetricGivenUp,
		"dead letters":        router.MetricDeadLetters,
		"dead letters stored": router.MetricDeadLettersStored,
		"state":               router.MetricState,
		"publish duration":    adapter.MetricPublishDuration + "_bucket",
	} {
		if !used[metric] {
			t.Errorf("no panel shows the %s (%s)", what, metric)
		}
	}
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promKeywords = map[string]bool{
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
	}
)

// metricNames returns the metric names a PromQL expression selects: identifiers that
// are not functions, keywords, label names or Grafana variables.
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var out []string
	for _, m := range promIdent.FindAllStringIndex(s, -1) {
		tok := s[m[0]:m[1]]
		if strings.HasSuffix(tok, "(") || promKeywords[strings.ToLower(tok)] {
			continue
		}
		if m[0] > 0 && (s[m[0]-1] == '$' || s[m[0]-1] == '.' || (s[m[0]-1] >= '0' && s[m[0]-1] <= '9')) {
			continue // $variable, 1.5e3
		}
		out = append(out, tok)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y"}[$__rate_interval])))`: {"a_bucket"},
		`sum(rate(b_sum[5m])) / sum(rate(b_count[5m]))`:                                   {"b_sum", "b_count"},
		`max by (instance, state) (c) == 1`:                                               {"c"},
		`time() - max(d)`:                                                                 {"d"},
		`e offset 5m and on (x) f{le="+Inf"}`:                                             {"e", "f"},
		`1e3 * g`:                                                                         {"g"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %v, want %v", expr, got, want)
		}
	}
}

// Every metric a dashboard panel queries is one the relay exports: the names come
// from the /metrics of a real relay (built from cmd/relay) that forwarded an event
// after one fatal batch failure, so that the labelled series (failures by class)
// exist too.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	bin := relayBinary(t)
	db := dbtest.Postgres(t)
	kc := kafkatest.New(t)
	kc.RequireFake(t) // injects a produce failure
	topic := kc.NewTopic(t, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := outbox.Config{Dialect: outbox.Postgres, Name: dbtest.UniqueName("deploy")}
	if err := outbox.InitializeSchema(ctx, db, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := outbox.DropSchema(ctx, db, cfg); err != nil {
			t.Logf("drop outbox %s: %v", cfg.Name, err)
		}
	})
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := outbox.NewPublisher(tx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order":1}`))
	outbox.SetKey(msg, "order-1")
	if err := pub.Publish(topic, msg); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	kc.FailProduce(t, topic, kerr.TopicAuthorizationFailed, 1) // fatal: one failed batch

	p := startProc(t, bin, map[string]string{
		"RELAY_DATABASE_URL":         dbtest.PostgresDSN(),
		"RELAY_OUTBOX":               cfg.Name,
		"RELAY_KAFKA_BROKERS":        strings.Join(kc.Addrs(), ","),
		"RELAY_HTTP_ADDR":            "127.0.0.1:0",
		"RELAY_POLL_INTERVAL":        "50ms",
		"RELAY_STATS_INTERVAL":       "100ms",
		"RELAY_FATAL_RETRY_INTERVAL": "100ms",
		"RELAY_CONNECT_TIMEOUT":      "10s",
		"LOG_FORMAT":                 "json",
	}, "run")
	addr := p.httpAddr(t)

	var exposition string
	deadline := time.Now().Add(20 * time.Second)
	for {
		exposition = get(t, "http://"+addr+"/metrics")
		names := exportedNames(exposition)
		if names[router.MetricEventsForwarded] && names[router.MetricBatchFailures] && sampleValue(exposition, router.MetricEventsForwarded) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not forward the event after a failed batch in time; /metrics:\n%s\nstderr:\n%s", exposition, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop(t)

	exported := exportedNames(exposition)
	for title, exprs := range readDashboard(t).exprs() {
		for _, e := range exprs {
			names := metricNames(e)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q selects no metric", title, e)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("panel %q queries %s, which the relay does not export", title, n)
				}
			}
		}
	}
}

// exportedNames returns the sample names of a Prometheus text exposition
// (histograms as their _bucket, _sum and _count series) and the family names.
func exportedNames(exposition string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			if f := strings.Fields(line); len(f) >= 3 {
				names[f[2]] = true
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// sampleValue returns the sum of the samples of name.
func sampleValue(exposition, name string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
