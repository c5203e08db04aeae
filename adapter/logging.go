package adapter

import (
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"
)

// maxLoggedFailures caps the events logged for one failed batch; the rest are
// summed up in a last event.
const maxLoggedFailures = 10

// failureLevel is the level of the log event of a message given up on. Only a fatal
// failure is an error here: a retriable one is sent again by a caller such as the
// relay, a permanent one is the caller's to set aside (the relay logs its dead
// letter at error), and a canceled one was abandoned on purpose.
func failureLevel(c Class) zerolog.Level {
	switch c {
	case Fatal:
		return zerolog.ErrorLevel
	case Canceled:
		return zerolog.InfoLevel
	default:
		return zerolog.WarnLevel
	}
}

// payloadSize sums the payload sizes of msgs. Only sizes are logged, never payloads.
func payloadSize(msgs []*message.Message) int {
	n := 0
	for _, m := range msgs {
		if m != nil {
			n += len(m.Payload)
		}
	}
	return n
}

func (p *Publisher) logSuccess(topic string, msgs []*message.Message, attempts int, elapsed time.Duration) {
	ev := p.log.Debug()
	if !ev.Enabled() {
		return
	}
	ev = ev.Str("topic", topic).Int("messages", len(msgs)).Int("attempts", attempts).
		Dur("duration", elapsed).Int("size", payloadSize(msgs))
	if len(msgs) == 1 {
		ev = ev.Str("message_uuid", msgs[0].UUID)
	}
	ev.Msg("published")
}

func (p *Publisher) logRetry(topic string, msgs []*message.Message, retry []FailedMessage, attempts int, wait time.Duration) {
	ev := p.log.Warn()
	if !ev.Enabled() {
		return
	}
	ev = ev.Str("topic", topic).Int("messages", len(retry)).Int("attempts", attempts).
		Dur("backoff", wait).Str("class", retry[0].Class.String()).Err(retry[0].Err)
	if len(retry) == 1 {
		ev = ev.Str("message_uuid", retry[0].UUID).Int("size", len(msgs[retry[0].Index].Payload))
	}
	ev.Msg("publish attempt failed, retrying")
}

func (p *Publisher) logFailure(topic string, msgs []*message.Message, attempts int, failed []FailedMessage, elapsed time.Duration) {
	worst := zerolog.InfoLevel
	for i, f := range failed {
		if i == maxLoggedFailures {
			p.log.WithLevel(worst).Str("topic", topic).Int("more_given_up", len(failed)-i).
				Msg("publish gave up on more messages")
			return
		}
		lvl := failureLevel(f.Class)
		worst = max(worst, lvl)
		size := 0
		if m := msgs[f.Index]; m != nil {
			size = len(m.Payload)
		}
		p.log.WithLevel(lvl).Str("topic", topic).Str("message_uuid", f.UUID).Int("attempts", attempts).
			Dur("duration", elapsed).Int("size", size).Str("class", f.Class.String()).Err(f.Err).
			Msg("publish gave up on a message")
	}
}

// NewWatermillLogger returns a watermill.LoggerAdapter that writes through l, so that
// Watermill components (routers, subscribers, publishers) log through the same
// zerolog logger as the decorator. Watermill's Trace level maps to zerolog's trace.
func NewWatermillLogger(l zerolog.Logger) watermill.LoggerAdapter {
	return &watermillLogger{l: l}
}

type watermillLogger struct{ l zerolog.Logger }

func (w *watermillLogger) Error(msg string, err error, fields watermill.LogFields) {
	withFields(w.l.Error().Err(err), fields).Msg(msg)
}

func (w *watermillLogger) Info(msg string, fields watermill.LogFields) {
	withFields(w.l.Info(), fields).Msg(msg)
}

func (w *watermillLogger) Debug(msg string, fields watermill.LogFields) {
	withFields(w.l.Debug(), fields).Msg(msg)
}

func (w *watermillLogger) Trace(msg string, fields watermill.LogFields) {
	withFields(w.l.Trace(), fields).Msg(msg)
}

func (w *watermillLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return &watermillLogger{l: w.l.With().Fields(map[string]any(fields)).Logger()}
}

func withFields(ev *zerolog.Event, fields watermill.LogFields) *zerolog.Event {
	if ev == nil || len(fields) == 0 {
		return ev
	}
	return ev.Fields(map[string]any(fields))
}
