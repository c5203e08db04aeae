package outbox

import "testing"

func TestAMalformedStoredTraceContextIsDropped(t *testing.T) {
	for _, stored := range []map[string]string{
		{},
		{TraceParentMetadata: "garbage"},
		{TraceParentMetadata: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, // all-zero trace id
		{TraceStateMetadata: "vendor=abc"},
	} {
		if tc := storedTrace(stored); !tc.IsZero() {
			t.Errorf("storedTrace(%v) = %+v, want zero", stored, tc)
		}
	}
	good := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tc := storedTrace(map[string]string{TraceParentMetadata: good, TraceStateMetadata: "vendor=abc"})
	if tc.TraceParent != good || tc.TraceState != "vendor=abc" {
		t.Errorf("storedTrace of a valid context = %+v", tc)
	}
}
