package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/outbox"
)

const emitHelp = `
Writes one event into the outbox in its own transaction, through
outbox.NewPublisher, exactly as an application writes one next to its business
data; a running relay (or relay dev) then forwards it. The payload is the argument
after the flags, "-" reads it from standard input, and none writes an empty payload.
It prints the event's UUID.

RELAY_DATABASE_URL defaults to the database of relay dev:
  ` + devDatabaseURL + `
The outbox tables must exist (relay dev, relay migrate, or RELAY_MIGRATE=true).

  relay emit --topic orders --key customer-7 '{"order_id":42}'
  echo '{"order_id":43}' | relay emit --topic orders --key customer-7 --metadata source=cli -`

// metadataFlag collects repeated --metadata key=value flags.
type metadataFlag map[string]string

func (m metadataFlag) String() string { return "" }

func (m metadataFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	if strings.HasPrefix(k, outbox.ReservedPrefix) {
		return fmt.Errorf("keys starting with %q are the outbox's own", outbox.ReservedPrefix)
	}
	m[k] = val
	return nil
}

func (a *app) cmdEmit(args []string) int {
	c := commandNamed("emit")
	fs := newFlagSet(c.name)
	topic := fs.String("topic", "", "Kafka topic of the event, required")
	key := fs.String("key", "", "partition key: events of one key are forwarded in commit order to one partition; none spreads them")
	uuid := fs.String("uuid", "", "UUID of the event (the _watermill_message_uuid header); default a new random one")
	md := metadataFlag{}
	fs.Var(md, "metadata", "key=value metadata, sent as a Kafka header; repeatable")

	environ := make(map[string]string, len(a.environ)+1)
	for k, v := range a.environ {
		environ[k] = v
	}
	if environ["RELAY_DATABASE_URL"] == "" {
		environ["RELAY_DATABASE_URL"] = devDatabaseURL
	}
	cfg := &config{}
	set := newSettingsSet(fs, environ, dbGroups(cfg)...)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		a.printUsage(fs, c)
		return exitOK
	}
	if err == nil && fs.NArg() > 1 {
		err = fmt.Errorf("unexpected argument %q: the payload is one argument (quote it)", fs.Arg(1))
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "relay emit: %v\nRun 'relay emit --help' for usage.\n", err)
		return exitUsage
	}
	a.protect(set)
	problems := collectProblems(set, cfg, false)
	if strings.TrimSpace(*topic) == "" {
		problems = append(problems, problem{"", "--topic: is required"})
	}
	a.red.Add(cfg.secrets...)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(a.stderr, "relay emit: %s\n", p.text)
		}
		fmt.Fprintf(a.stderr, "relay emit: %d invalid setting(s); run 'relay emit --help'\n", len(problems))
		return exitUsage
	}

	var payload []byte
	switch fs.Arg(0) {
	case "":
	case "-":
		if payload, err = io.ReadAll(os.Stdin); err != nil {
			fmt.Fprintf(a.stderr, "relay emit: reading the payload from standard input: %v\n", err)
			return exitFailure
		}
	default:
		payload = []byte(fs.Arg(0))
	}
	if *uuid == "" {
		*uuid = watermill.NewUUID()
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

	msg := message.NewMessage(*uuid, payload)
	keys := make([]string, 0, len(md))
	for k, v := range md {
		msg.Metadata.Set(k, v)
		keys = append(keys, k)
	}
	sort.Strings(keys)
	outbox.SetKey(msg, *key)
	msg.SetContext(ctx)

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		fmt.Fprintf(a.stderr, "relay emit: %v\n", err)
		return exitFailure
	}
	defer func() { _ = tx.Rollback() }()
	pub, err := outbox.NewPublisher(tx, ocfg)
	if err == nil {
		err = pub.Publish(*topic, msg)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		if isMissingTable(err) {
			err = fmt.Errorf("outbox %q: %w", ocfg.Name, errMissingSchema)
		}
		fmt.Fprintf(a.stderr, "relay emit: writing the event to %s: %v\n", cfg.database.masked, err)
		return exitFailure
	}
	keyText := "no key"
	if *key != "" {
		keyText = fmt.Sprintf("key %q", *key)
	}
	fmt.Fprintf(a.stdout, "%s\n", *uuid)
	fmt.Fprintf(a.stderr, "relay emit: wrote event %s to outbox %q on %s (topic %q, %s, %d B payload",
		*uuid, ocfg.Name, cfg.database.masked, *topic, keyText, len(payload))
	if len(keys) > 0 {
		fmt.Fprintf(a.stderr, ", metadata %s", strings.Join(keys, ","))
	}
	fmt.Fprintln(a.stderr, ")")
	return exitOK
}
