package main

import (
	"encoding/json"
	"net/http"

	"github.com/millrace/millrace/router"
)

// readyJSON is the answer of /readyz: adapter.HealthHandler's status and reason,
// with the relay's role in its consumer group and the holder of the group's lock.
type readyJSON struct {
	Status     string             `json:"status"`
	Reason     string             `json:"reason,omitempty"`
	Role       string             `json:"role"` // active, standby or starting
	LockHolder *router.LockHolder `json:"lock_holder"`
}

// roleOf names the role of a relay: active when it holds its consumer group's
// lock, standby while another relay does, starting before it knows.
func roleOf(st router.Stats) string {
	switch {
	case st.Active:
		return "active"
	case st.State == router.StateStandby:
		return "standby"
	default:
		return "starting"
	}
}

// readyHandler answers /readyz: 200 when ready (an active relay and a standby
// alike: a standby is ready to take over), 503 with the reason otherwise.
func readyHandler(p probes) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, code := readyJSON{Status: "ok"}, http.StatusOK
		err := errStopping
		if !p.stopping.Load() {
			err = p.redact(p.ready(r.Context()))
		}
		if err != nil {
			out.Status, out.Reason, code = "unavailable", err.Error(), http.StatusServiceUnavailable
		}
		if p.stats != nil {
			st := p.stats()
			out.Role, out.LockHolder = roleOf(st), st.Holder
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(out)
	})
}
