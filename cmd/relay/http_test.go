package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace/millrace/internal/redact"
)

// A secret that reaches a metric label (a topic named after it, say) or a health
// answer is masked in what the endpoints serve, also when the client accepts gzip.
func TestEndpointsMaskSecrets(t *testing.T) {
	const secret = "T0pic-S3cret/x"
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_total", Help: "h"}, []string{"topic"})
	reg.MustRegister(c)
	c.WithLabelValues("orders-" + secret).Inc()
	var stopping atomic.Bool
	h := newHandler(reg, probes{
		alive:    func() error { return nil },
		ready:    func(context.Context) error { return io.ErrUnexpectedEOF },
		stopping: &stopping,
		red:      redact.New(secret),
	}, true)
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, path := range []string{"/metrics", "/readyz"} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gunzip
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/metrics" && !strings.Contains(string(body), `test_total{topic="orders-xxxxx"} 1`) {
			t.Errorf("%s = %q, want the masked label", path, body)
		}
		if strings.Contains(string(body), "S3cret") {
			t.Errorf("%s holds the secret: %q", path, body)
		}
	}
}
