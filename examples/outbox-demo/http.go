package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/millrace/millrace/adapter"
)

// probes are what /healthz and /readyz report.
type probes struct {
	alive func() error                // liveness: is the process doing its job at all
	ready func(context.Context) error // readiness: can it do it now
}

// newHandler returns the endpoints a service of this kind serves: Prometheus
// metrics of reg, liveness and readiness as JSON (adapter.HealthHandler answers
// 200 {"status":"ok"} or 503 {"status":"unavailable","reason":...}).
func newHandler(reg *prometheus.Registry, p probes) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("GET /healthz", adapter.HealthHandler(func(context.Context) error { return p.alive() }))
	mux.Handle("GET /readyz", adapter.HealthHandler(p.ready))
	return mux
}

// httpServer serves the handler while the demo runs.
type httpServer struct {
	srv  *http.Server
	addr string // the address actually listened on
	done chan struct{}
}

// serveHTTP listens on addr and serves h. When addr is taken (another demo runs)
// it listens on a free port of the same host instead; the caller prints the
// address. It returns nil for addr "" or "off".
func serveHTTP(addr string, h http.Handler) (*httpServer, error) {
	if addr == "" || addr == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		host, _, splitErr := net.SplitHostPort(addr)
		if splitErr != nil {
			return nil, fmt.Errorf("-http %s: %w", addr, splitErr)
		}
		var fallbackErr error
		if ln, fallbackErr = net.Listen("tcp", net.JoinHostPort(host, "0")); fallbackErr != nil {
			return nil, fmt.Errorf("-http %s: %w", addr, errors.Join(err, fallbackErr))
		}
	}
	s := &httpServer{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln) // returns http.ErrServerClosed after Shutdown
	}()
	return s, nil
}

// Close stops the server, letting requests in progress finish for a second.
func (s *httpServer) Close() {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}
