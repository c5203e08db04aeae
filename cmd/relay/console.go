package main

import (
	"context"

	"github.com/millrace/millrace/internal/console"
	"github.com/millrace/millrace/outbox"
)

// startConsole starts the live console of r (served at / of the relay's HTTP
// server): the forwarder's and publisher's counters, and the dead letters of the
// outbox, with every text masked by the relay's redactor.
func (a *app) startConsole(r *relay, ocfg outbox.Config) *console.Console {
	return console.New(console.Config{
		Stats:     r.fwd.Stats,
		Publisher: r.pub.Metrics,
		DeadLetters: func(ctx context.Context, limit int) ([]outbox.DeadLetter, error) {
			return outbox.List(ctx, r.db, ocfg, outbox.Filter{Limit: limit})
		},
		Redact: a.red.String,
	})
}
