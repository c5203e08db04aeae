package main

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeQuickStartIsThisProgram keeps the README's quick start identical to this
// file, which make test compiles and vets.
func TestReadmeQuickStartIsThisProgram(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	const open, fence = "<!-- quickstart -->\n```go\n", "```\n"
	i := strings.Index(string(readme), open)
	if i < 0 {
		t.Fatal("README.md has no quick start block (<!-- quickstart --> followed by a go fence)")
	}
	block := string(readme)[i+len(open):]
	block = block[:strings.Index(block, fence)]
	if block != string(src) {
		t.Fatal("the README's quick start differs from examples/quickstart/main.go: copy main.go into the README")
	}
}
