package adapter_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/millrace/millrace/adapter"
)

// Counters by class print with the class names, also inside a printed Metrics.
func TestCountersByClassPrintWithClassNames(t *testing.T) {
	var m adapter.Metrics
	m.GivenUpByClass[adapter.Permanent] = 2
	const want = "retriable=0 permanent=2 fatal=0 canceled=0"
	if got := m.GivenUpByClass.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := fmt.Sprintf("%+v", m); !strings.Contains(got, "GivenUpByClass:"+want) {
		t.Errorf("%%+v of Metrics = %s", got)
	}
}
