package main

import (
	"context"
	"net/http"

	"github.com/millrace/millrace/adapter"
	webconsole "github.com/millrace/millrace/internal/console"
	"github.com/millrace/millrace/outbox"
	"github.com/millrace/millrace/router"
)

// newWebConsole returns the relay's live console (internal/console) over the demo's
// forwarder, publisher and outbox: the same page the relay serves at /.
func newWebConsole(fwd *router.Forwarder, pub *adapter.Publisher, db *database, ocfg outbox.Config) *webconsole.Console {
	return webconsole.New(webconsole.Config{
		Stats:     fwd.Stats,
		Publisher: pub.Metrics,
		DeadLetters: func(ctx context.Context, limit int) ([]outbox.DeadLetter, error) {
			return outbox.List(ctx, db.DB, ocfg, outbox.Filter{Limit: limit})
		},
	})
}

// withConsole serves the console's page at / and its assets and state under
// /console/, next to h's endpoints.
func withConsole(h http.Handler, c *webconsole.Console) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle("GET /{$}", c.Handler())
	mux.Handle("GET /console/", c.Handler())
	return mux
}
