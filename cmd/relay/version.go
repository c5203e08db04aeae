package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3". When it
// is empty, the module version recorded by the Go toolchain is used ("(devel)" for
// a build inside the repository).
var version = ""

// buildInfo describes the binary.
type buildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
}

func readBuildInfo() buildInfo {
	bi := buildInfo{Version: version, GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		if bi.Version == "" {
			bi.Version = "unknown"
		}
		return bi
	}
	if bi.Version == "" {
		bi.Version = info.Main.Version
	}
	if bi.Version == "" {
		bi.Version = "(devel)"
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			bi.Revision = s.Value
		case "vcs.time":
			bi.Time = s.Value
		case "vcs.modified":
			bi.Modified = s.Value == "true"
		}
	}
	return bi
}

// String is the line of relay version.
func (b buildInfo) String() string {
	var extra []string
	if b.Revision != "" {
		rev := b.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if b.Modified {
			rev += "+modified"
		}
		extra = append(extra, "commit "+rev)
	}
	if b.Time != "" {
		extra = append(extra, "built "+b.Time)
	}
	extra = append(extra, b.GoVersion)
	return fmt.Sprintf("relay %s (%s)", b.Version, strings.Join(extra, ", "))
}

func (a *app) cmdVersion(args []string) int {
	c := commandNamed("version")
	fs := newFlagSet(c.name)
	asJSON := fs.Bool("json", false, "print JSON")
	if ok, code := a.parseFlags(fs, c, args); !ok {
		return code
	}
	bi := readBuildInfo()
	if *asJSON {
		_ = json.NewEncoder(a.stdout).Encode(bi)
		return exitOK
	}
	fmt.Fprintln(a.stdout, bi)
	return exitOK
}

// isVersionFlag reports --version and -v, which print the version like relay version.
func isVersionFlag(s string) bool { return s == "--version" || s == "-version" || s == "-v" }
