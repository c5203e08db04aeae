package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRelayHelpAndVersion(t *testing.T) {
	t.Parallel()
	out := &outputLog{}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"Commands:", "migrate", "dlq", "Exit codes", "relay --version"}},
		{[]string{"--help"}, []string{"Commands:"}},
		{[]string{"help", "env"}, []string{"| `RELAY_DATABASE_URL` |", "| `LOG_FORMAT` |"}},
		{[]string{"run", "--help"}, []string{"Usage: relay [run] [flags]", "-kafka-brokers", "RELAY_SHUTDOWN_TIMEOUT"}},
		{[]string{"help", "status"}, []string{"Usage: relay status", "-json"}},
		{[]string{"migrate", "-h"}, []string{"Usage: relay migrate"}},
		{[]string{"dlq", "--help"}, []string{"relay dlq list", "--yes"}},
		{[]string{"dlq", "replay", "--help"}, []string{"-yes", "-older-than", "-id"}},
		{[]string{"version"}, []string{"relay v0.0.0-test (", "go1."}},
		{[]string{"--version"}, []string{"relay v0.0.0-test (", "go1."}},
		{[]string{"-v"}, []string{"relay v0.0.0-test (", "go1."}},
		{[]string{"dev", "--help"}, []string{"Usage: relay dev", "-port", "For development only", "keeps nothing", "production", devDatabaseURL}},
		{[]string{"emit", "--help"}, []string{"Usage: relay emit", "-topic", "-key", "outbox.NewPublisher"}},
	}
	for _, tt := range tests {
		stdout := mustRun(t, out, nil, tt.args...)
		for _, w := range tt.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("relay %v: output lacks %q:\n%s", tt.args, w, stdout)
			}
		}
	}
	var bi buildInfo
	if err := json.Unmarshal([]byte(mustRun(t, out, nil, "version", "--json")), &bi); err != nil || bi.Version != "v0.0.0-test" {
		t.Errorf("version --json: %+v, %v", bi, err)
	}
	if _, stderr, code := runRelay(t, out, nil, "dlq"); code != exitUsage || !strings.Contains(stderr, "missing subcommand") {
		t.Errorf("relay dlq: exit %d, %s", code, stderr)
	}
	// The stray argument is not repeated: it may be the rest of a secret split at a space.
	if _, stderr, code := runRelay(t, out, nil, "status", "extra"); code != exitUsage ||
		!strings.Contains(stderr, "unexpected argument") || strings.Contains(stderr, "extra") {
		t.Errorf("relay status extra: exit %d, %s", code, stderr)
	}
}
