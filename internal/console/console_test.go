package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// fakeSource is a forwarder and publisher whose numbers the test sets.
type fakeSource struct {
	mu    sync.Mutex
	stats router.Stats
	m     adapter.Metrics
}

func (f *fakeSource) Stats() router.Stats      { f.mu.Lock(); defer f.mu.Unlock(); return f.stats }
func (f *fakeSource) Metrics() adapter.Metrics { f.mu.Lock(); defer f.mu.Unlock(); return f.m }

func TestEventsPerSecondAndRecentFailuresComeFromTheSamplesOfTheWindow(t *testing.T) {
	src := &fakeSource{stats: router.Stats{State: router.StateIdle, Active: true}}
	c := &Console{cfg: Config{Stats: src.Stats, Publisher: src.Metrics, Interval: time.Second, Window: 3 * time.Second,
		Redact: func(s string) string { return strings.ReplaceAll(s, "hunter2", "xxxxx") }}, dlsOf: -1}
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; i < 6; i++ { // 6 samples one second apart, 10 more events each time
		src.mu.Lock()
		src.stats.EventsForwarded = int64(10 * i)
		src.m.GivenUpByClass[adapter.Permanent] = int64(i) // one more permanent failure per second
		src.mu.Unlock()
		c.sample(t0.Add(time.Duration(i) * time.Second))
	}
	src.stats.LastError = "dial tcp: password hunter2 refused"
	s := c.Snapshot()
	if len(s.History) != 4 { // the window (3s) over the interval (1s), plus one
		t.Fatalf("history has %d points, want 4 (window/interval+1)", len(s.History))
	}
	if s.EventsPerSecond != 10 {
		t.Errorf("events/s = %v, want 10", s.EventsPerSecond)
	}
	for _, f := range s.Failures {
		if f.Class == "permanent" && (f.Total != 5 || f.Recent != 3) {
			t.Errorf("permanent failures %+v, want total 5, recent 3 (since the oldest sample kept, 2)", f)
		}
	}
	if strings.Contains(s.LastError, "hunter2") {
		t.Errorf("last error not redacted: %q", s.LastError)
	}
}

func TestTheAPINeverShowsPayloadsAndTheConsoleOnlyAnswersGET(t *testing.T) {
	src := &fakeSource{stats: router.Stats{State: router.StateStandby, Backlog: outbox.Stats{DeadLetters: 1},
		Holder: &router.LockHolder{Host: "web-1", PID: 42}}}
	c := New(Config{Stats: src.Stats, Publisher: src.Metrics,
		DeadLetters: func(context.Context, int) ([]outbox.DeadLetter, error) {
			return []outbox.DeadLetter{{ID: 1, UUID: "u1", Topic: "orders", Key: "secret-key", Payload: []byte("card=4111"),
				Metadata: map[string]string{"m": "secret-md"}, Reason: "too large", Class: "permanent", Attempts: 1}}, nil
		}})
	defer c.Close()
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()

	var body []byte
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(srv.URL + APIPath)
		if err != nil {
			t.Fatal(err)
		}
		var st State
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.DeadLetters) == 1 {
			if st.Role != "standby" || !strings.Contains(st.Holder, "web-1") || st.DeadLetters[0].Reason != "too large" {
				t.Errorf("state %+v", st)
			}
			body, _ = json.Marshal(st)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dead letters never appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, secret := range []string{"card=4111", "secret-key", "secret-md"} {
		if strings.Contains(string(body), secret) {
			t.Errorf("the API shows %q", secret)
		}
	}
	for _, path := range []string{"/", APIPath, "/console/console.js"} {
		resp, err := http.Post(srv.URL+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 405", path, resp.StatusCode)
		}
	}
	for path, ctype := range map[string]string{"/": "text/html", "/console/console.js": "javascript", "/console/console.css": "text/css"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

// The page loads nothing from elsewhere: no CDN, works offline.
func TestTheAssetsReferenceNoOtherOrigin(t *testing.T) {
	for _, name := range []string{"assets/index.html", "assets/console.js", "assets/console.css"} {
		b, err := assets.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "") // the SVG namespace name, not fetched
		if strings.Contains(s, "http://") || strings.Contains(s, "https://") || strings.Contains(s, "//cdn") {
			t.Errorf("%s references another origin", name)
		}
	}
}
