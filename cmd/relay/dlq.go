package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/millrace/millrace/outbox"
)

const dlqHelp = `
Dead letters are events that Kafka refused for good (too large, invalid) and
outbox rows that are not decodable events (class malformed), set aside with the
reason so that the events behind them keep flowing.

  relay dlq list    [filters] [--json] [--show-payload]
  relay dlq replay  [filters] [--yes]   put them back into the outbox (same UUID,
                                        after every pending event) and delete them
  relay dlq purge   [filters] [--yes]   delete them for good

Filters (combined with AND): --id (repeatable, or a comma list), --topic, --class,
--older-than (set aside longer ago than this duration), --limit (at most this many,
oldest first; default 1000). replay and purge need a filter or --all, and --yes when
they would touch more than one dead letter: they count first and refuse with exit
code 1 otherwise. They act on exactly the dead letters they counted.

list never prints payloads unless --show-payload is given.`

// idList is the value of --id: repeatable, and each value a comma list.
type idList []int64

func (l *idList) String() string {
	parts := make([]string, len(*l))
	for i, id := range *l {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ",")
}

func (l *idList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil || id < 1 {
			return fmt.Errorf("%q is not a dead letter id (a positive integer)", p)
		}
		*l = append(*l, id)
	}
	return nil
}

// dlqFlags are the flags of the dlq subcommands.
type dlqFlags struct {
	ids         idList
	topic       string
	class       string
	olderThan   time.Duration
	limit       int
	all         bool
	yes         bool
	json        bool
	showPayload bool
}

func (d *dlqFlags) register(fs *flag.FlagSet, action string) {
	fs.Var(&d.ids, "id", "dead letter `id`; repeatable, or a comma list")
	fs.StringVar(&d.topic, "topic", "", "only dead letters of this `topic`")
	fs.StringVar(&d.class, "class", "", "only dead letters of this failure `class` (permanent, ...)")
	fs.DurationVar(&d.olderThan, "older-than", 0, "only dead letters set aside longer ago than this `duration` (e.g. 24h)")
	fs.IntVar(&d.limit, "limit", 0, fmt.Sprintf("handle at most `n` dead letters, oldest first (default %d)", outbox.DefaultFilterLimit))
	switch action {
	case "list":
		fs.BoolVar(&d.json, "json", false, "print JSON (an array) instead of a table")
		fs.BoolVar(&d.showPayload, "show-payload", false, "also print the payloads (your own data: mind where the output goes)")
	default:
		fs.BoolVar(&d.all, "all", false, "select every dead letter when no other filter is given")
		fs.BoolVar(&d.yes, "yes", false, "confirm an action on more than one dead letter")
	}
}

func (d *dlqFlags) filter() outbox.Filter {
	f := outbox.Filter{Topic: d.topic, Class: d.class, Limit: d.limit, All: d.all}
	if len(d.ids) > 0 {
		f.IDs = d.ids
	}
	if d.olderThan > 0 {
		f.Before = time.Now().Add(-d.olderThan)
	}
	return f
}

func (d *dlqFlags) hasCriterion() bool {
	return len(d.ids) > 0 || d.topic != "" || d.class != "" || d.olderThan > 0
}

func (a *app) cmdDLQ(args []string) int {
	c := commandNamed("dlq")
	if len(args) == 0 {
		fmt.Fprint(a.stderr, "relay dlq: missing subcommand: list, replay or purge\nRun 'relay dlq --help' for usage.\n")
		return exitUsage
	}
	action := args[0]
	switch {
	case isHelpFlag(action):
		a.printUsage(newFlagSet("dlq"), c)
		return exitOK
	case action != "list" && action != "replay" && action != "purge":
		fmt.Fprintf(a.stderr, "relay dlq: unknown subcommand %q: use list, replay or purge\nRun 'relay dlq --help' for usage.\n", action)
		return exitUsage
	}
	sub := c
	sub.name = "dlq " + action
	sub.usage = "relay dlq " + action + " [filters] [flags]"
	fs := newFlagSet(sub.name)
	var d dlqFlags
	d.register(fs, action)
	cfg, ok, code := a.loadConfig(fs, sub, args[1:], false, dbGroups)
	if !ok {
		return code
	}
	if d.limit < 0 || d.olderThan < 0 {
		fmt.Fprintf(a.stderr, "relay %s: --limit and --older-than must not be negative\n", sub.name)
		return exitUsage
	}
	if action != "list" && !d.hasCriterion() && !d.all {
		fmt.Fprintf(a.stderr, "relay %s: select dead letters with --id, --topic, --class or --older-than, or every one with --all\n", sub.name)
		return exitUsage
	}

	ctx, stop := signalContext()
	defer stop()
	log := newLogger(a.stderr, cfg.Log, cfg.logLevel)
	db, code := a.connect(ctx, cfg, log, sub.name)
	if db == nil {
		return code
	}
	defer db.Close()
	ocfg := cfg.outboxConfig()

	dls, err := outbox.List(ctx, db, ocfg, d.filter())
	if err != nil {
		if isMissingTable(err) {
			err = fmt.Errorf("outbox %q: %w", ocfg.Name, errMissingSchema)
		}
		fmt.Fprintf(a.stderr, "relay %s: %v\n", sub.name, err)
		return exitFailure
	}
	if action == "list" {
		return a.printDeadLetters(dls, d)
	}

	limit := d.limit
	if limit == 0 {
		limit = outbox.DefaultFilterLimit
	}
	more := ""
	if len(dls) == limit {
		more = fmt.Sprintf(" (--limit %d reached: there may be more; run again for the rest)", limit)
	}
	if len(dls) == 0 {
		fmt.Fprintln(a.stdout, "no dead letter matches")
		return exitOK
	}
	ids := make([]int64, len(dls))
	for i, dl := range dls {
		ids[i] = dl.ID
	}
	if len(dls) > 1 && !d.yes {
		fmt.Fprintf(a.stderr, "relay %s: this would %s %d dead letters (ids %s)%s; add --yes to confirm\n",
			sub.name, action, len(dls), (*idList)(&ids).String(), more)
		return exitFailure
	}
	// Act on exactly the dead letters counted, not on whatever matches the filter
	// by now.
	exact := outbox.Filter{IDs: ids, Limit: len(ids)}
	var n int
	if action == "replay" {
		n, err = outbox.Replay(ctx, db, ocfg, exact)
	} else {
		n, err = outbox.Purge(ctx, db, ocfg, exact)
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "relay %s: %v\n", sub.name, err)
		return exitFailure
	}
	if action == "replay" {
		fmt.Fprintf(a.stdout, "replayed %d dead letter(s) (ids %s)%s: they are forwarded after the events already pending\n",
			n, (*idList)(&ids).String(), more)
	} else {
		fmt.Fprintf(a.stdout, "purged %d dead letter(s) (ids %s)%s\n", n, (*idList)(&ids).String(), more)
	}
	return exitOK
}

// deadLetterJSON is one element of relay dlq list --json.
type deadLetterJSON struct {
	ID            int64             `json:"id"`
	UUID          string            `json:"uuid"`
	Topic         string            `json:"topic"`
	Key           string            `json:"key,omitempty"`
	Class         string            `json:"class"`
	Attempts      int               `json:"attempts"`
	Reason        string            `json:"reason"`
	PayloadBytes  int               `json:"payload_bytes"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	RawMetadata   *string           `json:"raw_metadata,omitempty"` // a malformed row's metadata as stored
	CreatedAt     time.Time         `json:"created_at"`
	FailedAt      time.Time         `json:"failed_at"`
	Payload       *string           `json:"payload,omitempty"`        // with --show-payload, valid UTF-8
	PayloadBase64 []byte            `json:"payload_base64,omitempty"` // with --show-payload, binary
}

func (a *app) printDeadLetters(dls []outbox.DeadLetter, d dlqFlags) int {
	if d.json {
		out := make([]deadLetterJSON, 0, len(dls))
		for _, dl := range dls {
			j := deadLetterJSON{
				ID: dl.ID, UUID: dl.UUID, Topic: dl.Topic, Key: dl.Key, Class: dl.Class, Attempts: dl.Attempts,
				Reason: dl.Reason, PayloadBytes: len(dl.Payload), CreatedAt: dl.CreatedAt.UTC(), FailedAt: dl.FailedAt.UTC(),
			}
			if len(dl.Metadata) > 0 {
				j.Metadata = dl.Metadata
			}
			if dl.RawMetadata != nil {
				raw := string(dl.RawMetadata)
				j.RawMetadata = &raw
			}
			if d.showPayload {
				if utf8.Valid(dl.Payload) {
					s := string(dl.Payload)
					j.Payload = &s
				} else {
					j.PayloadBase64 = dl.Payload
				}
			}
			out = append(out, j)
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return exitFailure
		}
		return exitOK
	}
	if len(dls) == 0 {
		fmt.Fprintln(a.stdout, "no dead letter matches")
		return exitOK
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUUID\tTOPIC\tKEY\tCLASS\tATTEMPTS\tBYTES\tFAILED AT\tREASON")
	for _, dl := range dls {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", dl.ID, dl.UUID, printable(dl.Topic), orDash(printable(dl.Key)), dl.Class,
			dl.Attempts, len(dl.Payload), dl.FailedAt.UTC().Format(time.RFC3339), oneLine(dl.Reason, 100))
	}
	_ = tw.Flush()
	if d.showPayload {
		for _, dl := range dls {
			fmt.Fprintf(a.stdout, "\n--- payload of dead letter %d (%d bytes)\n", dl.ID, len(dl.Payload))
			if utf8.Valid(dl.Payload) {
				fmt.Fprintf(a.stdout, "%s\n", dl.Payload)
			} else {
				fmt.Fprintf(a.stdout, "%q\n", dl.Payload)
			}
		}
	}
	return exitOK
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine flattens s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// printable returns s for a terminal table: as is when it is short printable text,
// else quoted with Go escapes and cut to 60 bytes (a malformed row's topic or key
// may hold anything).
func printable(s string) string {
	ok := len(s) <= 60 && utf8.ValidString(s)
	for _, r := range s {
		if !unicode.IsPrint(r) {
			ok = false
		}
	}
	if ok {
		return s
	}
	if len(s) > 60 {
		return strconv.Quote(strings.ToValidUTF8(s[:60], "")) + "..."
	}
	return strconv.Quote(s)
}
