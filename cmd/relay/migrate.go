package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/millrace/millrace/outbox"
)

const migrateHelp = `
Creates the outbox tables of RELAY_OUTBOX if they do not exist: the events table,
<outbox>_offsets, <outbox>_dead_letters and, on MySQL, <outbox>_sequence. It is
idempotent and safe to run from several processes at once; run it at deploy time (a
Kubernetes init container or Job, a compose service that the relay depends on), or
start 'relay run' with RELAY_MIGRATE=true.`

func (a *app) cmdMigrate(args []string) int {
	c := commandNamed("migrate")
	fs := newFlagSet(c.name)
	cfg, ok, code := a.loadConfig(fs, c, args, false, dbGroups)
	if !ok {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	log := newLogger(a.stderr, cfg.Log, cfg.logLevel)
	db, code := a.connect(ctx, cfg, log, c.name)
	if db == nil {
		return code
	}
	defer db.Close()
	ocfg := cfg.outboxConfig()
	if err := outbox.InitializeSchema(ctx, db, ocfg); err != nil {
		fmt.Fprintf(a.stderr, "relay migrate: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(a.stdout, "outbox %q is ready on %s (%s)\n", ocfg.Name, cfg.database.masked, ocfg.Dialect)
	return exitOK
}

// signalContext is cancelled by SIGINT or SIGTERM: a command waiting for its
// database stops at once.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// commandNamed returns the command called name.
func commandNamed(name string) command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	panic("relay: no command " + name)
}
