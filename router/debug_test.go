package router_test

import (
	"os"

	"github.com/rs/zerolog"
)

var debugLogger = func() *zerolog.Logger {
	if os.Getenv("ROUTER_DEBUG") == "" {
		return nil
	}
	l := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	return &l
}()
