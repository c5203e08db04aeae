// Command relay forwards the events of a transactional outbox to Kafka. See
// README.md beside this file, or run `relay help`.
package main

import (
	"os"
	"time"

	"github.com/rs/zerolog"
)

func main() {
	// Durations in the logs are seconds (like Prometheus), timestamps have
	// milliseconds.
	zerolog.DurationFieldUnit = time.Second
	zerolog.DurationFieldInteger = false
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	os.Exit(newApp(os.Stdout, os.Stderr, os.Environ()).main(os.Args[1:]))
}
