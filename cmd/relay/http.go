package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/millrace/millrace/adapter"
	"github.com/millrace/millrace/internal/redact"
	"github.com/millrace/millrace/router"
)

// errStopping is the readiness of a relay that is shutting down.
var errStopping = errors.New("relay: shutting down")

// probes are what the HTTP endpoints report on.
type probes struct {
	alive    func() error
	ready    func(context.Context) error
	stopping *atomic.Bool
	stats    func() router.Stats // the role and the lock holder in /readyz; nil for none
	red      *redact.Redactor    // masks the answers
	console  http.Handler        // the live console at /; nil: a plain index
}

// newHandler returns the relay's HTTP endpoints: /metrics (reg), /healthz
// (liveness), /readyz (readiness), /debug/pprof/ when enabled, and an index at /.
func newHandler(reg *prometheus.Registry, p probes, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	// Labels come from data (topics) and errors: masked like every other output.
	mux.Handle("GET /metrics", masked(p.red, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	mux.Handle("GET /healthz", adapter.HealthHandler(func(context.Context) error {
		return p.redact(p.alive())
	}))
	mux.Handle("GET /readyz", readyHandler(p)) // role.go
	endpoints := []string{"/metrics", "/healthz", "/readyz"}
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		// pprof's own cmdline handler would print a --database-url password, in
		// whatever escaping it was typed.
		mux.HandleFunc("/debug/pprof/cmdline", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprint(w, strings.Join(p.red.Args(os.Args), "\x00"))
		})
		endpoints = append(endpoints, "/debug/pprof/")
	}
	if p.console != nil { // the console's page and its assets (internal/console)
		mux.Handle("GET /{$}", p.console)
		mux.Handle("GET /console/", masked(p.red, p.console)) // its state: errors, topics
		return mux
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "millrace relay\n\n%s\n", strings.Join(endpoints, "\n"))
	})
	return mux
}

// masked serves h with the secrets in its answer masked. The answer is buffered and
// not compressed: for text answers such as /metrics.
func masked(red *redact.Redactor, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.Clone(r.Context())
		r.Header.Del("Accept-Encoding")
		rec := &bufferedResponse{header: http.Header{}, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		for k, v := range rec.header {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.code)
		_, _ = io.WriteString(w, red.String(rec.body.String()))
	})
}

// bufferedResponse is an http.ResponseWriter that keeps the answer.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) WriteHeader(code int)        { b.code = code }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }

// redact removes the secrets from err's text, keeping its absence.
func (p probes) redact(err error) error { return p.red.Error(err) }

// httpServer is the relay's HTTP server.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// listenHTTP listens on addr (port 0 picks a free one) and serves h until shutdown.
func listenHTTP(addr string, h http.Handler) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &httpServer{
		ln: ln,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      60 * time.Second, // pprof profiles default to 30s
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *httpServer) Addr() string { return s.ln.Addr().String() }

// shutdown stops accepting connections and waits for requests in progress until
// ctx ends, then closes what is left.
func (s *httpServer) shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
