package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/millrace/millrace/internal/redact"
)

// Exit codes of the relay.
const (
	exitOK      = 0 // done; or stopped gracefully by SIGTERM/SIGINT
	exitFailure = 1 // failed at run time: database or brokers unreachable or refusing the login, missing tables, a refused dlq action, a stop past the shutdown timeout
	exitUsage   = 2 // invalid settings, unknown command or flag: nothing was attempted
)

// app is one invocation of the relay: its arguments, environment and outputs. Both
// outputs pass through red, which knows the secrets of the settings: every line the
// relay prints is masked, whatever printed it.
type app struct {
	stdout, stderr *redact.Writer
	red            *redact.Redactor
	environ        map[string]string
}

func newApp(stdout, stderr io.Writer, environ []string) *app {
	red := redact.New()
	a := &app{stdout: red.Writer(stdout), stderr: red.Writer(stderr), red: red, environ: map[string]string{}}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			a.environ[k] = v
		}
	}
	return a
}

// command is a subcommand of the relay.
type command struct {
	name     string
	synopsis string // one line, for relay help
	usage    string // the usage line
	help     string // paragraphs after the usage line
	run      func(a *app, args []string) int
}

func commands() []command {
	return []command{
		{"run", "forward the outbox to Kafka until SIGTERM/SIGINT (the default command)",
			"relay [run] [flags]", runHelp, (*app).cmdRun},
		{"migrate", "create the outbox tables if they do not exist, and exit",
			"relay migrate [flags]", migrateHelp, (*app).cmdMigrate},
		{"dev", "development only: an in-memory Kafka broker, the outbox migrated, every event printed",
			"relay dev [--port 9092] [flags]", devHelp, (*app).cmdDev},
		{"emit", "write one event into the outbox, as an application would",
			"relay emit --topic T [--key K] [flags] [payload]", emitHelp, (*app).cmdEmit},
		{"status", "print the backlog: pending events, age of the oldest, dead letters, last forwarded",
			"relay status [--json] [flags]", statusHelp, (*app).cmdStatus},
		{"dlq", "list, replay or purge dead letters",
			"relay dlq list|replay|purge [filters] [flags]", dlqHelp, (*app).cmdDLQ},
		{"version", "print the version of the relay",
			"relay version [--json]", "", (*app).cmdVersion},
		{"help", "print this help, a command's help, or the settings (relay help env)",
			"relay help [command|env]", "", (*app).cmdHelp},
	}
}

// main runs the command named by args and returns the exit code.
func (a *app) main(args []string) int {
	name := "run"
	if len(args) > 0 {
		switch {
		case isHelpFlag(args[0]):
			a.printOverview(a.stdout)
			return exitOK
		case isVersionFlag(args[0]):
			return a.cmdVersion(args[1:])
		case !strings.HasPrefix(args[0], "-"):
			name, args = args[0], args[1:]
		}
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(a, args)
		}
	}
	fmt.Fprintf(a.stderr, "relay: unknown command %q\nRun 'relay help' for usage.\n", name)
	return exitUsage
}

func isHelpFlag(s string) bool { return s == "-h" || s == "--help" || s == "-help" }

func (a *app) printOverview(w io.Writer) {
	fmt.Fprint(w, `relay forwards the events of a transactional outbox (PostgreSQL or MySQL/MariaDB)
to Kafka: at least once, in commit order per key, with poison events set aside as
dead letters. It is configured from the environment; every variable has a flag of
the same name (RELAY_BATCH_SIZE is --batch-size) that wins over it.

Usage:
  relay [command] [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.synopsis)
	}
	fmt.Fprint(w, `
Run 'relay help <command>' or 'relay <command> --help' for a command's flags, and
'relay help env' for every setting with its default. 'relay --version' (or -v)
prints the version.

Exit codes: 0 done (or stopped by SIGTERM/SIGINT), 1 failed at run time, 2 invalid
settings or usage.
`)
}

func (a *app) cmdHelp(args []string) int {
	if len(args) == 0 {
		a.printOverview(a.stdout)
		return exitOK
	}
	if args[0] == "env" || args[0] == "config" {
		fmt.Fprint(a.stdout, settingsTable())
		return exitOK
	}
	if args[0] == "dlq" && len(args) > 1 {
		return a.cmdDLQ([]string{args[1], "--help"})
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(a, []string{"--help"})
		}
	}
	fmt.Fprintf(a.stderr, "relay help: unknown command %q\nRun 'relay help' for usage.\n", args[0])
	return exitUsage
}

// newFlagSet returns the flag set of a command; parseFlags prints its usage.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("relay "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args into fs. It returns false with the exit code when the
// command must not go on: --help (0), an unknown flag or a stray argument (2).
func (a *app) parseFlags(fs *flag.FlagSet, c command, args []string) (bool, int) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		a.printUsage(fs, c)
		return false, exitOK
	}
	if err == nil && fs.NArg() > 0 {
		// Not repeated: a stray argument may be the rest of a secret split by a space.
		err = fmt.Errorf("unexpected argument (%d after the flags; quote a value that holds a space)", fs.NArg())
	}
	if err != nil {
		// The flag package quotes the value it rejects, which may be a secret.
		msg := flagValue.ReplaceAllString(err.Error(), "$1")
		fmt.Fprintf(a.stderr, "%s: %s\nRun '%s --help' for usage.\n", fs.Name(), msg, fs.Name())
		return false, exitUsage
	}
	return true, exitOK
}

// flagValue matches the quoted value in the flag package's "invalid value "v" for
// flag -f" and "invalid boolean value "v" for -f".
var flagValue = regexp.MustCompile(`(invalid (?:boolean )?value) "(?:[^"\\]|\\.)*"`)

func (a *app) printUsage(fs *flag.FlagSet, c command) {
	w := a.stdout
	fmt.Fprintf(w, "Usage: %s\n\n", c.usage)
	if c.help != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(c.help))
	}
	fmt.Fprintln(w, "Flags (each setting flag has an environment variable, named in parentheses):")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// problem is one invalid setting.
type problem struct {
	key  string // the variable, "" when the problem is not about one
	text string // the line to print, naming the variable
}

// loadConfig registers the settings of groups on fs, parses args and the
// environment, and validates. It returns false with the exit code when the command
// must stop: --help, a usage error, or invalid settings (each printed on its line).
func (a *app) loadConfig(fs *flag.FlagSet, c command, args []string, runMode bool,
	groups func(*config) []group) (*config, bool, int) {
	cfg := &config{}
	set := newSettingsSet(fs, a.environ, groups(cfg)...)
	if ok, code := a.parseFlags(fs, c, args); !ok {
		return nil, false, code
	}
	a.protect(set)
	problems := collectProblems(set, cfg, runMode)
	a.red.Add(cfg.secrets...)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(a.stderr, "relay %s: %s\n", c.name, hideValues(set, p))
		}
		fmt.Fprintf(a.stderr, "relay %s: %d invalid setting(s); rejected values are not shown, as a value in the wrong "+
			"variable may be a secret; run 'relay %s --help' or see 'relay help env'\n",
			c.name, len(problems), c.name)
		return nil, false, exitUsage
	}
	return cfg, true, exitOK
}

// hideValues returns the text of p without a quoted value of a setting: the last
// resort behind validate, which does not repeat values, for the messages of the
// libraries (KafkaConfig.Validate, say). A problem about one setting hides that
// setting's value; one about none hides every setting's value.
func hideValues(set *settingsSet, p problem) string {
	text := p.text
	for _, st := range set.settings {
		if v := set.environ[st.Env]; v != "" && (p.key == "" || p.key == st.Env) {
			text = strings.ReplaceAll(text, strconv.Quote(v), "(value not shown)")
		}
	}
	return text
}

// collectProblems loads and validates the settings: one problem per invalid
// setting (a value that does not parse is not validated again).
func collectProblems(set *settingsSet, cfg *config, runMode bool) []problem {
	problems := set.load()
	bad := map[string]bool{}
	for _, p := range problems {
		bad[p.key] = true
	}
	for _, p := range cfg.validate(set, runMode) {
		if p.key == "" || !bad[p.key] {
			problems = append(problems, p)
		}
	}
	return problems
}

// protect registers the secrets of the settings with the outputs before anything
// is printed, so that even an invalid setting cannot leak one.
func (a *app) protect(set *settingsSet) {
	for _, st := range set.settings {
		v := set.environ[st.Env]
		if v == "" {
			continue
		}
		switch st.Secret {
		case "value":
			a.red.Add(v, strings.TrimSpace(v))
		case "url":
			a.red.AddDSN(strings.TrimSpace(v))
		}
	}
}

// isTerminal reports whether w writes to a terminal, for the console format's colours.
func isTerminal(w io.Writer) bool {
	r, ok := w.(*redact.Writer)
	if !ok {
		return false
	}
	f, ok := r.Unwrap().(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
