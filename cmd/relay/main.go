// Command relay forwards the events of a transactional outbox to Kafka. See
// README.md beside this file, or run `relay help`.
package main

import (
	"os"

	"github.com/rs/zerolog"
)

func main() {
	// Durations in the logs are Go durations with their unit ("1s", "2.3ms"),
	// timestamps have milliseconds.
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	os.Exit(newApp(os.Stdout, os.Stderr, os.Environ()).main(os.Args[1:]))
}
