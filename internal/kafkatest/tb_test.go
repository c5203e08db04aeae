package kafkatest_test

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// outcome is how a helper run under a recordingTB ended.
type outcome struct {
	failed  bool
	skipped bool
	msg     string
}

// recordingTB is a testing.TB whose Fatal and Skip are recorded rather than acted on,
// to check that a helper fails or skips a test and with which message. Everything
// else, Cleanup included, goes to the real test.
type recordingTB struct {
	testing.TB
	mu  sync.Mutex
	out outcome
}

func (r *recordingTB) record(failed, skipped bool, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out.failed = r.out.failed || failed
	r.out.skipped = r.out.skipped || skipped
	if r.out.msg == "" {
		r.out.msg = msg
	}
}

func (r *recordingTB) Helper()                      {}
func (r *recordingTB) Error(args ...any)            { r.record(true, false, fmt.Sprint(args...)) }
func (r *recordingTB) Errorf(f string, args ...any) { r.record(true, false, fmt.Sprintf(f, args...)) }
func (r *recordingTB) Fail()                        { r.record(true, false, "") }
func (r *recordingTB) FailNow()                     { r.record(true, false, ""); runtime.Goexit() }
func (r *recordingTB) Fatal(args ...any)            { r.Error(args...); runtime.Goexit() }
func (r *recordingTB) Fatalf(f string, args ...any) { r.Errorf(f, args...); runtime.Goexit() }
func (r *recordingTB) Skip(args ...any)             { r.record(false, true, fmt.Sprint(args...)); runtime.Goexit() }
func (r *recordingTB) Skipf(f string, args ...any) {
	r.record(false, true, fmt.Sprintf(f, args...))
	runtime.Goexit()
}
func (r *recordingTB) SkipNow() { r.record(false, true, ""); runtime.Goexit() }
func (r *recordingTB) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.failed
}
func (r *recordingTB) Skipped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.skipped
}

// run runs fn with a recordingTB on its own goroutine, as a test would, and returns
// how it ended.
func run(t *testing.T, fn func(tb testing.TB)) outcome {
	t.Helper()
	r := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out
}
