package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
)

// console writes the demo's output: event lines ("12.3s  broker unreachable ...")
// and one status line. On a terminal the status line is rewritten in place
// (carriage return) and event lines are printed above it; elsewhere (a pipe, a
// file, a test) status lines are printed as plain lines, every statusEvery.
// It is safe for concurrent use, and is also the io.Writer of the library's logs.
type console struct {
	mu     sync.Mutex
	out    io.Writer
	tty    bool
	width  int // of the terminal; the status line is cut to fit
	start  time.Time
	status string    // the status line on screen (tty)
	last   time.Time // when the last plain status line was printed
}

// statusEvery is how often a plain status line is printed when out is not a
// terminal.
const statusEvery = 2 * time.Second

func newConsole(out io.Writer) *console {
	c := &console{out: out, start: time.Now(), width: 80}
	if f, ok := out.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		c.tty = true
		if w := terminalWidth(f); w > 0 {
			c.width = w
		}
	}
	return c
}

// elapsed returns the time since the demo started, for line prefixes.
func (c *console) elapsed() string {
	return fmt.Sprintf("%6.1fs", time.Since(c.start).Seconds())
}

// Printf prints an event line, prefixed with the elapsed time.
func (c *console) Printf(format string, args ...any) {
	c.write(c.elapsed() + "  " + fmt.Sprintf(format, args...) + "\n")
}

// Println prints a line as it is, without prefix.
func (c *console) Println(line string) { c.write(line + "\n") }

// Write prints p, one or more complete lines (a zerolog log line).
func (c *console) Write(p []byte) (int, error) {
	c.write(c.elapsed() + "  " + string(p))
	return len(p), nil
}

func (c *console) write(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty && c.status != "" {
		fmt.Fprint(c.out, "\r\x1b[K", s, c.status) // clear the status, print s, redraw it
		return
	}
	fmt.Fprint(c.out, s)
}

// Status shows line as the status line.
func (c *console) Status(line string) {
	line = c.elapsed() + "  " + line
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty {
		if len(line) > c.width-1 {
			line = line[:c.width-1] // a wrapped line could not be rewritten in place
		}
		c.status = line
		fmt.Fprint(c.out, "\r\x1b[K", line)
		return
	}
	if time.Since(c.last) >= statusEvery {
		c.last = time.Now()
		fmt.Fprintln(c.out, line)
	}
}

// EndStatus leaves the status line on screen as a normal line.
func (c *console) EndStatus(final string) {
	final = c.elapsed() + "  " + final
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty {
		fmt.Fprint(c.out, "\r\x1b[K", final, "\n")
		c.status = ""
		return
	}
	fmt.Fprintln(c.out, final)
}

// table prints rows of label, value and comment, aligned.
func (c *console) table(rows [][3]string) {
	lw, vw := 0, 0
	for _, r := range rows {
		lw, vw = max(lw, len(r[0])), max(vw, len(r[1]))
	}
	var b strings.Builder
	for _, r := range rows {
		line := fmt.Sprintf("  %-*s  %*s  %s", lw, r[0], vw, r[1], r[2])
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	c.write(b.String())
}
