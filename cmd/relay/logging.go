package main

import (
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// newLogger returns the logger of the settings, writing to w (standard error):
// JSON lines by default, or zerolog's console format.
func newLogger(w io.Writer, s logSettings, level zerolog.Level) zerolog.Logger {
	if strings.EqualFold(s.Format, "console") {
		w = zerolog.ConsoleWriter{Out: w, NoColor: !isTerminal(w), TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
