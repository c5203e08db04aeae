package router

import (
	"strings"
	"testing"
	"time"
)

func TestApplicationNameRoundTrip(t *testing.T) {
	since := time.Unix(1767322800, 0).UTC()
	for _, host := range []string{"web-1", "relay-7c9d8f6b5-x2k4q", strings.Repeat("h", 80)} {
		s := applicationName(host, 4194304, since)
		if len(s) > 63 {
			t.Fatalf("application_name %q is %d bytes, over PostgreSQL's 63", s, len(s))
		}
		h := parseApplicationName(s)
		if h.PID != 4194304 || !h.Since.Equal(since) || !strings.HasPrefix(host, h.Host) || h.Host == "" {
			t.Errorf("host %q: parsed %+v from %q", host, h, s)
		}
	}
	if h := parseApplicationName("psql"); h != (LockHolder{}) {
		t.Errorf("a foreign application_name parsed as %+v", h)
	}
}
